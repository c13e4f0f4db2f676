"""Writes that survive a crash or a power cut: the one way the store and the restore put files in place.

A file the store relies on is written under a temporary name on the same filesystem, fsynced, renamed over its
final name, and the final name's directory fsynced (the rename is only durable once its directory is). A reader
then finds the old file or the whole new one, never a torn or empty one. Writers that stream (packs, manifests)
fsync their own file and call `publish`; small files go through `write_file`.

A restore makes its writes durable with one `syncfs` per filesystem it wrote to (docs/store-format.md says why
rather than an fsync per file).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)


def fsync_dir(path: Path | str | bytes) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Rename a written and fsynced temporary file over `final`, then make the rename durable."""
    os.rename(tmp, final)
    fsync_dir(final.parent)


def write_file(final: Path, data: bytes, tmp: Path) -> None:
    """Replace `final` by `data` atomically and durably; `tmp` is a scratch name on the same filesystem."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        publish(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def syncfs(fd: int) -> None:
    """Write back everything dirty on the filesystem holding `fd` and wait for it (syncfs(2), the GIL released).

    Since Linux 5.8 it also reports a writeback error (EIO, ENOSPC) met on that filesystem since `fd` was opened,
    so open `fd` before writing."""
    if _libc.syncfs(fd) != 0:
        code = ctypes.get_errno() or errno.EIO
        raise OSError(code, os.strerror(code))
