"""Restore files, directories or a whole snapshot, to the original place or under another directory.

Safety invariants:
- Destination root: with a target (`--to`), the target is resolved once (it may itself be a symlink the operator
  chose, e.g. /restore -> /mnt/big), created if missing, and opened; from that descriptor every component below it,
  the source-path prefix included (target/tmp/src/...), is opened with O_NOFOLLOW or created with mkdirat. A symlink
  (or a non-directory) anywhere in that prefix is never followed nor replaced: nothing of that source is restored
  and one warning names the link. In place (no target, or a target that resolves to "/"), the source path is
  resolved as the sync resolved it when reading (a source given through a symlink is the directory it names); the
  resolved parent must already exist (an in-place restore creates nothing above the source root) and the root
  itself is then opened or created below that parent with O_NOFOLLOW.
- Below the source root every name is created relative to an open directory fd (openat style) and every directory
  is opened with O_NOFOLLOW: a symlinked parent, "..", an absolute name or an empty component never lead outside
  the destination; such entries are skipped with a warning.
- Nothing existing is touched unless `overwrite` (a warning names each entry kept). With `overwrite`: an existing
  file, symlink or special file is replaced by what the point holds there (a symlink is unlinked, never followed);
  where the point has a directory, an existing non-directory is unlinked and the directory created; where the
  point has a non-directory, an existing EMPTY directory is removed and replaced, while a directory with content
  is kept with a warning (a restore never deletes an operator's tree). The source root and the prefix above it are
  never replaced, even with `overwrite`.
- A file is written as an unnamed file (O_TMPFILE) and linked in under its name once its content and metadata are
  complete, so a killed restore never leaves a half-written file under the real name, and linking never replaces a
  name that appeared meanwhile (only `overwrite` does). A file system without O_TMPFILE gets a temporary name
  (`.tapeline-partial-<name>`, which a rerun cleans up) and a no-replace link.
- "completed" only once what was written is on disk: one syncfs(2) per file system written to (write-backs are
  started every FLUSH_EVERY bytes on the way, so the last one finds little left).
- File contents are written by WORKERS threads, in batches in manifest order; the calling thread walks the rows
  and makes directories, links and special files. A directory gets its metadata once it is left and its last
  queued file is in place.
- Metadata order per entry: owner (root only), xattrs/ACLs, mode, times; directories get theirs after their
  contents, so their mtime stays as recorded.
Destination: with a target, under target/<source path without its leading "/">/ (as restic does), so several
sources never collide. A restore in which no selected source could be reached at all is "failed".
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from appliance.protect.pipeline import MAX_CHUNK
from appliance.protect.types import NO_PROGRESS, Progress, RestoreResult
from appliance.store import Store, durable
from appliance.store.errors import ManifestDamaged, StoreError
from appliance.store.model import (BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, R_ATIME, R_CHUNKS, R_EXTENTS,
                                   R_GID, R_MODE, R_MTIME, R_NLINK, R_PATH, R_RDEV, R_SIZE, R_SOURCE, R_TARGET, R_TYPE,
                                   R_UID, R_XATTRS, DIGEST_SIZE, SYMLINK, path_key)

_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PARTIAL = b".tapeline-partial-"
_TMPFILE = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC
_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD, _AT_SYMLINK_FOLLOW, _AT_EMPTY_PATH = -100, 0x400, 0x1000
WORKERS = 4  # file writers: beyond the cores, they overlap one another's waits in the kernel
BATCH_FILES = 64  # files per task: a task per small file would cost the pool more than writing the file
BATCH_BYTES = 16 << 20
FLUSH_EVERY = 256 << 20  # written bytes between two write-backs started during the restore
WINDOW = 256 << 10  # read ahead in a pack for the next small chunks
QUEUED = 2 * WORKERS  # batches handed out ahead of the writers (bounds memory and how far the walk runs ahead)


class _Unsafe(Exception):
    pass


class _Blocked(Exception):
    """The destination of a whole source cannot be reached safely; the message is the operator's warning."""


def _check_name(name: bytes) -> None:
    if name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
        raise _Unsafe(f"unsafe name {name!r}")


