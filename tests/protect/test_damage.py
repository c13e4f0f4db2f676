"""Damaged chunks and manifests: detected, repaired from the source when it can be, otherwise reported."""

from __future__ import annotations

import os
import threading

import blake3
import pytest

from appliance.protect.files import check, restore, sync
from appliance.protect.pipeline import compress
from appliance.store import Store
from appliance.store.packs import PackFormatError, PackWriter, pack_digest, read_pack_index
from tests.protect.conftest import assert_same_tree, group_of, restored_root, tree_state


def _corrupt_chunk(store: Store, digest: bytes) -> None:
    pack = store.pack_of(digest).split()[-1]
    value = store._index[digest]
    offset = (value >> 32) & 0xFFFFFFFF
    path = next(store.root.glob(f"packs/*/{pack}.pack"))
    with open(path, "r+b") as f:
        f.seek(offset + 5)
        byte = f.read(1)
        f.seek(offset + 5)
        f.write(bytes([byte[0] ^ 0xFF]))


def _chunk_of(store: Store, sid: str, path: bytes) -> bytes:
    return next(e for e in store.entries(sid) if e.path == path).chunks[0]


def test_damaged_chunk_is_repaired_from_unchanged_source(store, src, tmp_path):
    (src / "report.txt").write_bytes(b"quarterly figures\n" * 5000)
    (src / "other.txt").write_text("other")
    group = group_of(src)
    expected = tree_state(src)
    sid = sync(store, group).snapshot.id
    _corrupt_chunk(store, _chunk_of(store, sid, b"report.txt"))
    result = check(store, group, full=True)
    assert result.state == "repaired" and result.repaired == 1 and not result.alerts
    assert store.snapshot(sid).state == "ok"
    out = tmp_path / "out"
    assert restore(store, sid, None, out).state == "completed"
    assert_same_tree(expected, restored_root(out, src))
    reopened_check = check(store, group, full=True)
    assert reopened_check.state == "ok"


def test_damaged_chunk_without_source_marks_points_damaged_and_others_stay_readable(store, src, tmp_path):
    (src / "report.txt").write_bytes(b"quarterly figures\n" * 5000)
    (src / "other.txt").write_text("other")
    group = group_of(src)
    sid = sync(store, group, kind="point").snapshot.id
    (src / "report.txt").write_bytes(b"rewritten since\n")
    later = sync(store, group, kind="point").snapshot.id
    _corrupt_chunk(store, _chunk_of(store, sid, b"report.txt"))
    result = check(store, group, full=True)
    assert result.state == "damaged"
    assert result.damaged_snapshots == (sid,)
    assert "report.txt" in result.alerts[0].message and "tapeline sync g" in result.alerts[0].fix
    assert store.snapshot(sid).state == "damaged" and store.snapshot(later).state == "ok"
    partial = restore(store, sid, None, tmp_path / "out")
    assert partial.state == "completed with warnings"
    assert any("report.txt" in w and "damaged" in w for w in partial.warnings)
    assert (restored_root(tmp_path / "out", src) / "other.txt").read_text() == "other"
    whole = restore(store, later, None, tmp_path / "later")
    assert whole.state == "completed"


def test_sync_stores_a_damaged_chunk_again_when_the_content_comes_back(store, src):
    content = b"precious\n" * 4000
    (src / "a.txt").write_bytes(content)
    group = group_of(src)
    sid = sync(store, group).snapshot.id
    digest = _chunk_of(store, sid, b"a.txt")
    _corrupt_chunk(store, digest)
    (src / "a.txt").write_bytes(b"different")  # the source moved on: no repair possible
    assert check(store, group, sid, full=True).state == "damaged"
    (src / "a.txt").write_bytes(content)  # and came back
    new = sync(store, group).snapshot.id
    assert store.read_chunk(digest) == content
    assert check(store, group, new).state == "ok"


def test_corrupted_manifest_is_reported_and_other_snapshots_stay_readable(tmp_path, src):
    store = Store.open(tmp_path / "store", create=True)
    (src / "a").write_text("one")
    group = group_of(src)
    first = sync(store, group).snapshot.id
    (src / "a").write_text("two")
    second = sync(store, group).snapshot.id
    store.close()
    path = next((tmp_path / "store").glob(f"snapshots/*/{second}.snap"))
    data = bytearray(path.read_bytes())
    data[12] ^= 0xFF
    path.write_bytes(bytes(data))
    store = Store.open(tmp_path / "store")
    result = check(store, group, full=True)
    assert second in result.damaged_snapshots
    assert "damaged manifest" in result.alerts[0].message
    assert store.snapshot(second).state == "damaged"
    bad = restore(store, second, None, tmp_path / "bad")
    assert bad.state == "failed" and "damaged manifest" in bad.reason
    assert restore(store, first, None, tmp_path / "ok").state == "completed"
    third = sync(store, group)  # the damaged one is skipped as a base
    assert third.state == "completed"
    store.close()


