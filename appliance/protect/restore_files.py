"""The writer threads of a restore: file contents in batches, a directory's metadata once its last file is in,
and the write-back that makes everything durable (docs/store-format.md, Restore).

`restore.py` walks the manifest on the calling thread and hands each file to `FileWriters.queue`. Reading chunks,
zstd, BLAKE3 and the file system calls release the GIL, so WORKERS threads overlap them. A file is written as an
unnamed O_TMPFILE and linked in under its name once its content and metadata are complete (a kill leaves nothing
half written under a real name; linkat never replaces a name that appeared meanwhile unless `overwrite`).
"""

from __future__ import annotations

import os
import stat
import threading
from collections import deque
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor

from appliance.protect import destination
from appliance.protect.pipeline import MAX_CHUNK
from appliance.protect.types import Progress
from appliance.store import Store, durable
from appliance.store.errors import StoreError
from appliance.store.model import (FILE, R_ATIME, R_CHUNKS, R_EXTENTS, R_GID, R_MODE, R_MTIME, R_NLINK, R_PATH,
                                   R_SIZE, R_TYPE, R_UID, R_XATTRS, DIGEST_SIZE)

# File writers, one per core: with a warm cache their system calls keep a core busy, and more threads than cores
# only add contention (measured on 2 cores: 4 writers cost 40% more CPU seconds than 2, for no shorter restore).
WORKERS = min(8, max(2, len(os.sched_getaffinity(0))))
BATCH_FILES = 64  # files per task: a task per small file would cost the pool more than writing the file
BATCH_BYTES = 16 << 20
FLUSH_EVERY = 256 << 20  # written bytes between two write-backs started during the restore
WINDOW = 256 << 10  # read ahead in a pack for the next small chunks
QUEUED = 2 * WORKERS  # batches handed out ahead of the writers (bounds memory and how far the walk runs ahead)
SPREAD_CHUNKS = 8  # a file of this many chunks or more has them read and verified by the readers, ahead of its writer
AHEAD = 2 * WORKERS  # chunks of one file in flight on the readers (at most AHEAD * MAX_CHUNK in memory)


class Dir:
    """An open destination directory. Its metadata is applied once the walk has left it and the last of its
    files queued to the writers is in place (a file created after the directory's utime would change its mtime)."""

    __slots__ = ("key", "fd", "row", "fresh", "owner", "pending", "left")

    def __init__(self, key: tuple, fd: int, row: list | None, fresh: bool, st: os.stat_result) -> None:
        self.key, self.fd, self.row, self.fresh = key, fd, row, fresh  # fresh: created empty by this restore
        # who owns a file created here (a set-group-ID directory gives its group), so no fchown repeats it
        self.owner = (os.geteuid(), st.st_gid if st.st_mode & stat.S_ISGID else os.getegid())
        self.pending = 0
        self.left = False