def _selection(sources: Sequence[str], paths: Sequence[bytes | str] | None) -> list[tuple[int | None, tuple]]:
    """(source index or None for any, path key) for each requested path."""
    if paths is None:
        return []
    out = []
    for p in paths:
        raw = os.fsencode(p).rstrip(b"/") or b"/"
        for si, src in enumerate(sources):
            root = os.fsencode(src).rstrip(b"/")
            if raw == root or raw.startswith(root + b"/"):
                out.append((si, path_key(raw[len(root) + 1:])))
                break
        else:
            if raw.startswith(b"/"):
                raise StoreError(f"{os.fsdecode(raw)} is not under any source of this recovery point "
                                 f"({', '.join(sources)})", "give a path under one of them")
            out.append((None, path_key(raw)))
    return out


def _selected(selection: list, si: int, key: tuple) -> bool:
    if not selection:
        return True
    return any((s is None or s == si) and key[:len(k)] == k for s, k in selection)


class _Dir:
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


class _Writer:
    """Walks the rows in order on the calling thread (directories, links, special files) and hands file contents
    to a pool of writers in batches: reading chunks, zstd, BLAKE3 and the file system calls release the GIL."""

    def __init__(self, store: Store, overwrite: bool, progress: Progress, total: int | None,
                 target: tuple[int, bytes] | None) -> None:
        self.store, self.overwrite, self.progress, self.total = store, overwrite, progress, total
        self.target = target  # (fd, resolved path) of the target directory; None: in place
        self.warnings: list[str] = []
        self.files = self.bytes = 0
        self.stack: list[_Dir] = []
        self.root_created = False
        self.source = b""
        self.blocked: bool | None = None  # None: the source's destination is not opened yet
        self.linkable: set[bytes] = set()  # files of this source written, that a later hardlink can link to
        self.devices: dict[int, int] = {}  # st_dev -> a directory descriptor on that file system, for syncfs
        self._lock = threading.Lock()  # guards _Dir.pending/left and _open
        self._open: set[_Dir] = set()
        self._batch: list[tuple] = []
        self._batch_bytes = 0
        self._queued: set[Future] = set()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="restore")
        self._readers = threading.local()
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="restore-flush")
        self._flushing: Future | None = None
        self._flushed = 0
        self.root = os.geteuid() == 0  # owners are restored (and AT_EMPTY_PATH links allowed) only as root
        self.kept_by_umask = 0o7000 | _umask()  # mode bits a create cannot set (special bits: fchmod after fchown)

    # ---- directories ---------------------------------------------------------------------------------------
    def begin_source(self, source: bytes) -> None:
        """The destination is opened on the first entry restored, so an unselected source is never touched."""
        self.end()
        self.source, self.blocked = source, None
        self.linkable = set()

    def reached(self) -> bool:
        """True once the current source's destination root is open; raises _Blocked (once) when it cannot be."""
        if self.blocked is None:
            self.blocked = True
            fd = self._open_root()
            self.stack = [self._dir((), fd, None, self.root_created)]
            self.blocked = False
        return not self.blocked

    def _dir(self, key: tuple, fd: int, row: list | None, fresh: bool) -> _Dir:
        st = os.fstat(fd)
        if st.st_dev not in self.devices:  # opened before anything is written there: syncfs reports later errors
            self.devices[st.st_dev] = os.dup(fd)
        d = _Dir(key, fd, row, fresh, st)
        with self._lock:
            self._open.add(d)
        return d

    def _open_root(self) -> int:
        src = self.source.rstrip(b"/") or b"/"
        if self.target is not None:
            base, shown = os.dup(self.target[0]), self.target[1]
            names = [n for n in src.split(b"/") if n]
            for n in names:
                if n in (b".", b".."):
                    os.close(base)
                    raise _Blocked(f"{os.fsdecode(src)}: not restored: the source path holds {os.fsdecode(n)!r}")
        else:
            real = os.path.realpath(src)  # as the sync read it: a source given through a symlink is what it names
            parent, name = os.path.split(real)
            try:
                base = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise _Blocked(f"{os.fsdecode(parent)}: {exc.strerror}, so {os.fsdecode(src)} cannot be restored in "
                               f"place (nothing above a source root is created): create it, or restore with --to "
                               f"another directory") from exc
            shown, names = parent, [name] if name else []
        self.root_created = False
        try:
            for i, name in enumerate(names):
                shown = os.path.join(shown, name)
                last = i == len(names) - 1
                try:
                    os.mkdir(name, 0o700 if last else 0o755, dir_fd=base)
                    self.root_created = last
                except FileExistsError:
                    pass
                try:
                    fd = os.open(name, _DIR_OPEN, dir_fd=base)
                except OSError as exc:
                    raise _Blocked(self._why_blocked(base, name, shown, exc)) from exc
                os.close(base)
                base = fd
        except OSError as exc:
            os.close(base)
            raise _Blocked(f"{os.fsdecode(shown)}: cannot be created ({exc.strerror}); nothing of "
                           f"{os.fsdecode(src)} was restored: check the destination's permissions and space") from exc
        except _Blocked:
            os.close(base)
            raise
        return base

    def _why_blocked(self, parent: int, name: bytes, shown: bytes, exc: OSError) -> str:
        src = os.fsdecode(self.source)
        try:
            link = os.readlink(name, dir_fd=parent)
        except OSError:
            link = None
        if link is not None:
            return (f"{os.fsdecode(shown)}: is a symlink (to {os.fsdecode(link)}) inside the restore destination and "
                    f"is not followed; nothing of {src} was restored: remove the link or restore with another --to")
        if exc.errno == errno.ENOTDIR:
            return (f"{os.fsdecode(shown)}: exists and is not a directory; nothing of {src} was restored: move it "
                    f"away or restore with another --to")
        return (f"{os.fsdecode(shown)}: cannot be opened ({exc.strerror}); nothing of {src} was restored: check the "
                f"destination's permissions")

    def end(self) -> None:
        """Leave every open directory and wait for every queued file (directories get their metadata last)."""
        self._submit()
        while self.stack:
            self._leave()
        self._wait(0)

    def _leave(self) -> None:
        d = self.stack.pop()
        with self._lock:
            d.left = True
            done = not d.pending
        if done:
            self._finish(d)

    def _finish(self, d: _Dir) -> None:
        try:
            if d.row is not None:
                self._meta_fd(d.fd, d.row)
        except OSError as exc:
            self.warnings.append(f"{os.fsdecode(d.row[R_PATH]) or '.'}: metadata not applied ({exc.strerror})")
        finally:
            with self._lock:
                self._open.discard(d)
            os.close(d.fd)

    def close(self) -> None:
        """After end(), or after an error: stop the writers and close what is still open."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._flusher.shutdown(wait=True)
        with self._lock:
            left, self._open = self._open, set()
        for d in left:
            os.close(d.fd)
        for fd in self.devices.values():
            os.close(fd)
        self.devices = {}

    def parent(self, parent_key: tuple) -> _Dir:
        while True:
            top = self.stack[-1].key
            if parent_key[:len(top)] == top:
                break
            self._leave()
        for name in parent_key[len(self.stack[-1].key):]:
            _check_name(name)
            fd, created = self._open_dir(self.stack[-1], name, 0o755)
            self.stack.append(self._dir(self.stack[-1].key + (name,), fd, None, created))
        return self.stack[-1]

    def _open_dir(self, parent: _Dir, name: bytes, mode: int) -> tuple[int, bool]:
        created = False
        try:
            os.mkdir(name, mode, dir_fd=parent.fd)
            created = True
        except FileExistsError:
            pass
        try:
            return os.open(name, _DIR_OPEN, dir_fd=parent.fd), created
        except OSError as exc:
            if created or exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise _Unsafe(f"{os.fsdecode(name)} cannot be opened as a directory: {exc.strerror}") from exc
            # O_DIRECTORY|O_NOFOLLOW reports a symlink as ENOTDIR: lstat tells the operator which one it is
            what = "a symlink" if stat.S_ISLNK(os.lstat(name, dir_fd=parent.fd).st_mode) else "not a directory"
            if not self.overwrite:
                raise _Unsafe(f"{os.fsdecode(name)} exists and is {what} (not followed, not replaced): restore with "
                              f"overwrite to replace it by the directory") from exc
        os.unlink(name, dir_fd=parent.fd)  # the file or the link itself, never what a link names
        os.mkdir(name, mode, dir_fd=parent.fd)
        return os.open(name, _DIR_OPEN, dir_fd=parent.fd), True

    # ---- entries -------------------------------------------------------------------------------------------
    def entry(self, row: list, key: tuple, links: dict) -> None:
        kind = row[R_TYPE]
        if not key:  # the source root itself
            if self.overwrite or self.root_created:
                self.stack[0].row = row
            return
        name = key[-1]
        _check_name(name)  # the names above it were checked when their directories were opened
        parent = self.parent(key[:-1])
        if kind == DIR:
            fd, created = self._open_dir(parent, name, 0o700)
            self.stack.append(self._dir(key, fd, row if created or self.overwrite else None, created))
            return
        if not parent.fresh and not self._make_room(parent.fd, name, row[R_PATH]):
            return
        if kind == HARDLINK:
            self._submit()
            self._wait(0)  # the first name is in place (or known to have failed) before it is linked
            if self._link(row, parent.fd, name):
                self.files += 1
                return
        if kind in (FILE, HARDLINK):
            content = row if kind == FILE else links.get(row[R_TARGET])
            if content is None:
                raise _Unsafe(f"hardlink target {os.fsdecode(row[R_TARGET])} is not in the recovery point")
            self._queue(parent, name, content, row)
            return
        try:
            if kind == SYMLINK:
                os.symlink(row[R_TARGET], name, dir_fd=parent.fd)
            elif kind == FIFO:
                os.mkfifo(name, 0o600, dir_fd=parent.fd)
            elif kind in (CHARDEV, BLOCKDEV):
                os.mknod(name, stat.S_IFMT(row[R_MODE]) | 0o600, row[R_RDEV], dir_fd=parent.fd)
            else:
                return
        except FileExistsError:  # only in a directory this restore created: someone else made it meanwhile
            self.warnings.append(f"{os.fsdecode(row[R_PATH])}: exists, not replaced (restore with overwrite to "
                                 f"replace it)")
            return
        self._meta_path(parent.fd, name, row)
        self.files += 1

    def _make_room(self, parent: int, name: bytes, path: bytes) -> bool:
        try:
            st = os.lstat(name, dir_fd=parent)
        except FileNotFoundError:
            return True
        if not self.overwrite:
            self.warnings.append(f"{os.fsdecode(path)}: exists, not replaced (restore with overwrite to replace it)")
            return False
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(name, dir_fd=parent)  # only an empty one: a restore never deletes an operator's tree
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                self.warnings.append(f"{os.fsdecode(path)}: a directory with content is where the recovery point has "
                                     f"a file, not replaced: move or remove it, then restore again")
                return False
            return True
        os.unlink(name, dir_fd=parent)
        return True

    def _link(self, row: list, parent: int, name: bytes) -> bool:
        target = path_key(row[R_TARGET])
        if row[R_TARGET] not in self.linkable:
            return False  # the first link was not restored in this run: write the content instead
        fd = self.stack[0].fd
        opened = []
        try:
            for comp in target[:-1]:
                _check_name(comp)
                fd = os.open(comp, _DIR_OPEN, dir_fd=fd)
                opened.append(fd)
            os.link(target[-1], name, src_dir_fd=fd, dst_dir_fd=parent, follow_symlinks=False)
        except OSError:
            return False
        finally:
            for f in opened:
                os.close(f)
        return True

    # ---- file contents, on the writers ---------------------------------------------------------------------
    def _queue(self, parent: _Dir, name: bytes, content: list, row: list) -> None:
        with self._lock:
            parent.pending += 1
        self._batch.append((parent, name, content, row))
        self._batch_bytes += content[R_SIZE]
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._submit()
            self._wait(QUEUED)

    def _submit(self) -> None:
        if self._batch:
            self._queued.add(self._pool.submit(self._write_batch, self._batch))
            self._batch, self._batch_bytes = [], 0

    def _wait(self, keep: int) -> None:
        """Collect finished batches until at most `keep` are queued: whichever finish first, so a big file being
        written does not hold back the batches queued after it."""
        while len(self._queued) > keep:
            done, self._queued = wait(self._queued, return_when=FIRST_COMPLETED)
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
        written: dict[_Dir, int] = {}
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
                except (OSError, _Unsafe, StoreError) as exc:
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

    def _file(self, parent: _Dir, name: bytes, content: list, row: list, reader: _Reader) -> bool:
        """Write content and metadata into an unnamed file (O_TMPFILE), then link it in under its name: a killed
        restore leaves nothing half written under a real name, and a name that exists meanwhile is not replaced
        unless `overwrite` (False then). A file system without O_TMPFILE gets a `.tapeline-partial-` name."""
        dfd = parent.fd
        mode = stat.S_IMODE(row[R_MODE])
        final_mode = not mode & self.kept_by_umask and not row[R_XATTRS]  # made with its mode: no fchmod
        tmp = None
        try:
            fd = os.open(b".", _TMPFILE, mode if final_mode else 0o600, dir_fd=dfd)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            tmp, final_mode = PARTIAL + name[:200], False
            try:
                fd = os.open(tmp, _CREATE, 0o600, dir_fd=dfd)
            except FileExistsError:  # left by a restore that was killed
                os.unlink(tmp, dir_fd=dfd)
                fd = os.open(tmp, _CREATE, 0o600, dir_fd=dfd)
        placed = False
        try:
            self._content(fd, content, reader)
            self._meta_fd(fd, row, parent.owner, final_mode)
            placed = self._place(fd, dfd, tmp, name)
        finally:
            os.close(fd)
            if tmp is not None and not placed:
                os.unlink(tmp, dir_fd=dfd)
        if not placed:
            self.warnings.append(f"{os.fsdecode(row[R_PATH])}: exists, not replaced (restore with overwrite to "
                                 f"replace it)")
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
        read = reader.chunk
        for i in range(0, len(blob), DIGEST_SIZE):
            data = read(blob[i:i + DIGEST_SIZE])
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            written += len(data)
        if written != content[R_SIZE]:
            raise StoreError(f"restored {written} bytes where {content[R_SIZE]} were recorded",
                             "run 'tapeline check GROUP --full', then restore again")

    def _place(self, fd: int, dfd: int, tmp: bytes | None, name: bytes) -> bool:
        """Give the written file its name; False when the name exists and `overwrite` is off."""
        for retry in (False, True):
            try:
                if tmp is None:
                    _link_fd(fd, dfd, name, self.root)  # fails when the name exists: never replaces
                elif self.overwrite:
                    os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                else:
                    os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                    os.unlink(tmp, dir_fd=dfd)
                return True
            except FileExistsError:
                if not self.overwrite or retry:
                    return False
                os.unlink(name, dir_fd=dfd)  # overwrite: a file put there since _make_room
        return False

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

    def _meta_fd(self, fd: int, row: list, owner: tuple[int, int] | None = None, mode_set: bool = False) -> None:
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

    def _meta_path(self, parent: int, name: bytes, row: list) -> None:
        if self.root:
            os.chown(name, row[R_UID], row[R_GID], dir_fd=parent, follow_symlinks=False)
        if row[R_TYPE] != SYMLINK:
            os.chmod(name, stat.S_IMODE(row[R_MODE]), dir_fd=parent)
        os.utime(name, ns=(row[R_ATIME], row[R_MTIME]), dir_fd=parent, follow_symlinks=False)

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


def _umask() -> int:
    """The process umask, read without setting it (os.umask would change it for every thread meanwhile)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: every file gets its fchmod


