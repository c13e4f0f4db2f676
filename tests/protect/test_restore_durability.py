"""A restore says "completed" only once what it wrote is on disk, and says "failed" when the disk refused it.

The durability step is syncfs(2) of each file system written to, through `appliance.store.durable.syncfs`. The
tests watch that call (the real one still runs): a page that is written but not yet on disk cannot be told apart
from one that is without pulling the power, and a disk that fails its write-back cannot be made here, so the
failure is injected at the same call."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.protect.files import restore, sync
from appliance.store import durable
from tests.protect.conftest import assert_same_tree, give_to_nobody, group_of, restored_root, tree_state

ROOT = Path(__file__).resolve().parents[2]


def _tree(src: Path) -> None:
    for d in range(5):
        (src / f"d{d}").mkdir()
        for f in range(40):
            (src / f"d{d}" / f"f{f}.txt").write_bytes(f"file {d}/{f}\n".encode() * (f + 1))
    (src / "big.bin").write_bytes(os.urandom(3 << 20))


def test_completed_only_after_every_restored_file_was_synced(store, src, tmp_path, monkeypatch):
    _tree(src)
    expected = tree_state(src)
    sid = sync(store, group_of(src)).snapshot.id
    out = tmp_path / "out"
    calls: list[tuple[int, bool]] = []
    real = durable.syncfs

    def watched(fd: int) -> None:
        real(fd)
        root = restored_root(out, src)
        whole = root.is_dir() and all((root / p.decode()).exists() or p == b"." for p in expected)
        calls.append((os.fstat(fd).st_dev, whole and tree_state(root) == expected))

    monkeypatch.setattr(durable, "syncfs", watched)
    result = restore(store, sid, None, out)
    assert result.state == "completed", result.warnings
    assert calls, "the restore never synced what it wrote"
    device, complete = calls[-1]
    assert device == os.stat(out).st_dev
    assert complete, "the last sync ran before every file (content and metadata) was in place"
    assert_same_tree(expected, restored_root(out, src))


def test_a_write_back_error_fails_the_restore_with_a_fix(store, src, tmp_path, monkeypatch):
    _tree(src)
    sid = sync(store, group_of(src)).snapshot.id

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(durable, "syncfs", failing)
    result = restore(store, sid, None, tmp_path / "out")
    assert result.state == "failed"
    assert "could not all be written to disk (Input/output error)" in result.reason
    assert "then run the same `tapeline restore` again" in result.reason


def test_restore_as_an_unprivileged_user_links_files_in_through_proc(public_base):
    """Without CAP_DAC_READ_SEARCH an O_TMPFILE file is linked in through /proc/self/fd (and no owner is set)."""
    base = public_base
    (base / "src" / "sub").mkdir(parents=True)
    (base / "src" / "a.txt").write_text("alpha\n" * 50)
    (base / "src" / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    os.chmod(base / "src" / "a.txt", 0o640)
    from appliance.store import Store
    with Store.open(base / "store", create=True) as store:
        sid = sync(store, group_of(base / "src")).snapshot.id
    (base / "out").mkdir()
    give_to_nobody(base)
    code = (
        "import json, os\n"
        "from pathlib import Path\n"
        "from appliance.store import Store\n"
        "from appliance.protect.files import restore\n"
        "os.setgid(65534); os.setuid(65534)\n"
        f"s = Store.open(Path({str(base / 'store')!r}))\n"
        f"r = restore(s, {sid!r}, None, Path({str(base / 'out')!r}))\n"
        "print(json.dumps([r.state, r.warnings, r.files]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    state, warnings, files = json.loads(run.stdout)
    assert state == "completed", warnings
    root = restored_root(base / "out", base / "src")
    assert (root / "a.txt").read_text() == "alpha\n" * 50
    assert (root / "sub" / "b.bin").read_bytes() == (base / "src" / "sub" / "b.bin").read_bytes()
    assert oct(os.stat(root / "a.txt").st_mode & 0o777) == oct(0o640)
    assert os.stat(root / "a.txt").st_uid == 65534
    assert not list(root.rglob(".tapeline-partial-*"))


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_name_taken_while_the_file_was_written_is_kept_unless_overwrite(store, src, tmp_path, monkeypatch,
                                                                           overwrite):
    """The restore links the written file in without replacing a name that appeared meanwhile (no check-then-
    rename window); with overwrite the newcomer is replaced. (A restore this small is written on its own thread,
    where the test can step in.)"""
    from appliance.protect import restore_worker
    (src / "f.txt").write_text("from the point")
    sid = sync(store, group_of(src)).snapshot.id
    out = tmp_path / "out"
    real = restore_worker.BatchWriter._content

    def meanwhile(self, fd, places, length):  # someone creates the name while the content is being written
        real(self, fd, places, length)
        (restored_root(out, src) / "f.txt").write_text("someone else's")

    monkeypatch.setattr(restore_worker.BatchWriter, "_content", meanwhile)
    result = restore(store, sid, None, out, overwrite=overwrite)
    kept = (restored_root(out, src) / "f.txt").read_text()
    if overwrite:
        assert result.state == "completed" and kept == "from the point"
    else:
        assert result.state == "completed with warnings" and kept == "someone else's"
        assert any("f.txt: exists, not replaced" in w for w in result.warnings)
