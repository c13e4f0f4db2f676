"""Unreadable, vanished and changing files, unmounted sources, a full disk: clear outcomes, nothing lost."""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from appliance.protect.files import restore, sync
from appliance.store import Store
from tests.protect.conftest import Hook, assert_same_tree, give_to_nobody, group_of, restored_root, tree_state


def test_vanished_file_keeps_its_previous_version(store, src, tmp_path):
    for name in "abcdef":
        (src / name).write_text(name * 10)
    group = group_of(src)
    first = sync(store, group)
    for name in "abcdef":
        (src / name).write_text(name * 20)
    second = sync(store, group, cancel=Hook(lambda: (src / "e").unlink(), after=2))
    assert second.state == "completed with warnings"
    assert any("e: vanished" in w for w in second.warnings)
    entry = {e.path: e for e in store.entries(second.snapshot.id)}[b"e"]
    assert entry.size == 10  # the previous version, still restorable
    assert first.snapshot is not None


def test_unreadable_file_warns_and_keeps_previous_version(public_base):
    base = public_base
    (base / "src").mkdir(parents=True)
    (base / "src" / "open.txt").write_text("anyone")
    (base / "src" / "secret.txt").write_text("v1")
    shutil.chown(base / "src", "nobody")
    shutil.chown(base / "src" / "open.txt", "nobody")
    store_dir = base / "store"
    store_dir.mkdir()
    shutil.chown(store_dir, "nobody")
    code = (
        "import os, sys, json, encodings.idna\n"
        "from pathlib import Path\n"
        "from appliance.store import Store\n"
        "from appliance.protect.files import sync, GroupSpec, SourceSpec\n"
        "os.setgid(65534); os.setuid(65534)  # after the imports: the interpreter's files may be root's only\n"
        f"s = Store.open(Path({str(store_dir / 's')!r}), create=True)\n"
        f"g = GroupSpec('g', (SourceSpec({str(base / 'src')!r}),))\n"
        "r = sync(s, g)\n"
        "print(json.dumps([r.state, r.warnings, sorted(e.path.decode() for e in s.entries(r.snapshot.id))]))\n"
    )
    os.chmod(base / "src" / "secret.txt", 0o600)  # root's, unreadable for nobody
    run = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    import json
    state, warnings, paths = json.loads(run.stdout)
    assert state == "completed with warnings"
    assert any("secret.txt: could not be read (Permission denied)" in w for w in warnings)
    assert "open.txt" in paths and "secret.txt" not in paths


class _AppendOnOpen:
    """Another writer that appends to `path` each time the file is opened, before the opener gets it back: a
    fanotify open-permission event holds the open until the append is done, so the file changes under every read
    attempt, in that order, whatever the machine's load (a writer thread racing the reader could lose)."""

    def __init__(self, path: Path) -> None:
        self.appends = 0
        self._out = os.open(path, os.O_WRONLY | os.O_APPEND)  # before the mark: this open must not wait on us
        self._fan = _libc.fanotify_init(_FAN_CLASS_CONTENT | _FAN_CLOEXEC, os.O_RDONLY)
        if self._fan < 0:
            pytest.fail(f"fanotify_init: {os.strerror(ctypes.get_errno())}: run the tests as root (./dev test)")
        if _libc.fanotify_mark(self._fan, _FAN_MARK_ADD, _FAN_OPEN_PERM, _AT_FDCWD, bytes(path)) < 0:
            pytest.fail(f"fanotify_mark: {os.strerror(ctypes.get_errno())}")
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                events = os.read(self._fan, 4096)
            except OSError:  # closed: the test is over
                return
            while events:
                length, _, _, _, _, fd, _ = struct.unpack_from("=IBBHQii", events)
                os.write(self._out, b"x" * 4096)
                self.appends += 1
                os.write(self._fan, struct.pack("=iI", fd, _FAN_ALLOW))
                os.close(fd)
                events = events[length:]

    def close(self) -> None:
        os.close(self._fan)
        os.close(self._out)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
_FAN_CLASS_CONTENT, _FAN_CLOEXEC, _FAN_OPEN_PERM, _FAN_MARK_ADD, _FAN_ALLOW, _AT_FDCWD = 0x4, 0x1, 0x10000, 0x1, 0x1, -100


