"""The file writing of a restore: file contents in batches, a directory's metadata once its last file is in,
and the write-back that makes everything durable (docs/store-format.md, Restore).

`restore.py` walks the manifest on the calling thread and hands each file to `FileWriters.queue`, which locates its
chunks and gathers files into batches. The first few batches are written right there (a small restore does not
pay for starting processes); past INLINE_FILES or INLINE_BYTES, one worker process per core writes them
(restore_worker.py): the per-file system calls and the bookkeeping around them hold the GIL, so threads left the
restore bound to one core. A file is written as an unnamed O_TMPFILE and linked in under its name once its content
and metadata are complete (a kill leaves nothing half written under a real name; linkat never replaces a name that
appeared meanwhile unless `overwrite`).
"""

from __future__ import annotations

import os
import stat
from collections import deque
from multiprocessing import connection

from appliance.protect import destination
from appliance.protect.pipeline import MAX_CHUNK
from appliance.protect.restore_worker import BatchWriter, meta_fd
from appliance.protect.types import Progress
from appliance.store import Store, durable
from appliance.store.errors import StoreError
from appliance.store.model import R_CHUNKS, R_EXTENTS, R_PATH, R_SIZE
from appliance.store.workers import WorkerLost, WorkerProcess, chunk_places

# Worker processes, one per core: the walk on the restore's thread needs a share of a core too, and more writers
# than cores only add contention (measured on 2 cores with threads: 4 writers cost 40% more CPU seconds than 2).
WORKERS = min(8, max(2, len(os.sched_getaffinity(0))))
BATCH_FILES = 64  # files per batch: a message per small file would cost more than writing the file
BATCH_BYTES = 16 << 20
INLINE_FILES = 256  # files written on the restore's own thread before the workers start
INLINE_BYTES = 8 << 20
QUEUED = 2 * WORKERS  # batches handed out ahead of the writers (bounds how far the walk runs ahead)
FILE_COST = 4096  # a file's system calls, in bytes of content, when batches are spread over the workers


class Dir:
    """An open destination directory. Its metadata is applied once the walk has left it and the last of its
    files queued to the writers is in place (a file created after the directory's utime would change its mtime)."""

    __slots__ = ("key", "fd", "row", "fresh", "owner", "dev", "pending", "left")

    def __init__(self, key: tuple, fd: int, row: list | None, fresh: bool, st: os.stat_result) -> None:
        self.key, self.fd, self.row, self.fresh = key, fd, row, fresh  # fresh: created empty by this restore
        # who owns a file created here (a set-group-ID directory gives its group), so no fchown repeats it
        self.owner = (os.geteuid(), st.st_gid if st.st_mode & stat.S_ISGID else os.getegid())
        self.dev = st.st_dev  # the file system its files go to (a writer's round syncs each one it wrote to)
        self.pending = 0
        self.left = False


class _Worker(WorkerProcess):
    """One worker process (restore_worker.main) and the batches it has not answered yet, oldest first."""

    def __init__(self, config: tuple) -> None:
        super().__init__("appliance.protect.restore_worker", config, "restore", "the same `tapeline restore`")
        self.packs: set[int] = set()  # packs whose descriptor it has
        self.queued: deque[tuple[list, int]] = deque()  # (directories and their file counts, cost) per batch
        self.cost = 0

    def send(self, packs: list[tuple[int, str]], dirs: list[Dir], items: list[tuple]) -> None:
        super().send((packs, [(d.owner, d.dev) for d in dirs], items),
                     [pack for pack, _ in packs] + [d.fd for d in dirs])
        self.packs.update(pack for pack, _ in packs)

    def stop(self) -> None:
        """Ends the process: at once when it has batches queued (a file it was writing is an unnamed O_TMPFILE,
        which vanishes with it)."""
        super().stop(bool(self.queued))


