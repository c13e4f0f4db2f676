"""What reads a sync's small files in worker processes: content, hash, compression and xattrs of a batch of files,
so the walk is not bound to one core by the GIL (read_workers.py starts them and hands the batches out).

A worker (appliance/store/workers.py) gets a message per batch and the descriptors of the directories the walk
opened beside it, so it opens each file relative to its directory without following a link, exactly as the walk
would. It answers each batch with one entry per file, in order.

Small pieces are compressed with zstd level 1: per piece of a few KiB, level 3 cost 60% more CPU for 2% less size
(measured on the bench's small files); the big files' pieces keep level 3 (pipeline.py).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

import blake3
import zstandard
from pyfastcdc import FastCDC

from appliance.protect.pipeline import AVG_CHUNK, MAX_CHUNK, MIN_CHUNK, compress
from appliance.store.workers import Blobs, serve

RETRIES = 3
LEVEL = 1
OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
NOATIME = getattr(os, "O_NOATIME", 0)
KEPT = 200_000  # files whose drift a sync's readers count (~47 MB in all); past that, the check reads the manifest
GROWN = 4 * MIN_CHUNK  # a small file that grew past this while read is recorded as last read, with the warning

# An answer per file: (pieces, size, mtime_ns, ctime_ns, xattrs, unread xattrs, changed while read, bytes read),
# pieces being (digest, stored bytes, flags, raw length); or (None, strerror) when it could not be opened or read.
# A worker's answers to a batch hold (digest, start, end, flags, raw length) instead: the stored bytes of the whole
# batch go beside them as one raw message, read as a view (pickled, each piece was copied twice more on each side).
Answer = tuple


def read_xattrs(path: bytes | int) -> tuple[dict | None, list[str]]:
    """Extended attributes (POSIX ACLs included) of a path, not following a symlink, or of an open fd, and what
    could not be read: a name listed but unreadable (EACCES, EIO, E2BIG, ENOTSUP...) or the list itself. Only a
    file system without extended attributes, or one removed between the list and the read, is no loss."""
    follow = isinstance(path, int)  # an fd: follow_symlinks must stay at its default
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as exc:
        return None, [] if exc.errno == errno.EOPNOTSUPP else [f"their list ({exc.strerror})"]
    out = {}
    unread = []
    for name in names:
        try:
            out[os.fsencode(name)] = os.getxattr(path, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                unread.append(f"{name} ({exc.strerror})")
    return out or None, unread


def piece(data: bytes, cctx: zstandard.ZstdCompressor) -> tuple[bytes, bytes, int, int]:
    """A piece as the store keeps it: compressed with `cctx` (level 1 here) from 128 bytes on, unless that saves
    under 3%."""
    raw = len(data)
    blob, flags = compress(data, cctx) if raw >= 128 else (data, 0)
    return blake3.blake3(data).digest(), blob, flags, raw


class FileReader:
    def __init__(self) -> None:
        self.cctx = zstandard.ZstdCompressor(level=LEVEL)
        self.chunker = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)

    def read(self, dfd: int, name: bytes, size: int, mtime_ns: int) -> Answer:
        """Read a file the walk found `size` bytes long (at most MIN_CHUNK) and modified at `mtime_ns`, again
        from its start while it changes under the read (RETRIES tries, as the walk's own reads)."""
        try:
            try:
                fd = os.open(name, OPEN | NOATIME, dir_fd=dfd)
            except PermissionError:
                fd = os.open(name, OPEN, dir_fd=dfd)  # O_NOATIME needs ownership (or root)
        except OSError as exc:
            return None, exc.strerror or str(exc)
        try:
            return self._read(fd, size, mtime_ns)
        finally:
            os.close(fd)

    def _read(self, fd: int, size: int, mtime_ns: int) -> Answer:
        try:
            xattrs, unread = read_xattrs(fd)
            got = 0
            for _ in range(RETRIES):
                data = os.pread(fd, size + 1, 0)  # the extra byte shows a file that grew since the walk
                got += len(data)
                after = os.fstat(fd)
                if len(data) == after.st_size == size and after.st_mtime_ns == mtime_ns:
                    changed = False
                    break
                size, mtime_ns = after.st_size, after.st_mtime_ns
                if size > GROWN:
                    changed = True
                    break
            else:
                changed = True
        except OSError as exc:
            return None, exc.strerror or str(exc)
        if len(data) <= MIN_CHUNK:
            pieces = [piece(data, self.cctx)] if data else []
        else:
            pieces = [piece(c.data, self.cctx) for c in self.chunker.cut_buf(data)]
        # the size of what was read and stored, not the file's size now: a row's chunks add up to its size (a file
        # that grew past GROWN was read at the walk's size; the changed-while-read warning has it read again)
        return pieces, len(data), after.st_mtime_ns, after.st_ctime_ns, xattrs, unread, changed, got


def count_drift(files: Iterable[tuple[bytes, int, int]]) -> int:
    """How many of the files (path, size, mtime_ns as a sync recorded them) differ now in size or mtime, or are gone:
    the check's drift."""
    n = 0
    lstat = os.lstat
    for path, size, mtime_ns in files:
        try:
            st = lstat(path)
        except OSError:
            n += 1
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            n += 1
    return n


class Reader(FileReader):
    """A worker's reader: it also keeps (path, size, mtime_ns) of each file it read (up to `keep`, its share of KEPT),
    whose drift it counts once the walk is over."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep
        self.read_files: list[tuple[bytes, int, int]] | None = []

    def batch(self, items: list[tuple], fds: list[int], directories: list[bytes]) -> Blobs:
        try:
            answers = [self.read(fds[d], name, size, mtime_ns) for d, name, size, mtime_ns in items]
        finally:
            for fd in fds:
                os.close(fd)
        blobs: list[bytes] = []
        at = 0
        kept = self.read_files
        for i, answer in enumerate(answers):
            if answer[0] is not None:
                placed = []
                for digest, blob, flags, raw in answer[0]:
                    placed.append((digest, at, at + len(blob), flags, raw))
                    blobs.append(blob)
                    at += len(blob)
                answers[i] = (placed, *answer[1:])
                if kept is not None:
                    kept.append((directories[items[i][0]] + b"/" + items[i][1], answer[1], answer[2]))
        if kept is not None and len(kept) > self.keep:
            self.read_files = None  # the check reads them back from the manifest
        return Blobs(answers, [b"".join(blobs)])

    def drift(self) -> int | None:
        return None if self.read_files is None else count_drift(self.read_files)


def _handle(reader: Reader, message: tuple, fds: list[int]) -> Blobs | int | None:
    _, items, directories = message
    if items is None:
        return reader.drift()
    return reader.batch(items, fds, directories)


def main(fd: int) -> None:
    """Serve one sync (appliance/store/workers.py): a message per batch, (directory count, [(directory index, name,
    size, mtime_ns), ...], [directory path, ...]), the directories' descriptors right behind it; once the walk is
    over, (0, None, []), answered with the drift of the files this worker read (None: too many were read to keep).
    The first message, the configuration, is how many files it keeps for that."""
    serve(fd, Reader, _handle, lambda message: message[0])
