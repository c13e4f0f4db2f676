"""Restore tar members (as a tape set's frames decompress to them) below a target directory, with the disk
restore's safety rules (appliance/protect/destination.py holds the pieces both use).

- Names: a member's path is taken relative to the target; an absolute name or one holding ".." is refused with a
  warning. Every component is opened from the directory above it with O_NOFOLLOW, so a symlink below the target
  (planted there, or restored earlier from the set itself) is never followed.
- Files are written unnamed (O_TMPFILE) and linked in under their name once content and metadata are complete.
  An existing name is never replaced without `overwrite` (a warning names it); with it the new entry is renamed
  over the old one, so the name never goes missing.
- Metadata: owner (as root, the numeric uid and gid the set recorded, as the disk restore does; otherwise one
  warning counts the members whose owner differs from the restoring user), xattrs (pax SCHILY.xattr.*), POSIX ACLs (SCHILY.acl.access/default, GNU tar's text form, preferred over a
  raw system.posix_acl_* xattr of the same member), mode, then atime and mtime to the nanosecond from the pax
  decimal strings. A directory gets its metadata once the stream has left it (a file created in it later would
  change its mtime, its default ACL would be inherited by the files restored into it); a stream that comes back
  to a directory it left gets the directory's metadata applied again when it leaves it again.
- Hardlinks link to a member restored earlier in the same run; sparse members (GNU sparse 1.0, as tarfile reads
  them) keep their holes: only the data regions are written.
- A member that cannot be restored is a warning naming it; the extraction goes on. `close` makes everything
  durable with one syncfs per file system written to, as the disk restore does before it reports completed.
"""

from __future__ import annotations

import os
import queue
import stat
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.errors import TapelineError
from appliance.media.pax import ArchiveError, acl_xattr, pax_time_ns
from appliance.protect.destination import (DIR_OPEN, EXISTS, Unsafe, check_name, make_room, open_dir,
                                           open_unnamed, partial_name, place, replace, umask)
from appliance.protect.types import NO_PROGRESS, Progress
from appliance.store import durable

CHUNK = 1 << 20  # bytes read from a member's content at a time
INLINE = 1 << 20  # a file up to this size is read whole and handed to the writer thread; a bigger one streams
BATCH_FILES, BATCH_BYTES = 64, 4 << 20  # members per hand-over (one per member would cost more than its write)
QUEUED = 8  # batches handed over ahead of the writer (bounds memory: QUEUED * BATCH_BYTES + INLINE)
PROGRESS_EVERY = 8 << 20  # bytes written between two progress reports (and at least every PROGRESS_FILES files)
PROGRESS_FILES = 1000
_ACLS = {"SCHILY.acl.access": "system.posix_acl_access", "SCHILY.acl.default": "system.posix_acl_default"}
_MINIMAL_ACL = 4 + 3 * 8  # the three entries the mode holds: the kernel keeps no xattr for it
_XATTR = "SCHILY.xattr."
_SPECIAL = {tarfile.FIFOTYPE: stat.S_IFIFO, tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK}


class ExtractError(TapelineError):
    """The target cannot be used, or what was written could not be made durable."""


@dataclass(frozen=True)
class ExtractResult:
    files: int  # entries restored: files, hardlinks, symlinks, special files (not directories)
    bytes: int  # content bytes written (a sparse file's data regions)
    warnings: list[str]


class _Dir:
    __slots__ = ("key", "fd", "info", "owner", "inherits")

    def __init__(self, key: tuple[bytes, ...], fd: int, info: tarfile.TarInfo | None, st: os.stat_result) -> None:
        self.key, self.fd, self.info = key, fd, info  # info: the metadata to apply when the stream leaves it
        # who owns a file created here (a set-group-ID directory gives its group), so no fchown repeats it
        self.owner = (os.geteuid(), st.st_gid if st.st_mode & stat.S_ISGID else os.getegid())
        try:  # a default ACL gives what is created here ACLs that a member without them must lose
            self.inherits = bool(os.getxattr(fd, _ACLS["SCHILY.acl.default"]))
        except OSError:  # none (ENODATA), or no ACLs on this file system
            self.inherits = False


