"""What writes a restore's files: a batch of files into their directories, read from the packs, verified, each
linked in under its name once complete. It runs in the restore's own process for a small restore and in worker
processes for a big one (restore_files.py decides), so the writing is not bound to one core by the GIL.

A worker (appliance/store/workers.py) gets a message per batch and the descriptors it needs (the destination
directories, and the packs it has not seen yet) beside it, so it writes below directories the walk opened without
following anything. It answers each batch with (files, bytes, last name, warnings, paths a hardlink may link to),
in order.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import stat
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from appliance.protect import destination
from appliance.store import durable
from appliance.store.errors import StoreError
from appliance.store.model import (FILE, R_ATIME, R_GID, R_MODE, R_MTIME, R_NLINK, R_PATH, R_TYPE, R_UID,
                                   R_XATTRS)
from appliance.store.packs import verified
from appliance.store.workers import serve

WINDOW = 256 << 10  # read ahead in a pack for the next small chunks
# Pack reads are asked of the disk this far ahead of where a writer reads (posix_fadvise WILLNEED), so its reads
# find their pages instead of waiting for each one (packs are kept out of the page cache: docs/store-format.md,
# "Page cache"). Bounded: a writer holds at most this much of a pack ahead of what it has read.
PREFETCH = 8 << 20
SPREAD_CHUNKS = 8  # a file of this many chunks or more has them read and verified ahead of its writing, on threads
READERS = 2
AHEAD = 4  # chunks of one file in flight on the reader threads
DIRECT_MIN = 8 << 20  # a file this big is written past the page cache
DIRECT_BUFFER = 8 << 20
DIRECT_BLOCK = 4096  # what O_DIRECT writes must be made of (the logical block size of any common disk, or a multiple)
# Restored files stay open until this many of them, or this many of their bytes, are written back together and
# dropped from the page cache (docs/store-format.md, "Page cache"): their pages then serve the next files, and the
# disk works while the restore goes on. Fewer rounds cost a syncfs each; bigger ones hold more descriptors and pages.
RECYCLE_FILES = 256
RECYCLE_BYTES = 16 << 20


def uncache(fd: int, offset: int, length: int) -> None:
    """A range of a pack, read: out of the page cache (docs/store-format.md, "Page cache")."""
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def meta_fd(fd: int, row: list, root: bool, warnings: list[str], owner: tuple[int, int] | None = None,
            mode_set: bool = False) -> None:
    """Owner (root only; skipped when a new file has it already), xattrs and ACLs, mode, then times."""
    if root and (row[R_UID], row[R_GID]) != owner:
        os.fchown(fd, row[R_UID], row[R_GID])
    for name, value in row[R_XATTRS].items() if row[R_XATTRS] else ():
        try:
            os.setxattr(fd, name, value)
        except OSError as exc:
            warnings.append(f"{os.fsdecode(row[R_PATH])}: xattr {os.fsdecode(name)} not restored ({exc.strerror})")
    if not mode_set:
        os.fchmod(fd, stat.S_IMODE(row[R_MODE]))
    os.utime(fd, ns=(row[R_ATIME], row[R_MTIME]))


class BatchWriter:
    """Writes batches of files. An item is (directory index, name, row, size, extents, places), with `places` the
    content's chunks as (pack id, offset, length, flags, digest) in order; `dirs` are (descriptor, owner of a file
    created there, st_dev) and `packs` maps a pack id to (descriptor, "pack NAME" for an error message)."""

    def __init__(self, root: bool, overwrite: bool, kept_by_umask: int, max_chunk: int) -> None:
        self.root, self.overwrite, self.kept_by_umask = root, overwrite, kept_by_umask
        self.packs: dict[int, tuple[int, str]] = {}
        self.view = memoryview(bytearray(max_chunk))  # a chunk is stored compressed only when that is smaller
        self.window = (-1, 0, 0)  # (pack descriptor, start, end) of what the buffer holds
        self.used = 0  # where the chunks this writer took from the window end
        self.ahead: dict[int, tuple[int, int]] = {}  # pack descriptor -> (last read's offset, end of what was asked)
        self.readers: ThreadPoolExecutor | None = None
        self.direct_buffer: mmap.mmap | None = None
        self.kept: list[int] = []  # descriptors of written files whose pages go at the next round
        self.kept_on: dict[int, int] = {}  # st_dev -> one of them on that file system, for the round's syncfs
        self.kept_bytes = 0
        self.recycler: ThreadPoolExecutor | None = None
        self.recycling: Future | None = None

    def close(self) -> None:
        if self.readers is not None:
            self.readers.shutdown(wait=True, cancel_futures=True)
        if self.recycler is not None:
            self.recycler.shutdown(wait=True)
        for fd in self.kept:  # the restore's own syncfs writes these back
            os.close(fd)
        self.kept, self.kept_on = [], {}
        for fd, _ in self.packs.values():  # what the kernel read ahead of the last reads goes too
            uncache(fd, 0, 0)
        if self.direct_buffer is not None:
            self.direct_buffer.close()
            self.direct_buffer = None

    def write(self, dirs: list[tuple[int, tuple[int, int], int]], items: list[tuple]) -> tuple:
        files = size = 0
        last = None
        warnings: list[str] = []
        linkable: list[bytes] = []
        for index, name, row, length, extents, places in items:
            try:
                if self._file(dirs[index], name, row, length, extents, places, warnings):
                    files += 1
                    size += length
                    last = name
                    if row[R_NLINK] > 1 and row[R_TYPE] == FILE:
                        linkable.append(row[R_PATH])
            except (OSError, StoreError) as exc:
                why = getattr(exc, "strerror", None) or exc
                warnings.append(f"{os.fsdecode(row[R_PATH])}: not restored ({why})")
        return files, size, last, warnings, linkable

    def _file(self, parent: tuple[int, tuple[int, int], int], name: bytes, row: list, length: int,
              extents: list | None, places: list[tuple], warnings: list[str]) -> bool:
        """Content and metadata into an unnamed file (O_TMPFILE), then linked in under its name: a killed restore
        leaves nothing half written under a real name, and a name that exists meanwhile is not replaced unless
        `overwrite` (False then). A file system without O_TMPFILE gets a `.tapeline-partial-` name."""
        dfd, owner, device = parent
        mode = stat.S_IMODE(row[R_MODE])
        final_mode = not mode & self.kept_by_umask and not row[R_XATTRS]  # made with its mode: no fchmod
        fd, tmp = destination.open_unnamed(dfd, name, mode if final_mode else 0o600)
        final_mode = final_mode and tmp is None
        placed = kept = False
        try:
            if extents is not None:
                self._sparse(fd, places, extents, length)
            else:
                self._content(fd, places, length)
            meta_fd(fd, row, self.root, warnings, owner, final_mode)
            placed = destination.place(fd, dfd, tmp, name, self.overwrite, self.root)
            kept = placed and length > 0
        finally:
            if kept:
                self._keep(fd, length, device)
            else:
                os.close(fd)
            if tmp is not None and not placed:
                os.unlink(tmp, dir_fd=dfd)
        if not placed:
            warnings.append(f"{os.fsdecode(row[R_PATH])}: {destination.EXISTS}")
        return placed

    # ---- page-cache recycling ------------------------------------------------------------------------------
    def _keep(self, fd: int, length: int, device: int) -> None:
        """A written file's descriptor, kept for the next round (docs/store-format.md, "Page cache")."""
        self.kept.append(fd)
        self.kept_on[device] = fd
        self.kept_bytes += length
        if len(self.kept) < RECYCLE_FILES and self.kept_bytes < RECYCLE_BYTES:
            return
        if self.recycling is not None:
            self.recycling.result()  # one round at a time: the writing runs at most one round ahead
        if self.recycler is None:
            self.recycler = ThreadPoolExecutor(1, thread_name_prefix="restore-recycle")
        self.recycling = self.recycler.submit(_recycle, self.kept, list(self.kept_on.values()))
        self.kept, self.kept_on, self.kept_bytes = [], {}, 0

    # ---- chunks --------------------------------------------------------------------------------------------
    def _verify(self, place: tuple, blob: bytes | memoryview) -> bytes | memoryview:
        pack, _, _, flags, digest = place
        return verified(digest, blob, flags, lambda: self.packs[pack][1])

    def _chunk(self, place: tuple) -> bytes | memoryview:
        """The verified chunk, through the reused buffer: one read of WINDOW bytes also serves the next small
        chunks (a sync stores a directory's small files side by side, in the order a restore wants them). A view
        into the buffer is valid until the next call."""
        pack, offset, length = place[0], place[1], place[2]
        fd = self.packs[pack][0]
        if length > len(self.view):
            return self._read(place)
        wfd, start, end = self.window
        if fd != wfd or offset < start or offset + length > end:
            if wfd >= 0:  # what it took only: the rest of the window may be the next batch's, on another writer
                uncache(wfd, start, self.used - start)
            self.window = (-1, 0, 0)
            size = max(length, WINDOW)
            self._prefetch(fd, offset, size)
            got = os.preadv(fd, [self.view[:size]], offset)
            self.window = (fd, offset, offset + got)
            self.used = offset
        self.used = max(self.used, offset + length)
        at = offset - self.window[1]
        return self._verify(place, self.view[at:at + length])

    def _read(self, place: tuple) -> bytes:
        """A verified chunk read into memory of its own (the reader threads' way)."""
        fd = self.packs[place[0]][0]
        self._prefetch(fd, place[1], place[2])
        data = os.pread(fd, place[2], place[1])
        uncache(fd, place[1], place[2])
        return self._verify(place, data)

    def _prefetch(self, fd: int, offset: int, size: int) -> None:
        """A read of [offset, offset + size) is about to be made: PREFETCH past its end is asked for, half of it at
        a time while the reads go forward; a read behind the last one starts anew (racing reader threads at worst
        ask twice)."""
        last, mark = self.ahead.get(fd, (-1, 0))
        end = offset + size
        if last <= offset and end + PREFETCH // 2 <= mark:
            self.ahead[fd] = (offset, mark)
            return
        start = mark if last <= offset <= mark else offset
        self.ahead[fd] = (offset, end + PREFETCH)
        os.posix_fadvise(fd, start, end + PREFETCH - start, os.POSIX_FADV_WILLNEED)

    def _ahead(self, places: list[tuple]) -> Iterator[bytes | memoryview]:
        """The verified chunks in order, read, decompressed and hashed up to AHEAD ahead on reader threads
        (zstd and BLAKE3 release the GIL): a big file spreads over the cores instead of one."""
        if len(places) < SPREAD_CHUNKS:
            yield from map(self._chunk, places)
            return
        if self.readers is None:
            self.readers = ThreadPoolExecutor(READERS, thread_name_prefix="restore-read")
        pending: deque[Future] = deque()
        try:
            for place in places:
                pending.append(self.readers.submit(self._read, place))
                if len(pending) >= AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # an error (or a failed write) stops the reads still queued
            for future in pending:
                future.cancel()

    def _content(self, fd: int, places: list[tuple], length: int) -> None:
        if length >= DIRECT_MIN and _direct(fd, True):
            written = self._content_direct(fd, places)
        else:
            written = 0
            for data in self._ahead(places):
                _write_all(fd, data)
                written += len(data)
        if written != length:
            raise StoreError(f"restored {written} bytes where {length} were recorded",
                             "run 'tapeline check GROUP --full', then restore again")

    def _content_direct(self, fd: int, places: list[tuple]) -> int:
        """A big file's content written past the page cache (docs/store-format.md, "Page cache"): gathered in an
        aligned buffer, written in whole blocks with O_DIRECT; the end that fills no block goes through the cache."""
        if self.direct_buffer is None:
            self.direct_buffer = mmap.mmap(-1, DIRECT_BUFFER)  # page-aligned, as O_DIRECT wants
        buf = memoryview(self.direct_buffer)
        fill = written = 0
        for data in self._ahead(places):
            view = memoryview(data)
            written += len(view)
            while view:
                n = min(DIRECT_BUFFER - fill, len(view))
                buf[fill:fill + n] = view[:n]
                fill += n
                view = view[n:]
                if fill == DIRECT_BUFFER:
                    _write_blocks(fd, buf)
                    fill = 0
        whole = fill - fill % DIRECT_BLOCK
        _write_blocks(fd, buf[:whole])
        _direct(fd, False)
        _write_all(fd, buf[whole:fill])
        return written

    def _sparse(self, fd: int, places: list[tuple], extents: list, size: int) -> None:
        os.ftruncate(fd, size)  # holes stay holes: only the data regions are written
        regions = iter(extents)
        start, left = next(regions, (0, 0))
        for data in self._ahead(places):
            view = memoryview(data)
            while view:
                while not left:
                    start, left = next(regions)
                n = min(left, len(view))
                os.pwrite(fd, view[:n], start)
                view, start, left = view[n:], start + n, left - n