def test_file_changing_while_read_is_retried_then_recorded_with_warning(store, src):
    path = src / "growing.log"
    path.write_bytes(os.urandom(8 << 20))
    writer = _AppendOnOpen(path)
    try:
        result = sync(store, group_of(src))
    finally:
        writer.close()
    assert writer.appends >= 3  # the file changed under each of the reader's tries
    assert result.state == "completed with warnings"
    assert any("growing.log: changed while read" in w for w in result.warnings)
    entry = {e.path: e for e in store.entries(result.snapshot.id)}[b"growing.log"]
    assert entry.note == "changed while read"


@pytest.mark.parametrize("how", ["emptied", "removed", "most files gone"])
def test_unmounted_source_is_refused(store, src, how):
    for i in range(20):
        (src / f"f{i}").write_text(str(i))
    group = group_of(src)
    first = sync(store, group)
    if how == "emptied":
        for p in src.iterdir():
            p.unlink()
    elif how == "removed":
        shutil.rmtree(src)
    else:
        for i in range(15):
            (src / f"f{i}").unlink()
    result = sync(store, group)
    assert result.state == "failed" and result.snapshot is None
    assert "mounted" in result.reason
    assert [s.id for s in store.snapshots("g")] == [first.snapshot.id]


def test_cancel_records_nothing(store, src):
    for i in range(5):
        (src / f"f{i}").write_text(str(i))
    cancel = threading.Event()
    cancel.set()
    result = sync(store, group_of(src), cancel=cancel)
    assert result.state == "failed" and "cancelled" in result.reason
    assert store.snapshots() == []


def test_disk_full_fails_cleanly_and_keeps_what_was_protected(tmp_path, src):
    if os.geteuid() != 0:  # mounting the small disk needs root: this test runs again as root of a user namespace
        this = f"{__file__}::test_disk_full_fails_cleanly_and_keeps_what_was_protected"
        inner = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-m", "pytest",
                                "-q", "-p", "no:cacheprovider", this], capture_output=True, text=True,
                               cwd=Path(__file__).parents[2])
        assert inner.returncode == 0 and "\n1 passed" in inner.stdout, (
            f"as root of a user namespace (unshare -rm): {inner.stdout[-3000:]}{inner.stderr[-1000:]}")
        return
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    try:
        (src / "small.txt").write_text("fits")
        store = Store.open(mnt / "store", create=True)
        group = group_of(src)
        first = sync(store, group)
        expected = tree_state(src)
        assert first.state == "completed"
        (src / "big.bin").write_bytes(os.urandom(8 << 20))  # incompressible, larger than the disk
        result = sync(store, group)
        assert result.state == "failed"
        assert "disk full" in result.reason
        assert list((mnt / "store" / "tmp").iterdir()) == []
        assert [s.id for s in store.snapshots()] == [first.snapshot.id]
        (src / "big.bin").unlink()
        out = tmp_path / "out"
        assert restore(store, first.snapshot.id, None, out).state == "completed"
        assert_same_tree(expected, restored_root(out, src))
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_unreadable_directory_keeps_its_previous_contents(public_base):
    base = public_base
    (base / "src" / "priv").mkdir(parents=True)
    (base / "src" / "pub.txt").write_text("public")
    (base / "src" / "priv" / "b.txt").write_text("private")
    store = Store.open(base / "store", create=True)
    first = sync(store, group_of(base / "src"))
    assert first.state == "completed"
    store.close()
    os.chmod(base / "src" / "priv", 0o700)  # root's: nobody cannot list it
    give_to_nobody(base / "store")
    code = (
        "import json\n"
        "from pathlib import Path\n"
        "from appliance.store import Store\n"
        "from appliance.protect.files import sync, GroupSpec, SourceSpec\n"
        "import os; os.setgid(65534); os.setuid(65534)\n"
        f"s = Store.open(Path({str(base / 'store')!r}))\n"
        f"r = sync(s, GroupSpec('g', (SourceSpec({str(base / 'src')!r}),)))\n"
        "print(json.dumps([r.state, r.warnings, sorted(e.path.decode() for e in s.entries(r.snapshot.id))]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    import json
    state, warnings, paths = json.loads(run.stdout)
    assert state == "completed with warnings"
    assert any("priv: directory not read" in w and "kept" in w for w in warnings)
    assert "priv/b.txt" in paths and "pub.txt" in paths