class Extractor:
    """Writes one run's members below `target` (created if missing; a symlink the operator gives as the target is
    resolved once). `write` is called by one thread, in stream order, and `close` once at the end.

    The caller's thread parses the stream and reads each small file's content; one writer thread does every file
    system call, in stream order, so the two overlap (the calls release the GIL) and order is kept without locks.
    A big or sparse file is written by the caller's thread straight from the stream, once the writer is idle."""

    def __init__(self, target: Path, overwrite: bool = False, progress: Progress = NO_PROGRESS) -> None:
        self.overwrite, self.progress = overwrite, progress
        self.warnings: list[str] = []
        self.files = self.bytes = 0
        self.root = os.geteuid() == 0
        self._ids = (os.geteuid(), os.getegid())
        self._now = time.time_ns()  # the atime of a member that has none
        self._reported = (0, 0)
        self._owners_kept: list[bytes] = []  # members whose owner differs (not root: owners are not restored)
        self._restored: set[tuple[bytes, ...]] = set()  # regular files written: what a hardlink may link to
        self._made: set[tuple[bytes, ...]] = set()  # directories this run created
        self._dir_meta: dict[tuple[bytes, ...], tarfile.TarInfo] = {}  # directories left with metadata applied
        self._kept_by_umask = 0o7000 | umask()  # mode bits a create cannot set (special bits: fchmod after fchown)
        self._batch: list[tuple[tarfile.TarInfo, bytes | None]] = []
        self._batch_bytes = 0
        self._queue: queue.Queue[list | None] = queue.Queue(QUEUED)
        self._writer: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._result: ExtractResult | None = None
        real = os.path.realpath(os.fsencode(target))
        try:
            existed = os.path.isdir(real)
            os.makedirs(real, exist_ok=True)
            fd = os.open(real, DIR_OPEN)
        except OSError as exc:
            raise ExtractError(f"restore target {os.fsdecode(target)} cannot be created or opened ({exc.strerror})",
                               "give --to a directory that can be written") from exc
        if not existed:
            self._made.add(())
        self._stack = [_Dir((), fd, None, os.fstat(fd))]
        self._devices = {os.fstat(fd).st_dev: os.dup(fd)}  # opened before any write: syncfs reports later errors

    # ---- members -------------------------------------------------------------------------------------------
    def write(self, info: tarfile.TarInfo, content: BinaryIO | None) -> None:
        """Restore one member; `content` is its data (regular files), read up to the member's size before this
        returns. What cannot be restored becomes a warning; the result comes from `close`."""
        if info.isreg() and (info.size > INLINE or info.sparse is not None):
            self._drain()
            self._write(info, content)
        else:
            data = None
            if info.isreg():
                try:
                    data = content.read(info.size) if info.size and content is not None else b""
                except (OSError, ArchiveError, tarfile.TarError) as exc:
                    why = getattr(exc, "strerror", None) or exc
                    self.warnings.append(f"{os.fsdecode(os.fsencode(info.name))}: not restored ({why})")
                    return
            self._batch.append((info, data))
            self._batch_bytes += info.size
            if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
                self._submit()
        if self.bytes - self._reported[0] >= PROGRESS_EVERY or self.files - self._reported[1] >= PROGRESS_FILES:
            self._reported = (self.bytes, self.files)
            self.progress(self.bytes, None, os.fsdecode(os.fsencode(info.name)))

    def _submit(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_batches, name="tape-extract", daemon=True)
            self._writer.start()
        self._queue.put(self._batch)
        self._batch, self._batch_bytes = [], 0

    def _drain(self) -> None:
        """Everything handed over is written (or the writer's failure raised here)."""
        if self._batch:
            self._submit()
        self._queue.join()
        if self._failed is not None:
            raise self._failed

    def _write_batches(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                if self._failed is None:
                    for info, data in batch:
                        self._write(info, data)
            except BaseException as exc:  # a bug, not a member's fault: raised on the caller's thread
                self._failed = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _write(self, info: tarfile.TarInfo, content: BinaryIO | bytes | None) -> None:
        path = os.fsencode(info.name)
        try:
            key = _key(path)
            if not key:  # the target itself: its metadata only where this restore made it or may replace it
                if not info.isdir():
                    raise Unsafe("its name is the target directory itself")
                if self.overwrite or () in self._made:
                    self._stack[0].info = info
                return
            parent = self._parent(key[:-1])
            if info.isdir():
                self._dir(parent, key, info)
            elif info.isreg():
                self._file(parent, key, info, content, path)
            elif info.islnk():
                self._hardlink(parent, key, info, path)
            elif info.issym() or info.type in _SPECIAL:
                self._special(parent, key[-1], info, path)
            else:
                self.warnings.append(f"{os.fsdecode(path)}: not restored (tar member type {info.type!r} is not "
                                     f"a file, directory, link or special file)")
        except (OSError, Unsafe, ArchiveError, tarfile.TarError) as exc:
            why = getattr(exc, "strerror", None) or exc
            self.warnings.append(f"{os.fsdecode(path)}: not restored ({why})")

    def _parent(self, key: tuple[bytes, ...]) -> _Dir:
        """The open directory `key`, leaving (and finishing) those the stream is done with, creating what is
        missing; intermediate directories that are not members keep 0755 and no metadata of their own."""
        while key[:len(self._stack[-1].key)] != self._stack[-1].key:
            self._leave(self._stack.pop())
        for name in key[len(self._stack[-1].key):]:
            check_name(name)
            top = self._stack[-1]
            fd, created = open_dir(top.fd, name, 0o755, self.overwrite)
            self._opened(top.key + (name,), fd, created, None)
        return self._stack[-1]

    def _opened(self, key: tuple[bytes, ...], fd: int, created: bool, info: tarfile.TarInfo | None) -> None:
        st = os.fstat(fd)
        if st.st_dev not in self._devices:
            self._devices[st.st_dev] = os.dup(fd)
        if created:
            self._made.add(key)
        self._stack.append(_Dir(key, fd, info or self._dir_meta.pop(key, None), st))

    def _dir(self, parent: _Dir, key: tuple[bytes, ...], info: tarfile.TarInfo) -> None:
        fd, created = open_dir(parent.fd, key[-1], 0o700, self.overwrite)
        ours = created or self.overwrite or key in self._made
        self._opened(key, fd, created, info if ours else None)

    def _leave(self, d: _Dir) -> None:
        try:
            if d.info is not None:
                self._dir_meta[d.key] = d.info
                self._meta_fd(d.fd, d.info, b"/".join(d.key) or b".")
        except (OSError, ArchiveError) as exc:
            why = getattr(exc, "strerror", None) or exc
            self.warnings.append(f"{os.fsdecode(b'/'.join(d.key)) or '.'}: metadata not applied ({why})")
        finally:
            os.close(d.fd)

    def _file(self, parent: _Dir, key: tuple[bytes, ...], info: tarfile.TarInfo,
              content: BinaryIO | bytes | None, path: bytes) -> None:
        name = key[-1]
        if key[:-1] not in self._made and not make_room(parent.fd, name, path, self.overwrite, self.warnings,
                                                        renamed_over=True):
            return
        mode, xattrs = info.mode & 0o7777, _xattrs(info)
        final_mode = not mode & self._kept_by_umask and not xattrs  # made with its mode: no fchmod
        fd, tmp = open_unnamed(parent.fd, name, mode if final_mode else 0o600)
        placed = False
        try:
            size = _content(fd, info, content)
            self._meta_fd(fd, info, path, xattrs, parent.owner, final_mode and tmp is None, parent.inherits)
            placed = place(fd, parent.fd, tmp, name, self.overwrite, self.root)
        finally:
            os.close(fd)
            if tmp is not None and not placed:
                os.unlink(tmp, dir_fd=parent.fd)
        if not placed:
            self.warnings.append(f"{os.fsdecode(path)}: {EXISTS}")
            return
        self._restored.add(key)
        self.files += 1
        self.bytes += size

    def _hardlink(self, parent: _Dir, key: tuple[bytes, ...], info: tarfile.TarInfo, path: bytes) -> None:
        if key[:-1] not in self._made and not make_room(parent.fd, key[-1], path, self.overwrite, self.warnings,
                                                        renamed_over=True):
            return
        target = _key(os.fsencode(info.linkname))
        if target not in self._restored:
            self.warnings.append(f"{os.fsdecode(path)}: not restored (a hardlink to {info.linkname}, which this "
                                 f"restore did not write: restore {info.linkname} with it)")
            return
        src, opened = self._stack[0].fd, []
        try:
            for name in target[:-1]:
                src = os.open(name, DIR_OPEN, dir_fd=src)
                opened.append(src)
            self._create(parent.fd, key[-1], path, lambda at: os.link(target[-1], at, src_dir_fd=src,
                                                                       dst_dir_fd=parent.fd, follow_symlinks=False))
        finally:
            for fd in opened:
                os.close(fd)

    def _special(self, parent: _Dir, name: bytes, info: tarfile.TarInfo, path: bytes) -> None:
        if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE) and not self.root:
            self.warnings.append(f"{os.fsdecode(path)}: device not restored (creating a device needs root)")
            return
        if parent.key not in self._made and not make_room(parent.fd, name, path, self.overwrite, self.warnings,
                                                          renamed_over=True):
            return
        if info.issym():
            def create(at: bytes) -> None:
                os.symlink(os.fsencode(info.linkname), at, dir_fd=parent.fd)
        else:
            def create(at: bytes) -> None:
                os.mknod(at, _SPECIAL[info.type] | 0o600, os.makedev(info.devmajor, info.devminor), dir_fd=parent.fd)

        def meta(at: bytes) -> None:
            self._meta_path(parent.fd, at, info, path, parent.inherits)
        self._create(parent.fd, name, path, create, meta)

    def _create(self, dfd: int, name: bytes, path: bytes, create, meta=None) -> None:
        """Make an entry by `create(name)` (with its metadata by `meta(name)`); with `overwrite` it is made under a
        temporary name and renamed over what is there."""
        if not self.overwrite:
            try:
                create(name)
            except FileExistsError:
                self.warnings.append(f"{os.fsdecode(path)}: {EXISTS}")
                return
            if meta is not None:
                meta(name)
        else:
            tmp = partial_name(name)
            try:
                create(tmp)
            except FileExistsError:  # left by a restore that was killed
                os.unlink(tmp, dir_fd=dfd)
                create(tmp)
            try:
                if meta is not None:
                    meta(tmp)
            except BaseException:
                os.unlink(tmp, dir_fd=dfd)
                raise
            replace(dfd, tmp, name)
            try:  # a rename between two names of one inode (a hardlink restored twice) leaves both
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
        self.files += 1

    # ---- metadata ------------------------------------------------------------------------------------------
    def _meta_fd(self, fd: int, info: tarfile.TarInfo, path: bytes, xattrs: list | None = None,
                 owner: tuple[int, int] | None = None, mode_set: bool = False, inherited: bool = True) -> None:
        """Owner (skipped when a new file has it already), xattrs and ACLs, mode, then times (in that order: chown
        clears set-ID bits, an ACL sets the group bits)."""
        if (info.uid, info.gid) != owner:
            self._owner(info, path, lambda: os.fchown(fd, info.uid, info.gid))
        xattrs = _xattrs(info) if xattrs is None else xattrs
        dropped = inherited and _drop_inherited(fd, xattrs, info.isdir())
        for name, value in xattrs:
            self._setxattr(fd, name, value, path)
        if not mode_set or dropped:
            os.fchmod(fd, info.mode & 0o7777)
        os.utime(fd, ns=_times(info, self._now))

    def _meta_path(self, dfd: int, name: bytes, info: tarfile.TarInfo, path: bytes, inherited: bool) -> None:
        self._owner(info, path, lambda: os.chown(name, info.uid, info.gid, dir_fd=dfd, follow_symlinks=False))
        xattrs = _xattrs(info)
        at = b"/proc/self/fd/%d/%s" % (dfd, name)  # the directory by its descriptor, the entry not followed
        if inherited and not info.issym():
            _drop_inherited(at, xattrs, False)
        if xattrs:
            for xname, value in xattrs:
                self._setxattr(at, xname, value, path)
        if not info.issym():
            os.chmod(name, info.mode & 0o7777, dir_fd=dfd)
        os.utime(name, ns=_times(info, self._now), dir_fd=dfd, follow_symlinks=False)

    def _owner(self, info: tarfile.TarInfo, path: bytes, chown) -> None:
        if self.root:
            chown()
        elif (info.uid, info.gid) != self._ids:
            self._owners_kept.append(path)

    def _setxattr(self, target: int | bytes, name: str, value: bytes, path: bytes) -> None:
        try:
            os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))
        except OSError as exc:
            self.warnings.append(f"{os.fsdecode(path)}: xattr {name} not restored ({exc.strerror})")

    # ---- the end -------------------------------------------------------------------------------------------
    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc_info) -> None:
        """A `with` block left without `close` (the caller's loop failed) still finishes what was restored, makes
        it durable and stops the writer thread."""
        if self._result is None:
            self.close()

    def close(self) -> ExtractResult:
        """Write what is still queued, finish every directory still open and make everything written durable
        (ExtractError when the write-back fails: then nothing restored can be trusted to be on disk). Call it also
        when the stream failed midway: what was restored is then finished and on disk. Once closed, the same
        result again."""
        if self._result is not None:
            return self._result
        try:
            self._drain()
            while self._stack:
                self._leave(self._stack.pop())
            if self._owners_kept:
                first = os.fsdecode(self._owners_kept[0])
                self.warnings.append(f"{len(self._owners_kept)} entries (the first {first}) belong to other users "
                                     f"in the set and now belong to the restoring user: restore as root to "
                                     f"restore owners")
            for fd in self._devices.values():
                durable.syncfs(fd)
        except OSError as exc:
            raise ExtractError(f"the restored files could not all be written to disk ({exc.strerror})",
                               "check the destination's disk (kernel log, free space), then restore again") from exc
        finally:
            if self._writer is not None:
                self._queue.put(None)
                self._writer.join()
                self._writer = None
            for fd in [d.fd for d in self._stack] + list(self._devices.values()):
                os.close(fd)
            self._stack, self._devices = [], {}
        # the shared safety code says "restore with overwrite" (the disk restore's task layer words it for the CLI)
        self._result = ExtractResult(self.files, self.bytes, [w.replace("restore with overwrite",
                                                                        "restore with `--overwrite`")
                                                              for w in self.warnings])
        return self._result


