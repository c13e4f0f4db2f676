"""The store's own formats and guarantees: packs, manifests, index rebuild, lock, temp clean-up, damage."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import blake3
import pytest

from appliance.store import ChunkDamaged, ChunkMissing, Store, StoreLocked, StoreNotFound
from appliance.store.packs import FLAG_ZSTD


def _put(store: Store, datas: list[bytes]) -> list[bytes]:
    import zstandard
    session = store.session()
    out = []
    for data in datas:
        digest = blake3.blake3(data).digest()
        session.add(digest, zstandard.ZstdCompressor().compress(data), FLAG_ZSTD, len(data))
        out.append(digest)
    session.flush()
    session.close()
    return out


def test_missing_store_and_second_opener_are_refused(tmp_path):
    with pytest.raises(StoreNotFound, match="create it"):
        Store.open(tmp_path / "nowhere")
    store = Store.open(tmp_path / "s", create=True)
    with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
        Store.open(tmp_path / "s")
    store.close()
    Store.open(tmp_path / "s").close()


def test_chunks_survive_reopen_and_index_is_rebuilt_from_packs(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    datas = [os.urandom(1000), b"text " * 1000, b""]
    digests = _put(store, datas)
    store.close()
    store = Store.open(tmp_path / "s")
    assert [store.read_chunk(d) for d in digests] == datas
    with pytest.raises(ChunkMissing):
        store.read_chunk(b"\0" * 32)
    store.close()


def test_unfinished_writes_are_dropped_on_open(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    session = store.session()
    session.add(b"\1" * 32, b"never sealed", 0, 12)  # a pack left in tmp/, as by a kill -9
    store.close()
    assert list((tmp_path / "s" / "tmp").iterdir())
    store = Store.open(tmp_path / "s")
    assert list((tmp_path / "s" / "tmp").iterdir()) == []
    assert not store.has_chunk(b"\1" * 32)
    store.close()


def test_damaged_chunk_and_damaged_pack_index_are_detected(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    (digest,) = _put(store, [b"important " * 100])
    store.close()
    pack = next((tmp_path / "s" / "packs").glob("*/*.pack"))
    data = bytearray(pack.read_bytes())
    data[10] ^= 0xFF
    pack.write_bytes(bytes(data))
    store = Store.open(tmp_path / "s")
    with pytest.raises(ChunkDamaged, match="check GROUP --full"):
        store.read_chunk(digest)
    store.close()
    data[-60] ^= 0xFF  # inside the pack's own index
    pack.write_bytes(bytes(data))
    store = Store.open(tmp_path / "s")
    assert any("damaged index" in w for w in store.open_warnings)
    assert not store.has_chunk(digest)
    store.close()


def test_manifest_round_trip_keeps_every_field(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    row = [0, b"caf\xe9/\xff", 0, 0o100640, 1000, 1001, "u", "", 12345, 1_700_000_000_123_456_789, 5, 6, 7, 8, 2,
           0, None, {b"user.x": b"\0\1", b"system.posix_acl_access": b"\2\0\0\0"}, b"d" * 32, b"c" * 64,
           [[0, 10], [4096, 5]], "changed while read"]
    session = store.session()
    created = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    info = session.commit("group with spaces/and slash", "point", created, ["/src"], [row],
                          lambda: {"files": 1, "bytes": 12345, "warnings": ["w"]})
    session.close()
    store.close()
    store = Store.open(tmp_path / "s")
    (again,) = store.snapshots("group with spaces/and slash")
    assert again == info and again.created == created and again.kind == "point" and again.warnings == ("w",)
    (entry,) = store.entries(info.id)
    assert entry.path == b"caf\xe9/\xff" and entry.full_path == b"/src/caf\xe9/\xff"
    assert entry.xattrs == ((b"system.posix_acl_access", b"\2\0\0\0"), (b"user.x", b"\0\1"))
    assert entry.chunks == (b"c" * 32, b"c" * 32) and entry.extents == ((0, 10), (4096, 5))
    assert entry.mtime_ns == 1_700_000_000_123_456_789 and entry.note == "changed while read"
    assert list(store.rows(info.id)) == [row]
    store.close()


def test_every_format_starts_with_its_versioned_magic(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    _put(store, [b"x"])
    session = store.session()
    session.commit("g", "sync", datetime.now(UTC), ["/"], [], lambda: {})
    session.close()
    store.close()
    root = Path(tmp_path / "s")
    assert (root / "config").read_bytes().startswith(b"TLSTORE\x01")
    pack = next(root.glob("packs/*/*.pack")).read_bytes()
    assert pack.startswith(b"TLPACK\0\1") and pack[-12:-4] == b"TLPKEND\x01"
    snap = next(root.glob("snapshots/*/*.snap")).read_bytes()
    assert snap.startswith(b"TLSNAP\0\1") and snap[-12:-4] == b"TLSNEND\x01"
