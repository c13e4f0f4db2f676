"""The sync's small files, read in worker processes (read_worker.py): the walk hands each over (its directory's
descriptor and its name); a worker opens, reads, hashes and compresses it; the walk stores the pieces in the
manifest's order.

The walk's own thread holds the GIL for every stat, open and row: with the reads, hashing and compression of the
small files on it as well, a first sync of many small files used one core and a half of two (the reads returning
to a GIL another thread held). The first INLINE_FILES files (or INLINE_BYTES) are read on the walk's thread: a
small sync, or one that finds ~1000 files changed, does not pay for starting processes (~0.1 s); past them, one
worker process per core reads the batches.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from multiprocessing import connection

from appliance.protect.read_worker import KEPT, Answer, FileReader
from appliance.store.workers import Blobs, WorkerLost, WorkerProcess

WORKERS = min(8, max(2, len(os.sched_getaffinity(0))))
BATCH_FILES = 64  # a message per file would cost more than reading it
BATCH_BYTES = 4 << 20
INLINE_FILES = 2000
INLINE_BYTES = 16 << 20
QUEUED = 2 * WORKERS  # batches handed out and not answered yet


class Batch:
    __slots__ = ("items", "dirs", "fds", "paths", "size", "answer", "stored", "worker")

    def __init__(self) -> None:
        self.items: list[tuple[int, bytes, int, int]] | None = []  # None: the drift's count, not files to read
        self.dirs: dict[int, int] = {}  # the walk's directory descriptor -> its index in `fds`
        self.fds: list[int] = []  # copies of the directories' descriptors (the walk closes its own as it leaves)
        self.paths: list[bytes] = []  # the directories' paths (for the drift's count once the walk is over)
        self.size = 0
        self.answer: list[Answer] | int | None = None  # a drift's answer may be None: see `drift`
        self.stored: memoryview | None = None  # a worker's answers: the batch's stored bytes (pieces are ranges)
        self.worker: _Worker | None = None


class _Worker(WorkerProcess):
    def __init__(self) -> None:
        super().__init__("appliance.protect.read_worker", KEPT // WORKERS, "sync", "the sync")
        self.queued: deque[Batch] = deque()

    def send(self, batch: Batch) -> None:
        super().send((len(batch.fds), batch.items, batch.paths), batch.fds)
        self.queued.append(batch)
        batch.worker = self

    def collect(self) -> None:
        """The answer to the oldest batch this worker has."""
        batch = self.queued.popleft()
        answer = self.answer()
        if isinstance(answer, Blobs):
            batch.answer, batch.stored = answer.value, memoryview(answer.blobs[0])
        else:
            batch.answer = answer

    def close(self) -> None:
        self.stop(busy=bool(self.queued))


class Readers:
    """One sync's file reading: `queue` takes a file (its directory's descriptor and name) and returns the place of
    its answer; `answer` gives it, waiting for the worker when needed. Everything runs on the walk's thread."""

    def __init__(self) -> None:
        self._inline: FileReader | None = None
        self._inline_files = self._inline_bytes = 0
        self._workers: list[_Worker] = []
        self._batch = Batch()
        self.root = b""  # the source the walk is in

    def queue(self, dfd: int, name: bytes, size: int, mtime_ns: int, path: bytes) -> tuple[Batch, int]:
        """`path`: the file's path under `root` (the source being walked), whose directory a worker is told once
        a batch for the drift's count."""
        if not self._workers and self._inline_files < INLINE_FILES and self._inline_bytes < INLINE_BYTES:
            self._inline_files += 1
            self._inline_bytes += size
            if self._inline is None:
                self._inline = FileReader()
            batch = Batch()
            batch.answer = [self._inline.read(dfd, name, size, mtime_ns)]
            return batch, 0
        batch = self._batch
        index = batch.dirs.get(dfd)
        if index is None:
            index = batch.dirs[dfd] = len(batch.fds)
            batch.fds.append(os.dup(dfd))
            parent = path[:-len(name) - 1]
            batch.paths.append(self.root + b"/" + parent if parent else self.root)
        batch.items.append((index, name, size, mtime_ns))
        batch.size += size
        if len(batch.items) >= BATCH_FILES or batch.size >= BATCH_BYTES:
            self.submit()
        return batch, len(batch.items) - 1

    def drift(self) -> Callable[[], int | None] | None:
        """Once the walk is over: each worker counts the drift of the files it read (read_worker.count_drift) while
        the job's thread writes the manifest's end; the count comes from the function returned (None: a worker read
        too many to keep). None when no worker ran."""
        if not self._workers:
            return None
        self.submit()
        asked = []
        try:
            for worker in self._workers:
                batch = Batch()
                batch.items = None
                worker.send(batch)
                asked.append(batch)
        except WorkerLost:  # every file is read: a reader gone now leaves the drift to the check (close() ends all)
            return lambda: None

        def count() -> int | None:
            total = 0
            for batch in asked:
                while batch in batch.worker.queued:
                    batch.worker.collect()  # a worker answers in order
                if batch.answer is None:
                    return None
                total += batch.answer
            return total
        return count

    def forget(self, dfd: int) -> None:
        """The walk closes this directory descriptor (its number may soon name another directory)."""
        self._batch.dirs.pop(dfd, None)

    def submit(self) -> None:
        batch = self._batch
        if not batch.items:
            return
        self._batch = Batch()
        try:
            if not self._workers:
                for _ in range(WORKERS):  # one by one: close() stops those started when the next one fails
                    self._workers.append(_Worker())
            while sum(len(w.queued) for w in self._workers) >= QUEUED:
                busy = {w.conn: w for w in self._workers if w.queued}
                for conn in connection.wait(list(busy)):
                    busy[conn].collect()
            min(self._workers, key=lambda w: len(w.queued)).send(batch)
        finally:
            for fd in batch.fds:  # the worker has its own copies (or the sync fails)
                os.close(fd)
            batch.fds = []

    def answer(self, place: tuple[Batch, int]) -> tuple[Answer, memoryview | None]:
        """A file's answer, and the view its pieces' ranges are of (None: an answer read inline, whose pieces hold
        their stored bytes)."""
        batch, index = place
        if batch.answer is None:
            if batch.worker is None:
                self.submit()
            while batch.answer is None:
                batch.worker.collect()  # a worker answers its batches in order
        return batch.answer[index], batch.stored

    def close(self) -> None:
        for fd in self._batch.fds:
            os.close(fd)
        self._batch = Batch()
        for worker in self._workers:
            worker.close()
        self._workers = []