def _link_fd(fd: int, dfd: int, name: bytes, root: bool) -> None:
    """linkat(2) an O_TMPFILE descriptor to `name` in `dfd` (FileExistsError when the name exists). AT_EMPTY_PATH
    needs CAP_DAC_READ_SEARCH; without it, the descriptor's /proc path is followed instead."""
    done = _libc.linkat(fd, b"", dfd, name, _AT_EMPTY_PATH) if root else -1
    if done != 0 and (not root or ctypes.get_errno() == errno.ENOENT):
        done = _libc.linkat(_AT_FDCWD, b"/proc/self/fd/%d" % fd, dfd, name, _AT_SYMLINK_FOLLOW)
    if done != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), os.fsdecode(name))


def _open_target(target: Path | None) -> tuple[int, bytes] | None:
    """The target resolved once and opened (created if missing); None for an in-place restore."""
    if target is None:
        return None
    real = os.path.realpath(os.fsencode(target))
    if real == b"/":
        return None  # --to /: every source goes back to its own path
    os.makedirs(real, exist_ok=True)
    return os.open(real, _DIR_OPEN), real


def restore(store: Store, snapshot_id: str, paths: Sequence[bytes | str] | None, target: Path | None, *,
            overwrite: bool = False, progress: Progress = NO_PROGRESS,
            cancel: threading.Event | None = None) -> RestoreResult:
    info = store.snapshot(snapshot_id)
    try:
        selection = _selection(info.sources, paths)
    except StoreError as exc:
        return RestoreResult("failed", str(exc), 0, 0, [str(exc)])
    try:
        dest = _open_target(target)
    except OSError as exc:
        reason = (f"restore target {os.fsdecode(target or '')} cannot be created or opened ({exc.strerror}): give "
                  f"--to a directory that can be written")
        return RestoreResult("failed", reason, 0, 0, [reason])
    writer = _Writer(store, overwrite, progress, info.bytes if not selection else None, dest)
    try:
        result = _run(store, snapshot_id, info.sources, selection, paths, writer, cancel)
        writer.end()
        if result.state == "failed":
            return result
        try:
            writer.make_durable()  # "completed" only once what was written is on disk
        except OSError as exc:
            reason = (f"the restored files could not all be written to disk ({exc.strerror}): check the "
                      f"destination's disk (kernel log, space), then restore again")
            return RestoreResult("failed", reason, result.files, result.bytes, result.warnings + [reason])
        return result
    finally:
        writer.close()
        if dest is not None:
            os.close(dest[0])


