"""Chunk, hash and compress on two worker threads while the main thread walks and reads.

Pieces (each one future chunk) are gathered in batches of a few MiB; a worker hashes each piece with BLAKE3,
skips pieces the store already has, and compresses the rest with zstd level 3, keeping the raw bytes when
compression saves under 3%. The GIL is released inside blake3, zstandard and pyfastcdc, so two workers give
about twice one. Results come back in submission order; the caller stores them (dedup and pack writing stay on
one thread, so packs are written sequentially).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import blake3
import zstandard
from pyfastcdc import FastCDC

from appliance.store.packs import FLAG_ZSTD

MIN_CHUNK, AVG_CHUNK, MAX_CHUNK = 256 << 10, 1 << 20, 4 << 20
BATCH_BYTES = 4 << 20
BATCH_PIECES = 256
_local = threading.local()

Result = tuple[bytes, bytes | None, int, int]  # digest, blob (None: the store has it), flags, raw length


def _cctx() -> zstandard.ZstdCompressor:
    cctx = getattr(_local, "cctx", None)
    if cctx is None:
        cctx = _local.cctx = zstandard.ZstdCompressor(level=3)
    return cctx


def compress(data) -> tuple[bytes, int]:
    size = len(data)
    if size < 128:
        return bytes(data), 0
    cctx = _cctx()
    if size > 1 << 17 and len(cctx.compress(data[:1 << 15])) > (1 << 15) - (1 << 10):
        return bytes(data), 0  # a 32 KiB sample does not compress: random or already compressed data
    blob = cctx.compress(data)
    if len(blob) > size - size // 32:
        return bytes(data), 0
    return blob, FLAG_ZSTD


def process(pieces: list, known: Callable[[bytes], bool]) -> list[Result]:
    out: list[Result] = []
    for data in pieces:
        digest = blake3.blake3(data).digest()
        if known(digest):
            out.append((digest, None, 0, len(data)))
        else:
            blob, flags = compress(data)
            out.append((digest, blob, flags, len(data)))
    return out


class Pipeline:
    """Batches pieces to the workers. `add` returns (batch, position) to find the piece's result later."""

    def __init__(self, known: Callable[[bytes], bool], workers: int = 2) -> None:
        self.known = known
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunker")
        self.chunker = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
        self.current: Batch = Batch()
        self.in_flight_bytes = 0

    def add(self, data) -> tuple[Batch, int]:
        batch = self.current
        batch.pieces.append(data)
        batch.size += len(data)
        if batch.size >= BATCH_BYTES or len(batch.pieces) >= BATCH_PIECES:
            self.submit()
        return batch, len(batch.pieces) - 1

    def submit(self) -> None:
        batch = self.current
        if batch.pieces:
            self.in_flight_bytes += batch.size
            batch.future = self.pool.submit(process, batch.pieces, self.known)
            self.current = Batch()

    def cut(self, buffer, final: bool) -> tuple[list, int]:
        """Content-defined pieces of `buffer`; unless `final`, the last piece is held back (returned length)."""
        chunks = list(self.chunker.cut_buf(buffer))
        if not final and chunks:
            last = chunks.pop()
            return [c.data for c in chunks], last.length
        return [c.data for c in chunks], 0

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class Batch:
    __slots__ = ("pieces", "size", "future", "results")

    def __init__(self) -> None:
        self.pieces: list = []
        self.size = 0
        self.future: Future | None = None
        self.results: list[Result] | None = None

    def result(self, pipeline: Pipeline) -> list[Result]:
        if self.results is None:
            if self.future is None:
                pipeline.submit()
            self.results = self.future.result()  # type: ignore[union-attr]
            pipeline.in_flight_bytes -= self.size
            self.pieces = []
        return self.results