def test_check_after_sync_verifies_new_chunks(store, src):
    (src / "a").write_bytes(os.urandom(100_000))
    group = group_of(src)
    sync(store, group)
    (src / "b").write_bytes(os.urandom(100_000))
    sid = sync(store, group).snapshot.id
    result = check(store, group)
    assert result.state == "ok" and result.checked_snapshots == (sid,)
    assert result.drift == 0
    (src / "b").write_bytes(b"changed after the sync")
    assert check(store, group).drift == 1


class _ChangeDuringWalk(threading.Event):
    """A cancel event whose is_set() (polled by the walk after each entry) changes file `a` at the third poll,
    after the sync read it: a real change to the source before the sync ends."""

    def __init__(self, src) -> None:
        super().__init__()
        self.src, self.calls = src, 0

    def is_set(self) -> bool:
        self.calls += 1
        if self.calls == 3:
            (self.src / "a").write_text("changed after the sync read it")
        return super().is_set()


def test_a_file_changed_after_the_sync_read_it_counts_in_the_drift_of_the_check_after_it(store, src):
    for name in "abcd":
        (src / name).write_text(name)
    group = group_of(src)
    res = sync(store, group, cancel=_ChangeDuringWalk(src))
    assert res.state == "completed"
    assert {e.path: e.size for e in store.entries(res.snapshot.id)}[b"a"] == 1  # what the sync read
    assert check(store, group, after=res).drift == 1


def test_missing_pack_found_by_the_check_after_sync(tmp_path, src):
    store = Store.open(tmp_path / "store", create=True)
    (src / "a").write_bytes(os.urandom(50_000))
    group = group_of(src)
    sid = sync(store, group).snapshot.id
    store.close()
    for pack in (tmp_path / "store").glob("packs/*/*.pack"):
        pack.unlink()  # lost to a disk fault or an operator
    store = Store.open(tmp_path / "store")
    (src / "a").write_bytes(b"source moved on")
    result = check(store, group, sid)
    assert result.state == "damaged" and result.damaged_snapshots == (sid,)
    assert "cannot be restored whole" in result.alerts[0].message
    store.close()


def test_a_pack_lost_between_syncs_is_found_by_the_check_after_the_next_sync_and_repaired(tmp_path, src):
    store = Store.open(tmp_path / "store", create=True)
    (src / "a").write_bytes(os.urandom(50_000))
    (src / "b").write_bytes(b"stays the same\n" * 100)
    group = group_of(src)
    sync(store, group)
    store.close()
    for pack in (tmp_path / "store").glob("packs/*/*.pack"):
        pack.unlink()
    store = Store.open(tmp_path / "store")
    (src / "c").write_bytes(os.urandom(10_000))  # the sync has something new to store and verify too
    expected = tree_state(src)
    after = sync(store, group)
    assert after.verified is not None and len(after.verified.bad) == 2  # a and b, unchanged, name lost chunks
    result = check(store, group, after=after)
    assert result.state == "repaired" and result.repaired == 2 and result.drift == 0
    assert restore(store, after.snapshot.id, None, tmp_path / "out").state == "completed"
    assert_same_tree(expected, restored_root(tmp_path / "out", src))
    store.close()


@pytest.mark.parametrize("compressed", [False, True])
def test_a_sealed_pack_is_read_back_and_a_bad_blob_in_it_named(store, compressed):
    session = store.session()
    pieces = [b"good %d " % i * 200 for i in range(3)] + [b"bad " * 250]
    for data in pieces:
        blob, flags = compress(data) if compressed else (data, 0)
        session.add(blake3.blake3(data).digest(), blob, flags, len(data))
    session.flush()
    assert session.bad_chunks() == set() and session.verified_chunks == 4
    session.close()
    digests = [blake3.blake3(p).digest() for p in pieces]
    pack = store.pack_of(digests[-1]).split()[-1]
    path = next(store.root.glob(f"packs/*/{pack}.pack"))
    written = pack_digest(path.read_bytes())  # what the writer produced: the session found it whole
    rows = [[d, *_where(store, d)] for d in digests]
    assert store.verify_pack(pack, rows, written) == set()
    _corrupt_chunk(store, digests[-1])
    assert store.verify_pack(pack, rows, written) == {digests[-1]}
    assert store.verify_pack(pack, rows) == {digests[-1]}


def test_a_pack_written_whole_reads_back_to_its_writers_hash_and_damage_outside_its_blobs_fails_every_blob(store):
    writer = PackWriter(store.root / "tmp", store.root / "packs", "00000000000000aa00000000")
    pieces = [b"piece %d " % i * 300 for i in range(3)]
    for data in pieces:
        writer.add(blake3.blake3(data).digest(), data, 0, len(data))
    rows = writer.finish()
    path = writer.final_path
    assert writer.digest == pack_digest(path.read_bytes())
    assert store.verify_pack(writer.name, rows, writer.digest) == set()
    with open(path, "r+b") as f:  # a byte of the pack's own index, after the blobs
        f.seek(path.stat().st_size - 60)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(PackFormatError, match="damaged index"):
        read_pack_index(path)
    assert store.verify_pack(writer.name, rows, writer.digest) == {blake3.blake3(p).digest() for p in pieces}


def _where(store: Store, digest: bytes) -> list:
    value = store._index[digest]
    return [(value >> 32) & 0xFFFFFFFF, (value >> 1) & 0x7FFFFFFF, 0, value & 1]