def _run(store: Store, snapshot_id: str, sources: Sequence[str], selection: list,
         paths: Sequence[bytes | str] | None, writer: _Writer, cancel: threading.Event | None) -> RestoreResult:
    matched = reached = False
    blocked: list[str] = []
    current = None
    links: dict[bytes, list] = {}
    try:
        for row in store.rows(snapshot_id):
            if cancel is not None and cancel.is_set():
                writer.end()
                return RestoreResult("failed", "cancelled", writer.files, writer.bytes, writer.warnings)
            si = row[R_SOURCE]
            if si != current:
                current, links = si, {}
                writer.begin_source(os.fsencode(sources[si]))
            key = path_key(row[R_PATH])
            if row[R_TYPE] == FILE and row[R_NLINK] > 1:
                links[row[R_PATH]] = row  # content for hardlinks whose first name is not restored
            if not _selected(selection, si, key):
                continue
            matched = True
            try:
                if not writer.reached():
                    continue
            except _Blocked as exc:
                blocked.append(str(exc))
                writer.warnings.append(str(exc))
                continue
            reached = True
            try:
                writer.entry(row, key, links)
            except (OSError, _Unsafe, StoreError) as exc:
                why = getattr(exc, "strerror", None) or exc
                writer.warnings.append(f"{os.fsdecode(row[R_PATH])}: not restored ({why})")
        writer.end()
    except ManifestDamaged as exc:
        writer.end()
        return RestoreResult("failed", str(exc), writer.files, writer.bytes, writer.warnings + [str(exc)])
    except OSError as exc:
        writer.end()
        reason = f"restore stopped: {exc}: check the destination (space, permissions)"
        return RestoreResult("failed", reason, writer.files, writer.bytes, writer.warnings + [reason])
    if selection and not matched:
        reason = f"none of {', '.join(os.fsdecode(p) for p in paths or [])} is in recovery point {snapshot_id}"
        return RestoreResult("failed", reason, 0, 0, [reason])
    if blocked and not reached:
        return RestoreResult("failed", blocked[0], writer.files, writer.bytes, writer.warnings)
    state = "completed with warnings" if writer.warnings else "completed"
    return RestoreResult(state, "", writer.files, writer.bytes, writer.warnings)