def _recycle(fds: list[int], one_per_device: list[int]) -> None:
    """Write the files back together (one syncfs per file system they are on: merged I/O, not a request per file),
    then drop their pages, clean now, and close them. A write-back error is not lost here: syncfs reports it to each
    descriptor opened before it, and the restore's own (opened before anything was written) says so before the
    restore says "completed"."""
    for fd in one_per_device:
        with contextlib.suppress(OSError):
            durable.syncfs(fd)
    for fd in fds:
        with contextlib.suppress(OSError):  # advice only
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_blocks(fd: int, blocks: memoryview) -> None:
    """Whole blocks, direct; through the page cache where the file system takes O_DIRECT but not these writes
    (EINVAL: a logical block bigger than DIRECT_BLOCK)."""
    try:
        _write_all(fd, blocks)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        _direct(fd, False)
        _write_all(fd, blocks)


def _direct(fd: int, on: bool) -> bool:
    """O_DIRECT set on (or taken off) an open file; False where the file system refuses it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError:
        return False
    return True


# ---- the worker process ------------------------------------------------------------------------------------
def _write(writer: BatchWriter, message: tuple, fds: list[int]) -> tuple:
    packs, dir_info, items = message
    for (pack, name), pack_fd in zip(packs, fds):
        writer.packs[pack] = (pack_fd, name)
    dirs = [(dfd, owner, dev) for dfd, (owner, dev) in zip(fds[len(packs):], dir_info)]
    try:
        return writer.write(dirs, items)
    finally:
        for dfd, _, _ in dirs:
            os.close(dfd)


def main(fd: int) -> None:
    """Serve one restore: (root, overwrite, kept_by_umask, max_chunk) first, then a message per batch,
    (new packs [(id, "pack NAME")], (owner, st_dev) of the batch's directories, items), its descriptors (the new
    packs', then the directories') right behind it."""
    serve(fd, lambda config: BatchWriter(*config), _write, lambda message: len(message[0]) + len(message[1]))
