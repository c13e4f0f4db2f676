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
  started on the way, so the last one finds little left).
- File contents are written in batches in manifest order, by worker processes once the restore is past a few
  hundred files (restore_files.py, restore_worker.py); the calling thread walks the rows and makes directories,
  links and special files. A directory gets its metadata once it is left
  and its last queued file is in place.
- Metadata order per entry: owner (root only), xattrs/ACLs, mode, times; directories get theirs after their
  contents, so their mtime stays as recorded.
Destination: with a target, under target/<source path without its leading "/">/ (as restic does), so several
sources never collide. A restore in which no selected source could be reached at all is "failed".
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from appliance.protect.destination import DIR_OPEN, EXISTS, Unsafe, check_name, make_room, open_dir
from appliance.protect.restore_files import Dir, FileWriters, WorkerLost
from appliance.protect.types import NO_PROGRESS, Progress, RestoreResult
from appliance.store import Store
from appliance.store.errors import ManifestDamaged, StoreError
from appliance.store.model import (BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, R_ATIME, R_GID, R_MODE, R_MTIME,
                                   R_NLINK, R_PATH, R_RDEV, R_SOURCE, R_TARGET, R_TYPE, R_UID, SYMLINK, path_key)

class _Blocked(Exception):
    """The destination of a whole source cannot be reached safely; the message is the operator's warning."""


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


class _Writer:
    """Walks the rows in order on the calling thread: directories, links and special files; file contents go to
    restore_files.FileWriters."""

    def __init__(self, store: Store, overwrite: bool, progress: Progress, total: int | None,
                 target: tuple[int, bytes] | None) -> None:
        self.overwrite = overwrite
        self.target = target  # (fd, resolved path) of the target directory; None: in place
        self.warnings: list[str] = []
        self.out = FileWriters(store, overwrite, progress, total, self.warnings)
        self.stack: list[Dir] = []
        self.root_created = False
        self.source = b""
        self.blocked: bool | None = None  # None: the source's destination is not opened yet

    @property
    def files(self) -> int:
        return self.out.files

    @property
    def bytes(self) -> int:
        return self.out.bytes

    # ---- directories ---------------------------------------------------------------------------------------
    def begin_source(self, source: bytes) -> None:
        """The destination is opened on the first entry restored, so an unselected source is never touched."""
        self.end()
        self.source, self.blocked = source, None
        self.out.linkable = set()

    def reached(self) -> bool:
        """True once the current source's destination root is open; raises _Blocked (once) when it cannot be."""
        if self.blocked is None:
            self.blocked = True
            fd = self._open_root()
            self.stack = [self.out.dir((), fd, None, self.root_created)]
            self.blocked = False
        return not self.blocked

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
                    fd = os.open(name, DIR_OPEN, dir_fd=base)
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
        self.out.submit()
        while self.stack:
            self.out.leave(self.stack.pop())
        self.out.wait(0)

    def parent(self, parent_key: tuple) -> Dir:
        while True:
            top = self.stack[-1].key
            if parent_key[:len(top)] == top:
                break
            self.out.leave(self.stack.pop())
        for name in parent_key[len(self.stack[-1].key):]:
            check_name(name)
            fd, created = open_dir(self.stack[-1].fd, name, 0o755, self.overwrite)
            self.stack.append(self.out.dir(self.stack[-1].key + (name,), fd, None, created))
        return self.stack[-1]

    # ---- entries -------------------------------------------------------------------------------------------
    def entry(self, row: list, key: tuple, links: dict) -> None:
        kind = row[R_TYPE]
        if not key:  # the source root itself
            if self.overwrite or self.root_created:
                self.stack[0].row = row
            return
        name = key[-1]
        check_name(name)  # the names above it were checked when their directories were opened
        parent = self.parent(key[:-1])
        if kind == DIR:
            fd, created = open_dir(parent.fd, name, 0o700, self.overwrite)
            self.stack.append(self.out.dir(key, fd, row if created or self.overwrite else None, created))
            return
        if not parent.fresh and not make_room(parent.fd, name, row[R_PATH], self.overwrite, self.warnings):
            return
        if kind == HARDLINK:
            self.out.submit()
            self.out.wait(0)  # the first name is in place (or known to have failed) before it is linked
            if self._link(row, parent.fd, name):
                self.out.files += 1
                return
        if kind in (FILE, HARDLINK):
            content = row if kind == FILE else links.get(row[R_TARGET])
            if content is None:
                raise Unsafe(f"hardlink target {os.fsdecode(row[R_TARGET])} is not in the recovery point")
            self.out.queue(parent, name, content, row)
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
            self.warnings.append(f"{os.fsdecode(row[R_PATH])}: {EXISTS}")
            return
        self._meta_path(parent.fd, name, row)
        self.out.files += 1

    def _link(self, row: list, parent: int, name: bytes) -> bool:
        target = path_key(row[R_TARGET])
        if row[R_TARGET] not in self.out.linkable:
            return False  # the first link was not restored in this run: write the content instead
        fd = self.stack[0].fd
        opened = []
        try:
            for comp in target[:-1]:
                check_name(comp)
                fd = os.open(comp, DIR_OPEN, dir_fd=fd)
                opened.append(fd)
            os.link(target[-1], name, src_dir_fd=fd, dst_dir_fd=parent, follow_symlinks=False)
        except OSError:
            return False
        finally:
            for f in opened:
                os.close(f)
        return True

    def _meta_path(self, parent: int, name: bytes, row: list) -> None:
        if self.out.root:
            os.chown(name, row[R_UID], row[R_GID], dir_fd=parent, follow_symlinks=False)
        if row[R_TYPE] != SYMLINK:
            os.chmod(name, stat.S_IMODE(row[R_MODE]), dir_fd=parent)
        os.utime(name, ns=(row[R_ATIME], row[R_MTIME]), dir_fd=parent, follow_symlinks=False)

def _open_target(target: Path | None) -> tuple[int, bytes] | None:
    """The target resolved once and opened (created if missing); None for an in-place restore."""
    if target is None:
        return None
    real = os.path.realpath(os.fsencode(target))
    if real == b"/":
        return None  # --to /: every source goes back to its own path
    os.makedirs(real, exist_ok=True)
    return os.open(real, DIR_OPEN), real


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
        try:
            result = _run(store, snapshot_id, info.sources, selection, paths, writer, cancel)
            writer.end()
        except WorkerLost as exc:
            return RestoreResult("failed", str(exc), writer.files, writer.bytes, writer.warnings + [str(exc)])
        if result.state == "failed":
            return result
        try:
            writer.out.make_durable()  # "completed" only once what was written is on disk
        except OSError as exc:
            reason = (f"the restored files could not all be written to disk ({exc.strerror}): check the "
                      f"destination's disk (kernel log, free space), then run the same `tapeline restore` again")
            return RestoreResult("failed", reason, result.files, result.bytes, result.warnings + [reason])
        return result
    finally:
        writer.out.close()
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
            except (OSError, Unsafe, StoreError) as exc:
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
