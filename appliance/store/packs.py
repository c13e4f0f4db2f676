"""Pack files: many compressed chunks in one file, with the pack's own index at its end.

Layout (docs/store-format.md): magic b"TLPACK\\x00\\x01", the blobs back to back, a msgpack index
[[digest, offset, length, raw_length, flags], ...], then a 48-byte footer: index length (u32 LE),
BLAKE3 of the index (32 bytes), magic b"TLPKEND\\x01", 4 zero bytes.
Invariants: a pack is written under tmp/, fsynced, then renamed into packs/ (and the directory fsynced) before
any manifest can name its chunks; a pack in packs/ is never modified, only deleted by garbage collection.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path

import blake3
import msgpack
import xxhash
import zstandard

from appliance.store.durable import publish
from appliance.store.errors import ChunkDamaged

PACK_MAGIC = b"TLPACK\x00\x01"  # "Tapeline pack", format 1
PACK_END = b"TLPKEND\x01"
FOOTER = struct.Struct("<I32s8s4x")
FLAG_ZSTD = 1
_local = threading.local()


def decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor (one is not to be shared between threads)."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def verified(digest: bytes, blob: bytes | memoryview, flags: int, where: Callable[[], str]) -> bytes | memoryview:
    """The chunk from its stored bytes, checked against its digest: ChunkDamaged naming `where()` (its pack)
    otherwise. The store's reads and the restore's worker processes both come here."""
    try:
        data = decompressor().decompress(blob) if flags & FLAG_ZSTD else blob
    except zstandard.ZstdError:
        raise ChunkDamaged(digest, where()) from None
    if blake3.blake3(data).digest() != digest:
        raise ChunkDamaged(digest, where())
    return data


class PackFormatError(Exception):
    pass


class PackWriter:
    """Appends blobs to a temp pack; `finish` seals and renames it into place and returns its index rows.

    Blobs are gathered and written with one writev per ~4 MiB, on `io` (a single thread, so writes stay in
    order and the GIL is free meanwhile) when given. `finish` must run on that same thread, or with no io.
    Every byte written passes through XXH3-128 on its way out: `digest` (after `finish`) is the checksum of the
    whole pack as the writer produced it, against which the sealed file is read back (Store.verify_pack).
    """

    def __init__(self, tmp_dir: Path, final_dir: Path, name: str, io: Executor | None = None) -> None:
        self.name = name
        self.tmp_path = tmp_dir / f"{name}.pack.tmp"
        self.final_path = final_dir / name[:2] / f"{name}.pack"
        self.fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.io = io
        self.parts: list[bytes] = [PACK_MAGIC]
        self.parts_size = len(PACK_MAGIC)
        self.offset = len(PACK_MAGIC)
        self.rows: list[list] = []
        self.writes: list[Future] = []
        self.hasher = xxhash.xxh3_128()
        self.digest = b""

    def add(self, digest: bytes, blob: bytes | memoryview, flags: int, raw_length: int) -> int:
        offset = self.offset
        self.parts.append(blob)
        self.parts_size += len(blob)
        self.offset += len(blob)
        self.rows.append([digest, offset, len(blob), raw_length, flags])
        if self.parts_size >= 1 << 22:  # few, big writes; no per-chunk fsync
            parts, self.parts, self.parts_size = self.parts, [], 0
            if self.io is None:
                write_all(self.fd, parts, self.hasher)
            else:
                self.writes.append(self.io.submit(write_all, self.fd, parts, self.hasher))
                while self.writes and self.writes[0].done():
                    self.writes.pop(0).result()  # a failed write (ENOSPC) surfaces at the next add
        return offset

    def finish(self) -> list[list]:
        for done in self.writes:
            done.result()
        index = msgpack.packb(self.rows, use_bin_type=True)
        write_all(self.fd, [*self.parts, index, FOOTER.pack(len(index), blake3.blake3(index).digest(), PACK_END)],
                  self.hasher)
        self.parts = []
        self.digest = self.hasher.digest()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        self.final_path.parent.mkdir(exist_ok=True)
        publish(self.tmp_path, self.final_path)
        return self.rows

    def abort(self) -> None:
        for pending in self.writes:
            pending.cancel()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.tmp_path.unlink(missing_ok=True)


def pack_digest(data: bytes | memoryview) -> bytes:
    """The checksum a writer computes of a whole pack (PackWriter.digest), of bytes read back.

    XXH3-128, not BLAKE3: it compares what was written with what reads back, on the writer's thread for every byte
    a sync stores, piece by piece. BLAKE3 ran at ~1 GB/s over a pack's pieces of a few KiB (~0.6 CPU s of the
    bench's first sync, holding the GIL), XXH3 at ~24 GB/s. What names a chunk stays its BLAKE3 digest."""
    return xxhash.xxh3_128(data).digest()


def write_all(fd: int, parts: list[bytes], hasher: xxhash.xxh3_128) -> None:
    update = hasher.update
    for part in parts:
        update(part)
    for start in range(0, len(parts), 512):
        group = parts[start:start + 512]
        want = sum(len(p) for p in group)
        done = os.writev(fd, group)
        if done < want:  # short write (rare on files): finish it piece by piece
            view = memoryview(b"".join(group))[done:]
            while view:
                view = view[os.write(fd, view):]


def read_pack_index(path: Path) -> list[list]:
    """The index rows of a sealed pack; PackFormatError when the pack is truncated or damaged."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < len(PACK_MAGIC) + FOOTER.size:
            raise PackFormatError(f"{path.name} is truncated ({size} bytes)")
        f.seek(size - FOOTER.size)
        length, digest, magic = FOOTER.unpack(f.read(FOOTER.size))
        if magic != PACK_END or length > size - FOOTER.size - len(PACK_MAGIC):
            raise PackFormatError(f"{path.name} has no valid footer")
        f.seek(size - FOOTER.size - length)
        index = f.read(length)
        if blake3.blake3(index).digest() != digest:
            raise PackFormatError(f"{path.name} has a damaged index")
        f.seek(0)
        if f.read(len(PACK_MAGIC)) != PACK_MAGIC:
            raise PackFormatError(f"{path.name} is not a Tapeline pack (bad magic)")
    return msgpack.unpackb(index, use_list=True)
