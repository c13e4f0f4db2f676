"""Writing safely below a restore destination: the pieces the disk restore (restore.py, restore_files.py) and the
tape restore (appliance/media/extract.py) share.

Every name is created relative to an open directory descriptor, every directory opened with O_NOFOLLOW, so a
symlink below the destination is never followed. A file is written as an unnamed O_TMPFILE and linked in under its
name once complete: a killed restore leaves nothing half written under a real name, and linking never replaces a
name that appeared meanwhile (only `overwrite` does, by a rename over it, so the old file or the new one is always
there). A file system without O_TMPFILE gets a `.tapeline-partial-<name>` name instead.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TMPFILE = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC
PARTIAL = b".tapeline-partial-"
EXISTS = "exists, not replaced (restore with overwrite to replace it)"
_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD, _AT_SYMLINK_FOLLOW, _AT_EMPTY_PATH = -100, 0x400, 0x1000


class Unsafe(Exception):
    """An entry that cannot be restored safely; the message says why."""


def check_name(name: bytes) -> None:
    if name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
        raise Unsafe(f"unsafe name {name!r}")


def partial_name(name: bytes) -> bytes:
    return PARTIAL + name[:200]


def open_dir(parent: int, name: bytes, mode: int, overwrite: bool) -> tuple[int, bool]:
    """Open (or create) directory `name` in `parent` without following a symlink: (fd, created). With `overwrite` a
    non-directory there (a symlink itself, never what it names) is replaced by the directory."""
    created = False
    try:
        os.mkdir(name, mode, dir_fd=parent)
        created = True
    except FileExistsError:
        pass
    try:
        return os.open(name, DIR_OPEN, dir_fd=parent), created
    except OSError as exc:
        if created or exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise Unsafe(f"{os.fsdecode(name)} cannot be opened as a directory: {exc.strerror}") from exc
        # O_DIRECTORY|O_NOFOLLOW reports a symlink as ENOTDIR: lstat tells the operator which one it is
        what = "a symlink" if stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode) else "not a directory"
        if not overwrite:
            raise Unsafe(f"{os.fsdecode(name)} exists and is {what} (not followed, not replaced): restore with "
                         f"overwrite to replace it by the directory") from exc
    os.unlink(name, dir_fd=parent)  # the file or the link itself, never what a link names
    os.mkdir(name, mode, dir_fd=parent)
    return os.open(name, DIR_OPEN, dir_fd=parent), True


def make_room(parent: int, name: bytes, path: bytes, overwrite: bool, warnings: list[str],
              renamed_over: bool = False) -> bool:
    """Whether a non-directory may be put at `name`: nothing is there, or `overwrite` and it was removed (an empty
    directory only: a restore never deletes an operator's tree). A refusal is a warning naming `path`.
    `renamed_over`: an existing non-directory is left in place, for the caller to rename the new entry over it."""
    try:
        st = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return True
    if not overwrite:
        warnings.append(f"{os.fsdecode(path)}: {EXISTS}")
        return False
    if stat.S_ISDIR(st.st_mode):
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            warnings.append(f"{os.fsdecode(path)}: a directory with content is where the recovery point has "
                            f"a file, not replaced: move or remove it, then restore again")
            return False
        return True
    if not renamed_over:
        os.unlink(name, dir_fd=parent)
    return True


def open_unnamed(parent: int, name: bytes, mode: int) -> tuple[int, bytes | None]:
    """A new file to write, not yet under any name: (fd, None), or (fd, temporary name) where the file system has
    no O_TMPFILE (a temporary left by a killed restore is replaced)."""
    try:
        return os.open(b".", _TMPFILE, mode, dir_fd=parent), None
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    tmp = partial_name(name)
    try:
        return os.open(tmp, _CREATE, 0o600, dir_fd=parent), tmp
    except FileExistsError:
        os.unlink(tmp, dir_fd=parent)
        return os.open(tmp, _CREATE, 0o600, dir_fd=parent), tmp


def place(fd: int, parent: int, tmp: bytes | None, name: bytes, overwrite: bool, root: bool) -> bool:
    """Give a file from `open_unnamed` its name; False when the name exists and `overwrite` is off. With
    `overwrite` an existing name is replaced by a rename, so it never goes missing."""
    try:
        if tmp is None:
            link_fd(fd, parent, name, root)  # fails when the name exists: never replaces
        elif overwrite:
            os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        else:
            os.link(tmp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
            os.unlink(tmp, dir_fd=parent)
        return True
    except FileExistsError:
        if not overwrite:
            return False
    tmp = partial_name(name)
    try:
        link_fd(fd, parent, tmp, root)
    except FileExistsError:  # left by a restore that was killed
        os.unlink(tmp, dir_fd=parent)
        link_fd(fd, parent, tmp, root)
    replace(parent, tmp, name)
    return True


def replace(parent: int, tmp: bytes, name: bytes) -> None:
    """Rename `tmp` over `name` in `parent`; `tmp` is removed when that fails."""
    try:
        os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        os.unlink(tmp, dir_fd=parent)
        raise


def link_fd(fd: int, parent: int, name: bytes, root: bool) -> None:
    """linkat(2) an O_TMPFILE descriptor to `name` in `parent` (FileExistsError when the name exists).
    AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; without it, the descriptor's /proc path is followed instead."""
    done = _libc.linkat(fd, b"", parent, name, _AT_EMPTY_PATH) if root else -1
    if done != 0 and (not root or ctypes.get_errno() == errno.ENOENT):
        done = _libc.linkat(_AT_FDCWD, b"/proc/self/fd/%d" % fd, parent, name, _AT_SYMLINK_FOLLOW)
    if done != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), os.fsdecode(name))


def umask() -> int:
    """The process umask, read without setting it (os.umask would change it for every thread meanwhile)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: every file gets its fchmod
