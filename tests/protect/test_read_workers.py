"""A sync of many small files reads them in worker processes (read_workers.py): what they record restores byte for
byte, metadata and xattrs included, and a file they cannot open is a warning that keeps its previous version."""

from __future__ import annotations

import os
import signal

import pytest

from appliance.protect.files import check, restore, sync
from appliance.protect import read_workers
from appliance.protect.read_workers import BATCH_FILES, INLINE_FILES
from appliance.store import WriteSession
from tests.protect.conftest import Hook, assert_same_tree, group_of, restored_root, tree_state

FILES = INLINE_FILES + 3 * BATCH_FILES  # past what the walk reads itself


def _tree(src, version: bytes) -> None:
    """Many directories of a few files each (a batch spans several, and the walk reuses descriptor numbers), with
    empty files, copies of one content, xattrs and a big file between them."""
    for i in range(FILES):
        d = src / f"d{i // 7:04d}"
        d.mkdir(exist_ok=True)
        path = d / f"f{i}"
        if i % 50 == 0:
            path.write_bytes(b"")
        elif i % 9 == 0:
            path.write_bytes(b"the same content in many files\n" * 20 + version)
        else:
            path.write_bytes(f"file {i}\n".encode() * (i % 300) + version)
        if i % 97 == 0:
            os.setxattr(path, "user.tag", b"t%d" % i)
    (src / "d0100" / "big").write_bytes(os.urandom(1 << 20) + version)
    (src / "top").write_bytes(b"a file beside the directories, read after them by a worker " + version)


def test_many_small_files_restore_byte_for_byte(store, src, tmp_path):
    _tree(src, b"v1")
    group = group_of(src)
    first = sync(store, group)
    assert first.state == "completed", first.warnings
    assert first.stats.files_changed == FILES + 2  # and the big file and the top one
    _tree(src, b"v2")
    second = sync(store, group)
    assert second.state == "completed", second.warnings
    assert second.stats.files_changed == FILES + 2
    expected = tree_state(src)
    result = restore(store, second.snapshot.id, None, tmp_path / "out")
    assert result.state == "completed", result.warnings
    assert_same_tree(expected, restored_root(tmp_path / "out", src))
    entries = {e.path: e for e in store.entries(second.snapshot.id)}
    assert entries[b"d0000/f0"].size == 0
    assert dict(entries[b"d0013/f97"].xattrs) == {b"user.tag": b"t97"}


