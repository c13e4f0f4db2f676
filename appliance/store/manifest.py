"""Snapshot manifests: one file per snapshot, snapshots/<group>/<id>.snap.

Layout: magic b"TLSNAP\\x00\\x01"; the body, one zstd frame (with its content checksum) of msgpack rows back to back
(model.py gives the row fields), in manifest order; the header, a msgpack map; a 48-byte footer: header length
(u32 LE), BLAKE3 of everything before the footer, magic b"TLSNEND\\x01", 4 zero bytes.
The header sits at the end so the body streams out in one pass; `read_header` reads only the tail.
Invariants: written under tmp/, fsynced and renamed into place (then the directory fsynced) after every pack it
names was sealed; never modified afterwards (damage is recorded beside it, in <id>.damaged).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import blake3
import msgpack
import zstandard

from appliance.store.durable import publish

SNAP_MAGIC = b"TLSNAP\x00\x01"  # "Tapeline snapshot", format 1
SNAP_END = b"TLSNEND\x01"
FOOTER = struct.Struct("<I32s8s4x")
FORMAT = 1


class ManifestFormatError(Exception):
    pass


class _HashingFile:
    """A write-only file that hashes what passes through (the footer's BLAKE3 without a second read)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.hasher = blake3.blake3()

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        return len(data)

    def flush(self) -> None:
        pass


def write_manifest(tmp_path: Path, final_path: Path, header: Callable[[], dict], rows: Iterable[list],
                   before_rename: Callable[[], None] = lambda: None) -> int:
    """Write rows then the header (asked for once the rows are out) atomically; returns the number of rows.
    `before_rename` runs after the body is on disk and before the manifest becomes visible (sealing packs)."""
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        out = _HashingFile(fd)
        out.write(SNAP_MAGIC)
        # threads=1: libzstd compresses on a thread of its own, so the walk feeding the rows does not wait on it.
        cctx = zstandard.ZstdCompressor(level=3, write_checksum=True, threads=1)
        count = 0
        with cctx.stream_writer(out, closefd=False, write_size=1 << 20) as body:
            packer = msgpack.Packer(use_bin_type=True, autoreset=False)
            for row in rows:
                packer.pack(row)
                count += 1
                if count % 4096 == 0:
                    body.write(packer.bytes())
                    packer.reset()
            body.write(packer.bytes())
        head = msgpack.packb({**header(), "format": FORMAT, "rows": count}, use_bin_type=True)
        out.write(head)
        tail = FOOTER.pack(len(head), out.hasher.digest(), SNAP_END)
        view = memoryview(tail)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        before_rename()
    except BaseException:
        os.close(fd)
        tmp_path.unlink(missing_ok=True)
        raise
    os.close(fd)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    publish(tmp_path, final_path)
    return count


def _footer(f: BinaryIO) -> tuple[int, int, bytes]:
    size = f.seek(0, os.SEEK_END)
    if size < len(SNAP_MAGIC) + FOOTER.size:
        raise ManifestFormatError(f"truncated ({size} bytes)")
    f.seek(size - FOOTER.size)
    length, digest, magic = FOOTER.unpack(f.read(FOOTER.size))
    if magic != SNAP_END or length > size - FOOTER.size - len(SNAP_MAGIC):
        raise ManifestFormatError("no valid footer")
    return size, length, digest


def read_header(path: Path) -> dict:
    with open(path, "rb") as f:
        size, length, _ = _footer(f)
        f.seek(size - FOOTER.size - length)
        try:
            header = msgpack.unpackb(f.read(length))
        except (ValueError, msgpack.UnpackException) as exc:
            raise ManifestFormatError(f"unreadable header: {exc}") from exc
        f.seek(0)
        if f.read(len(SNAP_MAGIC)) != SNAP_MAGIC:
            raise ManifestFormatError("bad magic")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ManifestFormatError(f"unsupported format {header.get('format') if isinstance(header, dict) else '?'}")
    return header


def verify(path: Path) -> None:
    """Re-hash the whole file against its footer (a full check)."""
    with open(path, "rb") as f:
        size, _, digest = _footer(f)
        f.seek(0)
        hasher = blake3.blake3()
        left = size - FOOTER.size
        while left:
            block = f.read(min(left, 1 << 22))
            if not block:
                raise ManifestFormatError("truncated")
            hasher.update(block)
            left -= len(block)
    if hasher.digest() != digest:
        raise ManifestFormatError("checksum mismatch")


def read_rows(path: Path) -> Iterator[list]:
    """Stream the rows; ManifestFormatError on damage (zstd checksum, msgpack structure)."""
    with open(path, "rb") as f:
        size, length, _ = _footer(f)
        f.seek(len(SNAP_MAGIC))
        left = size - FOOTER.size - length - len(SNAP_MAGIC)
        dobj = zstandard.ZstdDecompressor().decompressobj()
        unpacker = msgpack.Unpacker(use_list=True, strict_map_key=False, max_buffer_size=1 << 30)
        try:
            while left:
                block = f.read(min(left, 1 << 20))  # stream: a 1M-row manifest never sits whole in memory
                if not block:
                    raise ManifestFormatError("truncated body")
                left -= len(block)
                unpacker.feed(dobj.decompress(block))
                for row in unpacker:
                    if not isinstance(row, list):
                        raise ManifestFormatError("row is not a list")
                    yield row
            if not dobj.eof:
                raise ManifestFormatError("body ends early")
        except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
            raise ManifestFormatError(str(exc)) from exc
