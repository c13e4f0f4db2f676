"""Hash on the walking thread, compress in batches on a worker: the shape that suits the GIL.

Files above MIN_CHUNK come here (files up to it, most of a tree, are read in worker processes: read_workers.py).
The walking thread reads a file, hashes each piece with BLAKE3 (~2 GB/s) and asks the store whether it has it;
only new pieces are queued. Every new piece of 128 bytes or more is compressed with zstd level 3, in batches of a
few MiB, by ONE call to `multi_compress_to_buffer` on a worker thread, which releases the GIL for the whole batch:
per-piece calls would hand the GIL back and forth thousands of times a second and run several times slower than
either thread alone (measured: 10x for small files). A piece whose compressed form saves under 3% is stored raw.
No sample is compressed first to spot random data: zstd level 3 gets through incompressible input at ~5 GB/s on
the worker, while the samples cost the walking thread ~0.2 s of the bench's initial sync.
A batch is compressed on one thread while the walking thread keeps up (many small files: the walk is the
bottleneck, and a second compression thread only takes a core from it: 3.8 s against 4.4 s for the bench's
initial sync on two cores), on two once BACKLOG batches wait (big compressible files: compression is then the
bottleneck, and two threads are ~10% faster).

A reference to a piece's result is: its digest (bytes) when the store has it already; a ready Result tuple;
or (Batch, position) until the batch's compression finishes. A piece seen twice before it is stored gets the
same reference twice; whichever holder stores it first pops it from `queued` (Scanner._store), so each new
piece is written once and no holder depends on another that may drop its references (a file read again).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import blake3
import zstandard
from pyfastcdc import FastCDC

from appliance.store.packs import FLAG_ZSTD

MIN_CHUNK, AVG_CHUNK, MAX_CHUNK = 256 << 10, 1 << 20, 4 << 20
BATCH_BYTES = 8 << 20
BATCH_PIECES = 1024
BACKLOG = 2

Result = tuple[bytes, bytes, int, int]  # digest, stored bytes, flags, raw length


def compress(data, cctx: zstandard.ZstdCompressor | None = None) -> tuple[bytes, int]:
    """One piece, as the batches store it (for repairs and small jobs)."""
    blob = (cctx or zstandard.ZstdCompressor(level=3)).compress(data)
    if len(blob) > len(data) - len(data) // 32:
        return bytes(data), 0
    return blob, FLAG_ZSTD


class Batch:
    __slots__ = ("pieces", "digests", "size", "future", "results")

    def __init__(self) -> None:
        self.pieces: list = []
        self.digests: list[bytes] = []
        self.size = 0
        self.future: Future | None = None
        self.results: list[Result] | None = None

    def result(self, pipeline: Pipeline) -> list[Result]:
        if self.results is None:
            if self.future is None:
                pipeline.submit()
            out = self.future.result()  # type: ignore[union-attr]
            results = []
            for data, digest, segment in zip(self.pieces, self.digests, out):
                raw = len(data)
                if len(segment) > raw - raw // 32:
                    results.append((digest, bytes(data), 0, raw))
                else:
                    results.append((digest, segment.tobytes(), FLAG_ZSTD, raw))
            self.results = results
            self.pieces = []
        return self.results


class Pipeline:
    def __init__(self, known: Callable[[bytes], bool]) -> None:
        self.known = known
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compress")
        self.batch_cctx = zstandard.ZstdCompressor(level=3)  # used by the worker only
        self.chunker = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
        self.current = Batch()
        self.queued: dict[bytes, object] = {}  # digest -> reference, until the caller stored it
        self.waiting: list[Future] = []  # submitted batches, oldest first (done ones dropped at each submit)

    def add(self, data) -> object:
        digest = blake3.blake3(data).digest()
        ref = self.queued.get(digest)
        if ref is not None:  # a copy is already on its way: share its reference
            return ref
        if self.known(digest):
            return digest
        size = len(data)
        if size < 128:
            ref = (digest, bytes(data), 0, size)
        else:
            batch = self.current
            batch.pieces.append(bytes(data))  # a piece of a reused read window is copied out; bytes stay as they are
            batch.digests.append(digest)
            batch.size += size
            ref = (batch, len(batch.pieces) - 1)
            if batch.size >= BATCH_BYTES or len(batch.pieces) >= BATCH_PIECES:
                self.submit()
        self.queued[digest] = ref
        return ref

    def submit(self) -> None:
        batch = self.current
        if batch.pieces:
            waiting = self.waiting = [f for f in self.waiting if not f.done()]
            threads = 2 if len(waiting) >= BACKLOG else 1
            batch.future = self.pool.submit(self.batch_cctx.multi_compress_to_buffer, batch.pieces, threads)
            waiting.append(batch.future)
            self.current = Batch()

    def cut(self, buffer, final: bool) -> tuple[list, int]:
        """Content-defined pieces of `buffer`; unless `final`, the last piece is held back (its length returned)."""
        chunks = list(self.chunker.cut_buf(buffer))
        if not final and chunks:
            last = chunks.pop()
            return [c.data for c in chunks], last.length
        return [c.data for c in chunks], 0

    @staticmethod
    def resolve(ref, pipeline: Pipeline) -> Result | bytes:
        if ref.__class__ is bytes:
            return ref
        if len(ref) == 4:
            return ref
        batch, pos = ref
        return batch.result(pipeline)[pos]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