class _Reader:
    """One writer thread's chunk reads, through a buffer it reuses: one read of WINDOW bytes also serves the next
    small chunks (a sync stores a directory's small files side by side, in the order a restore wants them), so a
    small file costs no read call of its own, and a big chunk no fresh allocation."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.view = memoryview(bytearray(MAX_CHUNK))  # a chunk is stored compressed only when that is smaller
        self.fd, self.start, self.end = -1, 0, 0

    def chunk(self, digest: bytes) -> bytes | memoryview:
        """The verified chunk; a view into the buffer is valid until the next call."""
        fd, offset, length, flags = self.store.locate_chunk(digest)
        if length > len(self.view):
            return self.store.verify_chunk(digest, os.pread(fd, length, offset), flags)
        if fd != self.fd or offset < self.start or offset + length > self.end:
            self.fd = -1
            got = os.preadv(fd, [self.view[:max(length, WINDOW)]], offset)
            self.fd, self.start, self.end = fd, offset, offset + got
        at = offset - self.start
        return self.store.verify_chunk(digest, self.view[at:at + length], flags)


class FileWriters:
    """One restore's writer threads. Everything but the writing itself (queue, submit, wait, leave, make_durable,
    close) runs on the restore's own thread; `warnings` is shared with it."""

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
        self._lock = threading.Lock()  # guards Dir.pending/left and _open
        self._open: set[Dir] = set()
        self._batch: list[tuple] = []
        self._batch_bytes = 0
        self._queued: set[Future] = set()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="restore")
        # A big file would keep one writer busy while the other cores idle: its chunks are read, decompressed and
        # hashed here, in parallel, and its writer only writes them in order (a pool of its own: a writer waits
        # on it, so sharing the writers' pool could leave nobody to do the reading).
        self._readers_pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="restore-read")
        self._readers = threading.local()
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="restore-flush")
        self._flushing: Future | None = None
        self._flushed = 0

    # ---- directories ---------------------------------------------------------------------------------------
    def dir(self, key: tuple, fd: int, row: list | None, fresh: bool) -> Dir:
        """Take charge of an open destination directory (closed once left and done)."""
        st = os.fstat(fd)
        if st.st_dev not in self.devices:  # opened before anything is written there: syncfs reports later errors
            self.devices[st.st_dev] = os.dup(fd)
        d = Dir(key, fd, row, fresh, st)
        with self._lock:
            self._open.add(d)
        return d

    def leave(self, d: Dir) -> None:
        """The walk is done with `d`: its metadata follows once its last queued file is in."""
        with self._lock:
            d.left = True
            done = not d.pending
        if done:
            self._finish(d)

    def _finish(self, d: Dir) -> None:
        try:
            if d.row is not None:
                self.meta_fd(d.fd, d.row)
        except OSError as exc:
            self.warnings.append(f"{os.fsdecode(d.row[R_PATH]) or '.'}: metadata not applied ({exc.strerror})")
        finally:
            with self._lock:
                self._open.discard(d)
            os.close(d.fd)

    def close(self) -> None:
        """After the last wait, or after an error: stop the writers and close what is still open."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._readers_pool.shutdown(wait=True, cancel_futures=True)
        self._flusher.shutdown(wait=True)
        with self._lock:
            left, self._open = self._open, set()
        for d in left:
            os.close(d.fd)
        for fd in self.devices.values():
            os.close(fd)
        self.devices = {}

    # ---- file contents ---------------------------------------------------------------------
    def queue(self, parent: Dir, name: bytes, content: list, row: list) -> None:
        with self._lock:
            parent.pending += 1
        self._batch.append((parent, name, content, row))
        self._batch_bytes += content[R_SIZE]
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self.submit()
            self.wait(QUEUED)

    def submit(self) -> None:
        if self._batch:
            self._queued.add(self._pool.submit(self._write_batch, self._batch))
            self._batch, self._batch_bytes = [], 0

    def wait(self, keep: int) -> None:
        """Collect finished batches until at most `keep` are queued: whichever finish first, so a big file being
        written does not hold back the batches queued after it."""
        while len(self._queued) > keep:
            done, self._queued = futures.wait(self._queued, return_when=futures.FIRST_COMPLETED)
            for future in done:
                self._tally(*future.result())

    def _tally(self, files: int, size: int, last: bytes | None) -> None:
        self.files += files
        self.bytes += size
        if last is not None:
            self.progress(self.bytes, self.total, os.fsdecode(last))
        idle = self._flushing is None or self._flushing.done() and self._flushing.exception() is None
        if self.bytes - self._flushed >= FLUSH_EVERY and idle:  # a failed one is kept for make_durable
            self._flushing = self._flusher.submit(self._sync_all)
            self._flushed = self.bytes

    def _write_batch(self, batch: list[tuple]) -> tuple[int, int, bytes | None]:
        files = size = 0
        last = None
        reader = self._reader()
        written: dict[Dir, int] = {}
        try:
            for parent, name, content, row in batch:
                written[parent] = written.get(parent, 0) + 1
                try:
                    if self._file(parent, name, content, row, reader):
                        files += 1
                        size += content[R_SIZE]
                        last = name
                        if row[R_NLINK] > 1 and row[R_TYPE] == FILE:
                            self.linkable.add(row[R_PATH])
                except (OSError, StoreError) as exc:
                    why = getattr(exc, "strerror", None) or exc
                    self.warnings.append(f"{os.fsdecode(row[R_PATH])}: not restored ({why})")
        finally:
            for parent, count in written.items():
                with self._lock:
                    parent.pending -= count
                    done = parent.left and not parent.pending
                if done:
                    self._finish(parent)
        return files, size, last

    def _file(self, parent: Dir, name: bytes, content: list, row: list, reader: _Reader) -> bool:
        """Write content and metadata into an unnamed file (O_TMPFILE), then link it in under its name: a killed
        restore leaves nothing half written under a real name, and a name that exists meanwhile is not replaced
        unless `overwrite` (False then). A file system without O_TMPFILE gets a `.tapeline-partial-` name."""
        dfd = parent.fd
        mode = stat.S_IMODE(row[R_MODE])
        final_mode = not mode & self.kept_by_umask and not row[R_XATTRS]  # made with its mode: no fchmod
        fd, tmp = destination.open_unnamed(dfd, name, mode if final_mode else 0o600)
        final_mode = final_mode and tmp is None
        placed = False
        try:
            self._content(fd, content, reader)
            self.meta_fd(fd, row, parent.owner, final_mode)
            placed = destination.place(fd, dfd, tmp, name, self.overwrite, self.root)
        finally:
            os.close(fd)
            if tmp is not None and not placed:
                os.unlink(tmp, dir_fd=dfd)
        if not placed:
            self.warnings.append(f"{os.fsdecode(row[R_PATH])}: {destination.EXISTS}")
        return placed

    def _reader(self) -> _Reader:
        reader = getattr(self._readers, "reader", None)
        if reader is None:
            reader = self._readers.reader = _Reader(self.store)
        return reader

    def _content(self, fd: int, content: list, reader: _Reader) -> None:
        blob = content[R_CHUNKS] or b""
        if content[R_EXTENTS] is not None:
            self._sparse(fd, blob, content[R_EXTENTS], content[R_SIZE], reader)
            return
        written = 0
        digests = (blob[i:i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE))
        chunks = self._ahead(digests) if len(blob) >= SPREAD_CHUNKS * DIGEST_SIZE else map(reader.chunk, digests)
        for data in chunks:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            written += len(data)
        if written != content[R_SIZE]:
            raise StoreError(f"restored {written} bytes where {content[R_SIZE]} were recorded",
                             "run 'tapeline check GROUP --full', then restore again")

    def _ahead(self, digests: Iterator[bytes]) -> Iterator[bytes]:
        """The verified chunks in order, read up to AHEAD ahead on the reader threads."""
        pending: deque[Future] = deque()
        try:
            for digest in digests:
                pending.append(self._readers_pool.submit(self.store.read_chunk, digest))
                if len(pending) >= AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # an error (or a failed write) stops the reads still queued
            for future in pending:
                future.cancel()

    def _sparse(self, fd: int, blob: bytes, extents: list, size: int, reader: _Reader) -> None:
        os.ftruncate(fd, size)  # holes stay holes: only the data regions are written
        regions = iter(extents)
        read = reader.chunk
        start, left = next(regions, (0, 0))
        for i in range(0, len(blob), DIGEST_SIZE):
            view = memoryview(read(blob[i:i + DIGEST_SIZE]))
            while view:
                while not left:
                    start, left = next(regions)
                n = min(left, len(view))
                os.pwrite(fd, view[:n], start)
                view, start, left = view[n:], start + n, left - n

    def meta_fd(self, fd: int, row: list, owner: tuple[int, int] | None = None, mode_set: bool = False) -> None:
        """Owner (root only; skipped when a new file has it already), xattrs and ACLs, mode, then times."""
        if self.root and (row[R_UID], row[R_GID]) != owner:
            os.fchown(fd, row[R_UID], row[R_GID])
        for name, value in row[R_XATTRS].items() if row[R_XATTRS] else ():
            try:
                os.setxattr(fd, name, value)
            except OSError as exc:
                self.warnings.append(f"{os.fsdecode(row[R_PATH])}: xattr {os.fsdecode(name)} not restored "
                                     f"({exc.strerror})")
        if not mode_set:
            os.fchmod(fd, stat.S_IMODE(row[R_MODE]))
        os.utime(fd, ns=(row[R_ATIME], row[R_MTIME]))

    # ---- durability ----------------------------------------------------------------------------------------
    def make_durable(self) -> None:
        """Everything written is on disk: one syncfs per file system written to (docs/store-format.md, Restore).
        Write-backs started on the way (every FLUSH_EVERY bytes) leave less to wait for here; an error one of them
        met is reported here (syncfs reports an error once per descriptor)."""
        if self._flushing is not None:
            self._flushing.result()
        self._sync_all()

    def _sync_all(self) -> None:
        for fd in list(self.devices.values()):
            durable.syncfs(fd)