def _key(path: bytes) -> tuple[bytes, ...]:
    """A member name as path components below the target ("./" and empty components dropped)."""
    if path.startswith(b"/"):
        raise Unsafe("an absolute name is refused: only names below the target are restored")
    parts = tuple(p for p in path.split(b"/") if p and p != b".")
    if b".." in parts:
        raise Unsafe("a name holding '..' is refused: only names below the target are restored")
    return parts


def _content(fd: int, info: tarfile.TarInfo, content: BinaryIO | bytes | None) -> int:
    """Write the member's data; holes of a sparse member stay holes. Returns the bytes written."""
    if info.size and content is None:
        raise Unsafe(f"its {info.size} bytes of content are missing from the stream")
    if isinstance(content, bytes):
        if len(content) < info.size:
            raise Unsafe(f"the stream ends {info.size - len(content)} bytes before the member's end")
        view, written = memoryview(content), 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], written)
        return written
    regions = info.sparse if info.sparse is not None else [(0, info.size)]
    if info.sparse is not None:
        os.ftruncate(fd, info.size)
    written = at = 0
    for offset, length in regions:
        if not length:
            continue
        if at != offset:
            _skip(content, at, offset)
        end = at = offset + length
        while offset < end:
            data = content.read(min(CHUNK, end - offset))
            if not data:
                raise Unsafe(f"the stream ends {end - offset} bytes before the member's end")
            view = memoryview(data)
            while view:
                n = os.pwrite(fd, view, offset)
                view, offset, written = view[n:], offset + n, written + n
    return written