class FileWriters:
    """One restore's file writing. Everything here runs on the restore's own thread (the workers are processes);
    `warnings` is shared with it."""

    def __init__(self, store: Store, overwrite: bool, progress: Progress, total: int | None,
                 warnings: list[str]) -> None:
        self.store, self.overwrite, self.progress, self.total = store, overwrite, progress, total
        self.warnings = warnings
        self.files = self.bytes = 0
        self.linkable: set[bytes] = set()  # files of the current source written, that a hardlink can link to
        self.devices: dict[int, int] = {}  # st_dev -> a directory descriptor on that file system, for syncfs
        self.root = os.geteuid() == 0  # owners are restored (and AT_EMPTY_PATH links allowed) only as root
        # mode bits a create cannot set (special bits: fchmod after fchown)
        self.kept_by_umask = 0o7000 | destination.umask()
        self._open: set[Dir] = set()
        self._batch: list[tuple] = []
        self._dirs: dict[Dir, int] = {}  # the batch's directories -> their index in it
        self._counts: list[int] = []  # files of the batch per directory index
        self._packs: dict[int, None] = {}  # packs the batch reads (descriptor numbers, in order)
        self._cost = 0
        self._where: dict[int, str] = {}  # pack descriptor -> "pack NAME"
        self._inline: BatchWriter | None = None
        self._inline_files = self._inline_bytes = 0
        self._workers: list[_Worker] = []

    # ---- directories ---------------------------------------------------------------------------------------
    def dir(self, key: tuple, fd: int, row: list | None, fresh: bool) -> Dir:
        """Take charge of an open destination directory (closed once left and done)."""
        st = os.fstat(fd)
        if st.st_dev not in self.devices:  # opened before anything is written there: syncfs reports later errors
            self.devices[st.st_dev] = os.dup(fd)
        d = Dir(key, fd, row, fresh, st)
        self._open.add(d)
        return d

    def leave(self, d: Dir) -> None:
        """The walk is done with `d`: its metadata follows once its last queued file is in."""
        d.left = True
        if not d.pending:
            self._finish(d)

    def _finish(self, d: Dir) -> None:
        try:
            if d.row is not None:
                meta_fd(d.fd, d.row, self.root, self.warnings)
        except OSError as exc:
            self.warnings.append(f"{os.fsdecode(d.row[R_PATH]) or '.'}: metadata not applied ({exc.strerror})")
        finally:
            self._open.discard(d)
            os.close(d.fd)

    def close(self) -> None:
        """After the last wait, or after an error: stop the workers and close what is still open."""
        for worker in self._workers:
            worker.stop()
        self._workers = []
        if self._inline is not None:
            self._inline.close()
        left, self._open = self._open, set()
        for d in left:
            os.close(d.fd)
        for fd in self.devices.values():
            os.close(fd)
        self.devices = {}

    # ---- file contents ---------------------------------------------------------------------
    def queue(self, parent: Dir, name: bytes, content: list, row: list) -> None:
        try:
            places = self._places(content[R_CHUNKS] or b"")
        except StoreError as exc:  # a chunk missing or listed damaged: nothing is created for the file
            self.warnings.append(f"{os.fsdecode(row[R_PATH])}: not restored ({exc})")
            return
        parent.pending += 1
        index = self._dirs.setdefault(parent, len(self._dirs))
        if index == len(self._counts):
            self._counts.append(0)
        self._counts[index] += 1
        self._batch.append((index, name, row, content[R_SIZE], content[R_EXTENTS], places))
        self._cost += FILE_COST + sum(place[2] for place in places)
        if len(self._batch) >= BATCH_FILES or self._cost >= BATCH_BYTES:
            self.submit()
            self.wait(QUEUED)

    def _places(self, blob: bytes) -> list[tuple]:
        places = chunk_places(self.store, blob, self._where)
        self._packs.update(dict.fromkeys(place[0] for place in places))
        return places

    def submit(self) -> None:
        if not self._batch:
            return
        batch, dirs, counts, packs, cost = self._batch, list(self._dirs), self._counts, list(self._packs), self._cost
        self._batch, self._dirs, self._counts, self._packs, self._cost = [], {}, [], {}, 0
        tally = list(zip(dirs, counts))
        if (not self._workers and self._inline_files + len(batch) <= INLINE_FILES
                and self._inline_bytes + cost <= INLINE_BYTES):
            self._inline_files += len(batch)
            self._inline_bytes += cost
            if self._inline is None:
                self._inline = BatchWriter(self.root, self.overwrite, self.kept_by_umask, MAX_CHUNK)
            self._inline.packs.update((fd, (fd, self._where[fd])) for fd in packs)
            self._done(tally, self._inline.write([(d.fd, d.owner, d.dev) for d in dirs], batch))
            return
        if not self._workers:
            config = (self.root, self.overwrite, self.kept_by_umask, MAX_CHUNK)
            for _ in range(WORKERS):  # one by one: close() stops those started when the next one fails
                self._workers.append(_Worker(config))
        worker = min(self._workers, key=lambda w: w.cost)
        worker.send([(fd, self._where[fd]) for fd in packs if fd not in worker.packs], dirs, batch)
        worker.queued.append((tally, cost))
        worker.cost += cost

    def wait(self, keep: int) -> None:
        """Collect answered batches until at most `keep` are queued: whichever worker answers first, so a big file
        being written does not hold back the batches queued after it."""
        while sum(len(w.queued) for w in self._workers) > keep:
            busy = {w.conn: w for w in self._workers if w.queued}
            for conn in connection.wait(list(busy)):
                worker = busy[conn]
                answer = worker.answer()
                tally, cost = worker.queued.popleft()
                worker.cost -= cost
                self._done(tally, answer)

    def _done(self, tally: list[tuple[Dir, int]], answer: tuple) -> None:
        files, size, last, warnings, linkable = answer
        self.warnings += warnings
        self.linkable.update(linkable)
        for d, count in tally:
            d.pending -= count
            if d.left and not d.pending:
                self._finish(d)
        self.files += files
        self.bytes += size
        if last is not None:
            self.progress(self.bytes, self.total, os.fsdecode(last))

    # ---- durability ----------------------------------------------------------------------------------------
    def make_durable(self) -> None:
        """Everything written is on disk: one syncfs per file system written to (docs/store-format.md, Restore).
        The writers' rounds (restore_worker.py) wrote most of it back on the way; an error one of them met is
        reported here (syncfs reports an error once per descriptor, and these were opened before any write)."""
        for fd in self.devices.values():
            durable.syncfs(fd)
