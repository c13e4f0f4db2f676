"""A file of many chunks: its chunks are read and verified on the reader threads, ahead of its writing, in order (in a worker process:
the file is past the size a restore writes on its own thread)."""

from __future__ import annotations

import os
import random

from appliance.protect.files import restore, sync
from appliance.protect.restore_worker import SPREAD_CHUNKS
from tests.protect.conftest import group_of, restored_root
from tests.protect.test_damage import _corrupt_chunk


def _big_content() -> bytes:
    """Random bytes (stored raw) and text of random words (stored compressed), well over SPREAD_CHUNKS chunks."""
    rng = random.Random(6)
    words = [b"ledger", b"tape", b"quarter", b"figures", b"north", b"account", b"pending", b"closed"]
    text = b" ".join(rng.choice(words) for _ in range(1_300_000))
    return rng.randbytes(8 << 20) + text


def _chunks(store, sid: str, path: bytes) -> tuple[bytes, ...]:
    return next(e for e in store.entries(sid) if e.path == path).chunks


def test_a_file_of_many_chunks_is_restored_byte_for_byte_with_its_metadata(store, src, tmp_path):
    content = _big_content()
    (src / "ledger.bin").write_bytes(content)
    os.chmod(src / "ledger.bin", 0o640)
    os.utime(src / "ledger.bin", ns=(1_000_000_000, 1_600_000_000_123456789))
    sid = sync(store, group_of(src)).snapshot.id
    assert len(_chunks(store, sid, b"ledger.bin")) >= SPREAD_CHUNKS  # the test exercises the readers

    result = restore(store, sid, None, tmp_path / "out")

    assert result.state == "completed", result.warnings
    restored = restored_root(tmp_path / "out", src) / "ledger.bin"
    assert restored.read_bytes() == content
    st = os.stat(restored)
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o640, 1_600_000_000_123456789)


def test_a_damaged_chunk_inside_a_big_file_leaves_no_partial_file_and_is_named(store, src, tmp_path):
    (src / "ledger.bin").write_bytes(_big_content())
    (src / "note.txt").write_text("kept")
    sid = sync(store, group_of(src)).snapshot.id
    chunks = _chunks(store, sid, b"ledger.bin")
    _corrupt_chunk(store, chunks[len(chunks) // 2])

    result = restore(store, sid, None, tmp_path / "out")

    assert result.state == "completed with warnings"
    assert any(w.startswith("ledger.bin: not restored") for w in result.warnings), result.warnings
    root = restored_root(tmp_path / "out", src)
    assert sorted(os.listdir(root)) == ["note.txt"]  # no ledger.bin, whole or partial, under any name
    assert (root / "note.txt").read_text() == "kept"