def test_a_file_gone_before_its_reader_opens_it_keeps_its_previous_version(store, src):
    names = [f"f{i:05d}" for i in range(FILES)]
    for name in names:
        (src / name).write_text(name)
    group = group_of(src)
    assert sync(store, group).state == "completed"
    for name in names:
        (src / name).write_text(name * 2)
    # A file in the middle of a worker's batch: the walk has queued it and not yet sent the batch when it goes.
    target = names[INLINE_FILES + BATCH_FILES // 2]
    hook = Hook(lambda: (src / target).unlink(), after=2 + names.index(target))  # the root, then each file
    second = sync(store, group, cancel=hook)
    assert second.state == "completed with warnings"
    assert [w for w in second.warnings if target in w] == \
        [f"{target}: could not be read (No such file or directory); the previous version is kept"]
    entries = {e.path.decode(): e for e in store.entries(second.snapshot.id)}
    assert entries[target].size == len(target)  # the first version, still restorable
    assert entries[names[-1]].size == 2 * len(names[-1])
    assert second.stats.files_changed == FILES - 1


def test_a_file_that_grows_before_its_reader_reads_it_is_recorded_as_read_and_restores(store, src, tmp_path):
    names = [f"f{i:05d}" for i in range(FILES)]
    for name in names:
        (src / name).write_text(name)
    # queued to a worker at its walk-time size, then 2 MiB longer before the worker reads it
    target = names[INLINE_FILES + BATCH_FILES // 2]
    hook = Hook(lambda: (src / target).write_bytes(target.encode() + os.urandom(2 << 20)),
                after=2 + names.index(target))
    result = sync(store, group_of(src), cancel=hook)
    assert result.state == "completed with warnings"
    assert any(target in w and "changed while" in w for w in result.warnings), result.warnings
    entry = next(e for e in store.entries(result.snapshot.id) if e.path == target.encode())
    restored = restore(store, result.snapshot.id, [str(src / target)], tmp_path / "out")
    assert restored.state == "completed", restored.warnings
    got = (restored_root(tmp_path / "out", src) / target).read_bytes()
    assert len(got) == entry.size and got == (src / target).read_bytes()[:entry.size]


def test_a_new_file_gone_before_its_reader_opens_it_is_not_recorded_nor_counted(store, src):
    names = [f"f{i:05d}" for i in range(FILES)]
    for name in names:
        (src / name).write_text(name)
    target = names[INLINE_FILES + BATCH_FILES // 2]
    hook = Hook(lambda: (src / target).unlink(), after=2 + names.index(target))
    result = sync(store, group_of(src), cancel=hook)
    assert result.state == "completed with warnings"
    assert [w for w in result.warnings if target in w] == \
        [f"{target}: could not be read (No such file or directory); not recorded"]
    kept = [n for n in names if n != target]
    assert sorted(e.path.decode() for e in store.entries(result.snapshot.id) if e.path) == kept
    assert result.snapshot.files == len(kept)
    # the change list names each recorded file once, in order (its numbers count the rows actually written)
    assert [c.path.decode() for c in result.changes if c.path] == kept
    assert {c.what for c in result.changes if c.path} == {"added"}


def test_a_killed_reader_fails_the_sync_with_a_fix_and_records_nothing(store, src, monkeypatch):
    _tree(src, b"v1")
    started: list = []
    real = read_workers._Worker.send

    def killed_first(self, batch):
        if not started:
            started.append(self)
            self.proc.kill()
            self.proc.wait()
        real(self, batch)

    monkeypatch.setattr(read_workers._Worker, "send", killed_first)
    result = sync(store, group_of(src))

    assert result.state == "failed"
    assert result.reason.startswith("a sync worker process ended unexpectedly (exit status -9)"), result.reason
    assert result.reason.endswith("then run the sync again")
    assert store.snapshots() == []
    assert started[0].proc.poll() is not None


def _changed_before_the_drift(monkeypatch, path, lose: str | None = None) -> list:
    """Change `path` once the walk is over (everything read), just before the readers count the drift; `lose` the
    readers "before the ask" or "while counting" (stopped before they can answer, then killed)."""
    real = read_workers.Readers.drift
    counted: list = []

    def drift(self):
        path.write_text("changed after the sync read it")
        for worker in self._workers if lose else ():
            if lose == "before the ask":
                worker.proc.kill()
                worker.proc.wait()
            else:
                worker.proc.send_signal(signal.SIGSTOP)
        count = real(self)
        counted.append(count)
        for worker in self._workers if lose == "while counting" else ():
            worker.proc.kill()
            worker.proc.wait()
        return count
    monkeypatch.setattr(read_workers.Readers, "drift", drift)
    return counted


@pytest.mark.parametrize("changed", ["d0300/f2100", "top", "d0000/f1", "d0100/big"],
                         ids=["read by a worker", "in the source's own directory", "read inline", "big"])
def test_the_drift_counts_a_file_changed_after_the_sync_read_it(store, src, monkeypatch, changed):
    _tree(src, b"v1")
    counted = _changed_before_the_drift(monkeypatch, src / changed)
    group = group_of(src)
    result = sync(store, group)
    assert result.state == "completed", result.warnings
    assert counted and counted[0] is not None  # the worker processes counted it
    assert result.drift == 1
    assert check(store, group, after=result).drift == 1


@pytest.mark.parametrize("lose", ["before the ask", "while counting"])
def test_readers_lost_once_every_file_is_read_leave_the_sync_complete_and_the_check_counts_the_drift(
        store, src, monkeypatch, lose):
    _tree(src, b"v1")
    _changed_before_the_drift(monkeypatch, src / "d0300" / "f2100", lose)
    group = group_of(src)
    result = sync(store, group)
    assert result.state == "completed", result.warnings
    assert result.drift is None and [s.id for s in store.snapshots()] == [result.snapshot.id]
    assert check(store, group, after=result).drift == 1


def test_a_sync_that_finds_most_content_stored_already_records_the_few_new_pieces_whole(store, src, tmp_path,
                                                                                       monkeypatch):
    _tree(src, b"v1")
    group = group_of(src)
    assert sync(store, group).state == "completed"
    for i, path in enumerate(sorted(p for p in src.rglob("f*"))):
        if i % 40 == 0:
            path.write_bytes(path.read_bytes() + b"new")
        else:
            os.utime(path, ns=(10**18, 10**18))  # read again, found stored
    added = []
    real_add = WriteSession.add

    def add(self, digest, blob, flags, raw_length):
        added.append(type(blob))
        real_add(self, digest, blob, flags, raw_length)
    monkeypatch.setattr(WriteSession, "add", add)
    second = sync(store, group)
    assert second.state == "completed", second.warnings
    # each new piece went to the pack as a bytes of its own, not as a view holding its reader's whole batch
    assert added and set(added) == {bytes}
    expected = tree_state(src)
    result = restore(store, second.snapshot.id, None, tmp_path / "out")
    assert result.state == "completed", result.warnings
    assert_same_tree(expected, restored_root(tmp_path / "out", src))