def _skip(content: BinaryIO, at: int, offset: int) -> None:
    """Move forward over a hole: a seek where the content can (tarfile reads nothing for it), else a read."""
    try:
        content.seek(offset)
        return
    except (OSError, ValueError, AttributeError):
        pass
    while at < offset:
        data = content.read(min(CHUNK, offset - at))
        if not data:
            raise Unsafe(f"the stream ends {offset - at} bytes before the member's end")
        at += len(data)


def _xattrs(info: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """(name, value) of each xattr to set: SCHILY.xattr.* values as bytes, and ACLs from their text."""
    pax = info.pax_headers
    if not pax:
        return []
    out = []
    for key, value in pax.items():
        if key.startswith(_XATTR):
            name = key[len(_XATTR):]
            if not any(_ACLS[k] == name for k in _ACLS if k in pax):  # the ACL's text is set instead
                out.append((name, value.encode("utf-8", "surrogateescape")))
        elif key in _ACLS and value.strip():
            value = acl_xattr(value)
            if key != "SCHILY.acl.access" or len(value) > _MINIMAL_ACL:
                out.append((_ACLS[key], value))
    return out


def _drop_inherited(target: int | bytes, xattrs: list[tuple[str, bytes]], is_dir: bool) -> bool:
    """Remove the ACLs an entry inherited from its directory's default ACL that the member itself does not have
    (its directory may hold its default ACL already: restored earlier from another set, or there before); True if
    one was removed (the mode must then be set again: the ACL's mask was in its group bits)."""
    names = {name for name, _ in xattrs}
    dropped = False
    for acl in (_ACLS["SCHILY.acl.access"], *((_ACLS["SCHILY.acl.default"],) if is_dir else ())):
        if acl not in names:
            try:
                os.removexattr(target, acl, follow_symlinks=isinstance(target, int))
                dropped = True
            except OSError:  # none inherited (ENODATA), or no ACLs on this file system
                pass
    return dropped


def _times(info: tarfile.TarInfo, now: int) -> tuple[int, int]:
    """(atime, mtime) in ns: the pax decimal strings when present (a float would lose the last digits)."""
    pax = info.pax_headers
    mtime, atime = int(info.mtime) * 1_000_000_000, now
    try:
        if "mtime" in pax:
            mtime = pax_time_ns(pax["mtime"])
        if "atime" in pax:
            atime = pax_time_ns(pax["atime"])
    except ValueError:
        pass  # not a pax time: the header's whole seconds (and the restore's time for the atime)
    return atime, mtime
