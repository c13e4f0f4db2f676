"""A big restore is written by worker processes (restore_worker.py): what a restore keeps holds there too: every
byte and bit of metadata, hard links, sparse files, xattrs and ACLs, a file's error as a warning naming it, cancel,
and a worker that dies fails the restore with a fix instead of leaving it hanging or half done."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from appliance.protect import restore_files
from appliance.protect.files import restore, sync
from appliance.store import workers as workers_module
from tests.protect.conftest import assert_same_tree, group_of, restored_root, tree_state
from tests.protect.test_fidelity import acl_tool, build_rich_tree


@pytest.fixture
def workers(monkeypatch) -> list:
    """Every batch goes to the worker processes (a restore this small is otherwise written on its own thread);
    the list holds each worker started."""
    started: list = []

    class Counted(restore_files._Worker):
        def __init__(self, config: tuple) -> None:
            super().__init__(config)
            started.append(self)

    monkeypatch.setattr(restore_files, "INLINE_FILES", 0)
    monkeypatch.setattr(restore_files, "_Worker", Counted)
    return started


def _many(src, dirs: int = 5, files: int = 60) -> None:
    for d in range(dirs):
        (src / f"d{d}").mkdir()
        for f in range(files):
            (src / f"d{d}" / f"f{f}.txt").write_bytes(f"file {d}/{f}\n".encode() * (f + 1))
    os.link(src / "d0" / "f1.txt", src / "d4" / "again.txt")


class _CancelAfter(threading.Event):
    """Set from the walk's `after`-th poll on (the walk polls it before every entry): a cancel at a known point."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls >= self.after


def test_every_byte_and_bit_of_metadata_comes_back_through_the_workers(workers, store, src, tmp_path):
    build_rich_tree(src)
    _many(src)
    expected = tree_state(src)
    sid = sync(store, group_of(src)).snapshot.id

    result = restore(store, sid, None, tmp_path / "out")

    assert result.state == "completed", result.warnings
    assert len(workers) == restore_files.WORKERS
    assert all(w.proc.poll() == 0 for w in workers)  # ended when the restore did
    root = restored_root(tmp_path / "out", src)
    assert_same_tree(expected, root)
    assert os.stat(root / "sparse.img").st_blocks * 512 < (1 << 20)  # holes kept
    assert os.stat(root / "d4" / "again.txt").st_ino == os.stat(root / "d0" / "f1.txt").st_ino
    acl = subprocess.run([acl_tool("getfacl"), "-p", str(root / "empty")], capture_output=True, text=True).stdout
    assert "user:nobody:rw-" in acl


def test_a_killed_worker_fails_the_restore_with_a_fix_and_leaves_no_partial_file(workers, store, src, tmp_path,
                                                                                monkeypatch):
    _many(src)
    expected = tree_state(src)
    sid = sync(store, group_of(src)).snapshot.id
    real = restore_files._Worker.send

    def killed_first(self, *args):
        if self is workers[0] and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        real(self, *args)

    monkeypatch.setattr(restore_files._Worker, "send", killed_first)
    result = restore(store, sid, None, tmp_path / "out")

    assert result.state == "failed"
    assert result.reason.startswith("a restore worker process ended unexpectedly (exit status -9)")
    assert "run the same `tapeline restore` again" in result.reason
    root = restored_root(tmp_path / "out", src)
    for path in root.rglob("*"):  # whatever is under a real name is whole
        assert not path.name.startswith(".tapeline-partial-")
        if path.is_file():
            assert path.read_bytes() == (src / path.relative_to(root)).read_bytes()
    assert all(w.proc.poll() is not None for w in workers)
    assert len(expected) > len(list(root.rglob("*")))


def test_cancel_stops_the_workers_and_leaves_only_whole_files(workers, store, src, tmp_path):
    _many(src)
    sid = sync(store, group_of(src)).snapshot.id

    result = restore(store, sid, None, tmp_path / "out", cancel=_CancelAfter(150))

    assert (result.state, result.reason) == ("failed", "cancelled")
    assert 0 < result.files < 300
    assert all(w.proc.poll() == 0 for w in workers)
    root = restored_root(tmp_path / "out", src)
    written = [p for p in root.rglob("*") if p.is_file()]
    assert len(written) == result.files
    for path in written:
        assert path.read_bytes() == (src / path.relative_to(root)).read_bytes()


def test_a_worker_that_cannot_start_fails_the_restore_with_a_fix(workers, store, src, tmp_path, monkeypatch):
    (src / "a.txt").write_text("alpha")
    sid = sync(store, group_of(src)).snapshot.id
    monkeypatch.setattr(workers_module.sys, "executable", str(tmp_path / "no-python"))

    result = restore(store, sid, None, tmp_path / "out")

    assert result.state == "failed"
    assert result.reason.startswith("a restore worker process could not be started (No such file or directory)")
    assert "run the same `tapeline restore` again" in result.reason


def test_a_connection_that_breaks_to_a_live_worker_fails_the_restore_instead_of_hanging(workers, store, src,
                                                                                      tmp_path, monkeypatch):
    # The message goes, its descriptors do not (as when the daemon runs out of descriptors to pass): the worker,
    # alive, waits for them; the restore must end it and fail, not wait for it to exit.
    _many(src)
    sid = sync(store, group_of(src)).snapshot.id
    real = workers_module.send_fds

    def broken(sock, fds):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(workers_module, "send_fds", broken)
    done: list = []
    run = threading.Thread(target=lambda: done.append(restore(store, sid, None, tmp_path / "out")))
    run.start()
    run.join(60)
    monkeypatch.setattr(workers_module, "send_fds", real)
    assert not run.is_alive(), "the restore waited for a worker that waits for it"
    [result] = done
    assert result.state == "failed"
    assert result.reason.startswith("a restore worker process ended unexpectedly (the connection to it failed: "
                                    "Too many open files)")
    assert all(w.proc.poll() is not None for w in workers)


def test_a_worker_whose_connection_cannot_be_set_up_fails_the_restore_and_is_not_left_running(store, src, tmp_path,
                                                                                             monkeypatch):
    # Past the process's start (a descriptor it cannot have): not one file's warning with a whole batch gone.
    _many(src)
    sid = sync(store, group_of(src)).snapshot.id
    monkeypatch.setattr(restore_files, "INLINE_FILES", 0)
    started: list = []
    real_popen = workers_module.subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    class Refused(workers_module.connection.Connection):
        def send(self, obj):
            raise OSError(24, "Too many open files")

    monkeypatch.setattr(workers_module.subprocess, "Popen", popen)
    monkeypatch.setattr(workers_module.connection, "Connection", Refused)
    result = restore(store, sid, None, tmp_path / "out")

    assert result.state == "failed"
    assert result.reason.startswith("a restore worker process could not be started (Too many open files)")
    assert started and all(p.returncode is not None for p in started)
