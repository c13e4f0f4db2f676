"""A D2D2T set's frames: the members of a recovery point (all of them, or for an incremental those changed since
the base set) cut into batches that frame_worker.py archives, the first few on the job's thread, the rest in one
worker process per core, and their frames numbered in order as they come back.

Invariants:
- Frames come out in manifest order, numbered from 0; a batch's frames are yielded once every batch before it was.
- At most QUEUED batches are out at a time (memory: about QUEUED * BATCH_BYTES of frames waiting).
- A chunk the store cannot hand out (missing, on the damaged-chunks list) stops the set at the member that needs
  it, once every member before it is archived, as a read on the job's own thread would.
- A member split into pieces gave exactly the bytes its header announced, or the set fails there.
- Workers end with the set: when its frames are all out, or when the writer stops taking them (a cancel, an error).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator

import blake3

from appliance.media import members
from appliance.media.archive import ArchiveWriter, check_size, index_entry
from appliance.media.format import Frame, IndexEntry
from appliance.media.frame_worker import FIRST, MORE, WHOLE, BatchArchiver
from appliance.media.pax import BLOCK
from appliance.store.errors import StoreError
from appliance.store.model import FILE, R_CHUNKS, R_EXTENTS, R_SIZE, R_TYPE
from appliance.store.workers import WorkerProcess, chunk_places

WORKERS = min(8, max(2, len(os.sched_getaffinity(0))))  # one per core: the job's thread needs little besides
BATCH_BYTES = 16 << 20  # content per batch: four frames
BATCH_MEMBERS = 2048
PIECE_CHUNKS = 16  # chunks (~1 MiB each) per piece of a member too big for one batch
INLINE_BYTES = 32 << 20  # archived on the job's thread before the workers start: a small set starts no process
QUEUED = 2 * WORKERS


def content_size(row: list) -> int:
    """The bytes of content a file member's data section holds (a sparse file's data regions only)."""
    extents = row[R_EXTENTS]
    return row[R_SIZE] if extents is None else sum(length for _, length in extents)


class _Batch:
    __slots__ = ("worker", "answer", "cost", "splits")

    def __init__(self, worker: "_Worker | None", answer: tuple | None, cost: int, splits: list) -> None:
        self.worker, self.answer, self.cost = worker, answer, cost
        self.splits = splits  # per piece of a split member: None, or the member's size on its last piece


class _Worker(WorkerProcess):
    def __init__(self, sources: list[str]) -> None:
        super().__init__("appliance.media.frame_worker", sources, "tape backup", "the tape backup")
        self.packs: set[int] = set()
        self.cost = 0


class SnapshotFrames:
    """One attempt at a set's frames (`frames()`); `close()` ends its workers."""

    def __init__(self, store, sources: list[str], cipher) -> None:
        self.store, self.cipher = store, cipher
        self.sources = sources
        self.local = BatchArchiver(sources)
        self.workers: list[_Worker] = []
        self.handed = False  # a batch went to a worker: every later one goes to them too (order)
        self.out: deque[_Batch] = deque()
        self.where: dict[int, str] = {}  # pack descriptor -> "pack NAME"
        self.inline = 0
        self.number = 0
        self.split: list = [None, 0]  # the member being split: its path (from its first piece), bytes given so far

    def frames(self, rows: Iterator[list]) -> Iterator[Frame]:
        batch: list[tuple] = []
        cost = 0
        for row in rows:
            places = None
            if row[R_TYPE] == FILE:
                try:
                    places = chunk_places(self.store, row[R_CHUNKS] or b"", self.where)
                except StoreError:
                    yield from self._submit(batch, cost, [])
                    yield from self._drain(0)
                    raise
            if places is not None and len(places) > PIECE_CHUNKS:
                yield from self._submit(batch, cost, [])
                batch, cost = [], 0
                yield from self._pieces(row, places)
                continue
            batch.append((WHOLE, row, places))
            cost += content_size(row) if places is not None else 0
            if cost >= BATCH_BYTES or len(batch) >= BATCH_MEMBERS:
                yield from self._submit(batch, cost, [])
                batch, cost = [], 0
        yield from self._submit(batch, cost, [])
        yield from self._drain(0)
        for frame in ArchiveWriter(workers=0).close(end=True):  # the end-of-archive blocks, a frame of their own
            yield self._numbered(frame.data, frame.raw_length, frame.hash, [])

    def _pieces(self, row: list, places: list[tuple]) -> Iterator[Frame]:
        size = content_size(row)
        cuts = range(0, len(places), PIECE_CHUNKS)
        for at in cuts:
            piece = places[at:at + PIECE_CHUNKS]
            last = at == cuts[-1]
            item = (FIRST, row, piece) if not at else (MORE, -size % BLOCK if last else 0, piece)
            yield from self._submit([item], sum(p[2] for p in piece), [size if last else None])

    def _submit(self, items: list[tuple], cost: int, splits: list) -> Iterator[Frame]:
        if not items:
            return
        packs = dict.fromkeys(place[0] for _, _, places in items if places for place in places)
        if not self.handed and self.inline + cost <= INLINE_BYTES:
            self.inline += cost
            self.local.packs.update((fd, (fd, self.where[fd])) for fd in packs if fd not in self.local.packs)
            try:
                answer = self.local.archive(items)
            except Exception as exc:  # raised in its turn, once the batches before it are out, as a worker's is
                answer = exc
            self.out.append(_Batch(None, answer, cost, splits))
        else:
            self.start()
            self.handed = True
            worker = min(self.workers, key=lambda w: w.cost)
            new = [(fd, self.where[fd]) for fd in packs if fd not in worker.packs]
            worker.send((new, items), [fd for fd, _ in new])
            worker.packs.update(packs)
            worker.cost += cost
            self.out.append(_Batch(worker, None, cost, splits))
        yield from self._drain(QUEUED)

    def start(self) -> None:
        """Start the workers now (a set big enough to need them: they are ready once the job's thread has
        archived its share)."""
        if not self.workers:
            for _ in range(WORKERS):  # one by one: close() stops those started when the next one fails
                self.workers.append(_Worker(self.sources))

    def _drain(self, keep: int) -> Iterator[Frame]:
        """The frames of the oldest batches, until at most `keep` are out (in order: a worker answers its own
        batches in the order it got them, and the oldest batch out is its oldest)."""
        while len(self.out) > keep:
            batch = self.out[0]
            answer = batch.answer if batch.worker is None else batch.worker.answer()
            self.out.popleft()
            if isinstance(answer, Exception):
                raise answer
            if batch.worker is not None:
                batch.worker.cost -= batch.cost
            (frames, pieces), datas = answer.value, answer.blobs
            for (path, given), size in zip(pieces, batch.splits):
                if path is not None:
                    self.split = [path, 0]
                self.split[1] += given
                if size is not None:
                    check_size(self.split[0], self.split[1], size)
            for data, (raw_length, digest, entries) in zip(datas, frames):
                yield self._numbered(data, raw_length, digest, entries)

    def _numbered(self, data: bytes, raw_length: int, digest: bytes, entries: list[tuple]) -> Frame:
        number = self.number
        self.number += 1
        if self.cipher is not None:  # sealed here: the frame's number is part of its envelope
            data = self.cipher.seal(number, data)
            digest = blake3.blake3(data).digest()
        return Frame(data, raw_length, number,
                     [index_entry(path, key, number, offset, 1, link) for path, key, offset, link in entries], digest)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(busy=worker.cost > 0 or any(b.worker is worker for b in self.out))
        self.workers = []


def frames_from_snapshot(store, snapshot_id: str, base: dict[bytes, IndexEntry] | None,
                         carried: list, cipher) -> Callable[[], Iterator[Frame]]:
    """The frames of a replica snapshot's set; entries unchanged since `base` go to `carried` instead (filled when
    the returned iterator runs: a new run starts them again)."""
    info = store.snapshot(snapshot_id)
    sources = list(info.sources)

    def rows() -> Iterator[list]:
        carried.clear()
        roots: dict[str, bytes] = {}
        for row in store.rows(snapshot_id):
            if base:
                path, key = members.member_key(row, sources, roots)
                old = base.get(path)
                if old is not None and members.entry_key(old) == key:
                    carried.append(old)
                    continue
            yield row

    def make() -> Iterator[Frame]:
        maker = SnapshotFrames(store, sources, cipher)
        try:
            if not base and info.bytes > INLINE_BYTES:  # (an incremental may write little of a big point)
                maker.start()
            yield from maker.frames(rows())
        finally:
            maker.close()

    return make
