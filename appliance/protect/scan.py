"""The change scan behind sync(): walk, compare with the previous manifest, read and chunk what changed.

`Scanner.rows()` yields manifest rows in manifest order while small files are read, hashed and compressed by
worker processes (read_workers.py) and big files' pieces compressed on worker threads (pipeline.py); a row waits
in `_pending` until its chunks are stored, so rows leave in order and memory stays bounded (at most IN_FLIGHT bytes
of file data and PENDING rows at a time). A changed row is counted in `changed` as it leaves (`_out`): a file a
worker could not read after all is then not counted.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator

from appliance.protect.old_rows import OldRows
from appliance.protect.patterns import Matcher
from appliance.protect.pipeline import MAX_CHUNK, MIN_CHUNK, Pipeline
from appliance.protect.read_worker import KEPT, NOATIME as _NOATIME, OPEN as _OPEN, RETRIES, count_drift, read_xattrs
from appliance.protect.read_workers import Readers
from appliance.protect.types import GroupSpec, Progress, SyncStats
from appliance.store import Store, WriteSession
from appliance.store.model import (BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, R_ATIME, R_CHUNKS, R_CTIME, R_XATTRS,
                                   R_EXTENTS, R_INO, R_MODE, R_MTIME, R_NOTE, R_PATH, R_SIZE,
                                   R_SOURCE, R_TARGET, R_TYPE, SYMLINK)

IN_FLIGHT = 64 << 20
AHEAD = 64 << 20
PENDING = 8192
WINDOW = 16 << 20
MAX_WARNINGS = 1000
HELD_CHANGES = 200_000  # changes kept in brief for the catalog and the check (~45 MB); past that, read back
CHANGED_WHILE_READ = "changed while read"
XATTRS_NOT_READ = "extended attributes not read"
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode's




class SyncRefused(Exception):
    pass


class SyncCancelled(SyncRefused):
    pass


_KINDS = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: SYMLINK, stat.S_IFIFO: FIFO, stat.S_IFCHR: CHARDEV,
          stat.S_IFBLK: BLOCKDEV}  # sockets: none (nothing to restore)


def data_extents(fd: int, size: int) -> list[list[int]]:
    """[start, length] of each data region of an open file, found up to `size` with SEEK_DATA/SEEK_HOLE (a sparse
    file's holes are not read). A region may reach past `size` when the file grew meanwhile."""
    extents = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append([start, end - start])
        pos = end
    return extents


def _user_name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


def _named(cache: dict[int, str], lookup, key: int) -> str:
    """An owner's name, looked up once per sync (a per-sync cache: a renamed user shows at the next sync)."""
    name = cache.get(key)
    if name is None:
        try:
            name = lookup(key)
        except KeyError:
            name = ""
        cache[key] = name
    return name


class Scanner:
    def __init__(self, store: Store, session: WriteSession, group: GroupSpec, base_id: str | None, header: dict,
                 progress: Progress, cancel: threading.Event | None, max_vanished: float, min_files: int) -> None:
        self.store, self.session, self.group = store, session, group
        self.base_id, self.base_header = base_id, header
        self.progress, self.cancel = progress, cancel
        self.max_vanished, self.min_files = max_vanished, min_files
        self.pipe = Pipeline(session.has)
        self._pending: deque = deque()
        self._warnings: list[str] = []
        self._warning_count = 0
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}
        self.changed = array("Q")
        self.changed_brief: list[tuple] | None = []  # (source, path, type, size, mtime) of `changed`, if few enough
        self._unchanged: list[bytes] = []  # chunk lists of unchanged files, looked up in the index in batches
        self._unchanged_chunks = 0
        self._missing: set[bytes] = set()  # chunks unchanged files name that the store does not hold
        self.replaced_bytes = 0  # size of the previous versions of changed and deleted files
        self.deleted: list[tuple[str, bytes]] = []
        self.scanned = self.read_files = self.bytes_read = self.new_bytes = 0
        self._known_bytes = 0  # of the readers' pieces, those the store had already
        self._emitted = 0  # rows out, in order (a changed row's number in `changed`)
        self.readers = Readers()
        self._files = self._bytes = 0
        self._source_files: list[int] = []
        self._last_progress = 0.0
        self._held = 0  # bytes of file data read for rows not yet written out
        self._bad = store.damaged_chunks()
        self._root = b""
        self._window: bytearray | None = None  # made by the first big file (most syncs read none)
        self._read_here: list[tuple[bytes, int, int]] | None = []  # (path, size, mtime_ns) of files read on this
        # thread (the workers keep theirs), for the drift's count; None past KEPT (the check reads the manifest)

    # ---- bookkeeping ---------------------------------------------------------------------------------------
    def warn(self, message: str) -> None:
        self._warning_count += 1
        if len(self._warnings) < MAX_WARNINGS:
            self._warnings.append(message)

    def warnings_list(self) -> list[str]:
        extra = self._warning_count - len(self._warnings)
        return self._warnings + ([f"... and {extra} more warnings"] if extra > 0 else [])

    def stats(self, duration: float, stored: int) -> SyncStats:
        return SyncStats(self.scanned, self.read_files, self.bytes_read, self.new_bytes, stored, duration)

    def header_extra(self) -> dict:
        return {"files": self._files, "bytes": self._bytes, "warnings": self.warnings_list()[:50],
                "source_files": self._source_files}

    def close(self) -> None:
        self.pipe.close()
        self.readers.close()

    def _look_up(self) -> None:
        self._unchanged_chunks += sum(len(b) for b in self._unchanged) >> 5
        self._missing |= self.store.lacks(self._unchanged)
        self._unchanged.clear()

    def drift(self) -> Callable[[], int | None]:
        """Once the walk is over: the count of the files this sync read that differ now from what it recorded
        (read_worker.count_drift), the workers' share counted by them while the manifest's end is written. None:
        too many were read to keep their list; the check then reads them back from the manifest."""
        theirs = self.readers.drift()
        here = self._read_here

        def count() -> int | None:
            mine = None if here is None else count_drift(here)
            rest = 0 if theirs is None else theirs()
            return None if mine is None or rest is None else mine + rest
        return count

    def _read_here_too(self, row: list) -> None:
        if self._read_here is not None:
            self._read_here.append((self._full(row[R_PATH]), row[R_SIZE], row[R_MTIME]))
            if len(self._read_here) > KEPT:
                self._read_here = None

    def lost(self) -> tuple[int, set[bytes]]:
        """After the walk: how many chunk names unchanged files hold, and those the store does not hold."""
        self._look_up()
        return self._unchanged_chunks, self._missing

    # ---- the walk ------------------------------------------------------------------------------------------
    def rows(self) -> Iterator[list]:
        base_sources = self.base_header.get("sources", [])
        base_counts = dict(zip(base_sources, self.base_header.get("source_files", [])))
        for si, spec in enumerate(self.group.sources):
            old_rows: Iterator[list] = iter(())
            if self.base_id is not None and spec.path in base_sources:
                bi = base_sources.index(spec.path)
                old_rows = self.store.rows(self.base_id)
                if len(base_sources) > 1:
                    old_rows = (r for r in old_rows if r[R_SOURCE] == bi)
            files_before = self._files
            deleted: list[list] = []
            yield from self._walk(si, spec.path, Matcher(spec.include, spec.exclude), OldRows(old_rows), deleted)
            had = base_counts.get(spec.path, 0)
            gone = sum(1 for r in deleted if r[R_TYPE] != DIR)
            if had >= self.min_files and gone > self.max_vanished * had:
                raise SyncRefused(f"source {spec.path} lost {gone} of its {had} files since the last sync: check "
                                  f"that it is mounted and complete (refusing to record them deleted); if they really were deleted, "
                                  f"run `tapeline sync {self.group.name} --accept-deletions`")
            self.deleted.extend((spec.path, r[R_PATH]) for r in deleted)
            self.replaced_bytes += sum(r[R_SIZE] for r in deleted if r[R_TYPE] == FILE)
            yield from self._drain(0)  # the readers' answers are in: a file they could not read is not counted
            self._source_files.append(self._files - files_before)

    def _walk(self, si: int, root: str, matcher: Matcher, old: OldRows, deleted: list[list]) -> Iterator[list]:
        """Every name is looked up relative to its directory's open descriptor (fstatat, openat): a path walk
        from the root for each of 100k files cost more than the stat itself. One descriptor per level is open."""
        root_b = self._root = self.readers.root = os.fsencode(root)
        hardlinks: dict[tuple[int, int], bytes] = {}
        st = os.stat(root_b)  # a source given through a symlink is the directory it names
        self._entry(si, None, root_b, b"", (), st, old, deleted, hardlinks)
        pending = self._pending
        lstat = os.stat
        stack = [(b"", (), *self._children(None, root_b, b"", (), old, si))]
        try:
            while stack:
                prefix, pkey, kids, dfd = stack[-1]
                if not kids:
                    stack.pop()
                    if dfd >= 0:
                        self.readers.forget(dfd)
                        os.close(dfd)
                    continue
                name = kids.pop()
                rel = prefix + b"/" + name if prefix else name
                key = pkey + (name,)
                try:
                    st = lstat(name, dir_fd=dfd, follow_symlinks=False)
                except OSError as exc:
                    self._unreadable(si, rel, old.take(key, deleted), exc, "vanished during the sync")
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if matcher.active and matcher.skip_dir(rel, name):
                        continue
                    self._entry(si, dfd, name, rel, key, st, old, deleted, hardlinks)
                    stack.append((rel, key, *self._children(dfd, name, rel, key, old, si)))
                else:
                    if matcher.active and matcher.skip_file(rel, name):
                        continue
                    self._entry(si, dfd, name, rel, key, st, old, deleted, hardlinks)
                while pending and (pending[0][1] is None or len(pending) > PENDING or self._held > IN_FLIGHT):
                    item = pending.popleft()  # rows leave in order, as soon as they are complete
                    if item[1] is not None:
                        self._complete(item)
                    if len(item) == 2:  # unchanged, the common case, inline
                        self._emitted += 1
                        yield item[0]
                    elif (row := self._out(item)) is not None:
                        yield row
                if self.cancel is not None and self.cancel.is_set():
                    raise SyncCancelled("cancelled: nothing was recorded; the previous snapshots are unchanged")
        finally:
            for level in stack:
                if level[3] >= 0:
                    os.close(level[3])
        while old.row is not None:  # whatever the walk did not reach is gone
            deleted.append(old.row)
            old.advance()

    def _full(self, rel: bytes) -> bytes:
        """The path of a walked name, for messages and the few calls that take no descriptor."""
        return self._root + b"/" + rel if rel else self._root

    def _children(self, dfd: int | None, name: bytes, rel: bytes, key: tuple, old: OldRows,
                  si: int) -> tuple[list[bytes], int]:
        """The directory's names sorted as bytes, last first (popped in order), and its open descriptor."""
        fd = -1
        try:
            # The root may be a symlink to the source; below it a directory swapped for a link is not followed.
            fd = os.open(name, _OPEN_DIR if dfd is None else _OPEN_DIR | os.O_NOFOLLOW, dir_fd=dfd)
            names = [n.encode(_FS_ENCODING, _FS_ERRORS) for n in os.listdir(fd)]
            names.sort(reverse=True)
            return names, fd
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            self.warn(f"{os.fsdecode(self._full(rel))}: directory not read ({exc.strerror}); "
                      f"its previous contents are kept")
            for row in old.subtree(key):
                row[R_SOURCE] = si
                if row[R_TYPE] in (FILE, HARDLINK):
                    self._files += 1
                    self._bytes += row[R_SIZE]
                self._pending_row(row, None)
            return [], -1

    def _unreadable(self, si: int, rel: bytes, previous: list | None, exc: OSError, what: str) -> None:
        self.warn(f"{os.fsdecode(rel)}: {what} ({exc.strerror or exc})"
                  + ("; the previous version is kept" if previous else "; not recorded"))
        if previous is not None:
            previous[R_SOURCE] = si
            if previous[R_TYPE] in (FILE, HARDLINK):
                self._files += 1
                self._bytes += previous[R_SIZE]
            self._pending_row(previous, None)

    def _entry(self, si: int, dfd: int | None, name: bytes, rel: bytes, key: tuple, st: os.stat_result,
               old: OldRows, deleted: list[list], hardlinks: dict) -> None:
        self.scanned += 1
        if not self.scanned & 1023:  # a tree of small files reports too, without a clock read per entry
            self._report()
        kind = _KINDS.get(st.st_mode & 0o170000)  # S_IFMT: one dict lookup per entry, not six S_IS* calls
        if kind is None:
            return  # sockets: nothing to restore
        previous = old.row
        if previous is not None and previous[R_PATH] == rel:  # the common case: the next old row is this one
            old.advance()
        else:
            previous = old.take(key, deleted)
        target = None
        if kind == FILE and st.st_nlink > 1:
            first = hardlinks.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                kind, target = HARDLINK, first
        if (previous is not None and previous[R_TYPE] == kind and previous[R_MTIME] == st.st_mtime_ns
                and previous[R_CTIME] == st.st_ctime_ns and previous[R_SIZE] == st.st_size
                and previous[R_INO] == st.st_ino and previous[R_MODE] == st.st_mode
                and previous[R_NOTE] is None and (kind != HARDLINK or previous[R_TARGET] == target)
                and not (self._bad and self._names_bad(previous[R_CHUNKS]))):
            previous[R_SOURCE] = si
            previous[R_ATIME] = st.st_atime_ns
            if kind in (FILE, HARDLINK):
                self._files += 1
                self._bytes += st.st_size
                blob = previous[R_CHUNKS]
                if blob:
                    self._unchanged.append(blob)
                    if len(self._unchanged) >= 4096:
                        self._look_up()
            self._pending.append([previous, None])  # _pending_row, inline for the common case
            return
        if kind == SYMLINK:
            try:
                target = os.readlink(name, dir_fd=dfd)
            except OSError as exc:
                self._unreadable(si, rel, previous, exc, "unreadable link")
                return
        user, group = _named(self._users, _user_name, st.st_uid), _named(self._groups, _group_name, st.st_gid)
        row = [si, rel, kind, st.st_mode, st.st_uid, st.st_gid, user, group,
               st.st_size, st.st_mtime_ns, st.st_atime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_nlink,
               st.st_rdev, target, None, None, None, None, None]
        if kind != FILE:
            self._xattrs(self._full(rel), row)
        refs = None
        if kind == FILE:
            try:
                refs = self._read(dfd, name, st, row)
            except OSError as exc:
                self._unreadable(si, rel, previous, exc, "could not be read")
                return
            self.read_files += 1
        if kind in (FILE, HARDLINK):
            self._files += 1
            self._bytes += row[R_SIZE]
        if refs is not None:
            self._held += row[R_SIZE] if row[R_EXTENTS] is None else sum(e[1] for e in row[R_EXTENTS])
        self._pending.append([row, refs, previous])  # a change: counted as it leaves (_out)

    def _out(self, item: list) -> list | None:
        """A changed row leaving, in order: its number goes to `changed` (none: a file that could not be read
        after all, and had no previous version, is not recorded)."""
        row, _, previous = item
        if row is None:
            return None
        self.changed.append(self._emitted * 2 + (previous is None))
        self._emitted += 1
        if previous is not None and previous[R_TYPE] == FILE:
            self.replaced_bytes += previous[R_SIZE]
        if self.changed_brief is not None:
            self.changed_brief.append((row[R_SOURCE], row[R_PATH], row[R_TYPE], row[R_SIZE], row[R_MTIME]))
            if len(self.changed_brief) > HELD_CHANGES:
                self.changed_brief = None
        return row

    def _xattrs(self, path: bytes | int, row: list) -> None:
        """Record the entry's xattrs and ACLs; one that cannot be read is a warning naming the file, never a silent
        loss, and the note makes the next sync read the entry again (an unchanged row would be copied as is)."""
        row[R_XATTRS], unread = read_xattrs(path)
        if unread:
            self._xattrs_unread(row, unread)

    def _xattrs_unread(self, row: list, unread: list[str]) -> None:
        self.warn(f"{os.fsdecode(self._full(row[R_PATH]))}: extended attributes or ACLs not read: "
                  f"{', '.join(unread)}; recorded without them")
        row[R_NOTE] = XATTRS_NOT_READ

    def _changed_while_read(self, row: list) -> None:
        row[R_NOTE] = CHANGED_WHILE_READ
        self.warn(f"{os.fsdecode(self._full(row[R_PATH]))}: {CHANGED_WHILE_READ} ({RETRIES} tries); "
                  f"the last read is recorded")

    def _names_bad(self, blob: bytes | None) -> bool:
        """A row naming a damaged chunk is read again, so the chunk is stored again if the source has it."""
        return bool(blob) and any(blob[i:i + 32] in self._bad for i in range(0, len(blob), 32))

    # ---- reading and chunking ------------------------------------------------------------------------------
    def _read(self, dfd: int | None, name: bytes, st: os.stat_result, row: list) -> list:
        """Read, hash and queue a file's content; its xattrs are read through the same descriptor. Most files, the
        small ones, go to the readers (read_workers.py), which do the same."""
        if st.st_size <= MIN_CHUNK:
            return self.readers.queue(dfd, name, st.st_size, st.st_mtime_ns, row[R_PATH])
        for attempt in range(RETRIES):
            try:
                fd = os.open(name, _OPEN | _NOATIME, dir_fd=dfd)
            except PermissionError:
                fd = os.open(name, _OPEN, dir_fd=dfd)  # O_NOATIME needs ownership (or root)
            try:
                if attempt == 0:
                    self._xattrs(fd, row)
                size = st.st_size
                extents = None
                if st.st_blocks * 512 < size:
                    refs, extents, got = self._read_extents(fd, size)
                else:
                    refs, got = self._read_stream(fd, size)
                after = os.fstat(fd)
            finally:
                os.close(fd)
            if got == after.st_size and after.st_mtime_ns == st.st_mtime_ns and after.st_size == size:
                break
            st = after
        else:
            self._changed_while_read(row)
        row[R_SIZE], row[R_MTIME], row[R_CTIME], row[R_EXTENTS] = after.st_size, after.st_mtime_ns, \
            after.st_ctime_ns, extents
        self._read_here_too(row)
        return refs

    def _read_extents(self, fd: int, size: int) -> tuple[list, list, int]:
        extents = data_extents(fd, size)
        refs: list = []
        carry = b""
        got = 0
        for i, (start, length) in enumerate(extents):
            os.lseek(fd, start, os.SEEK_SET)
            part, carry, n = self._read_range(fd, length, carry, i == len(extents) - 1)
            refs += part
            got += n
        return refs, extents, size if got == sum(e[1] for e in extents) else -1

    def _read_stream(self, fd: int, size: int) -> tuple[list, int]:
        first = os.read(fd, MIN_CHUNK + 1)
        self.bytes_read += len(first)
        if len(first) <= MIN_CHUNK:  # it shrank since the walk
            return ([self.pipe.add(first)] if first else []), len(first)
        refs, _, n = self._read_range(fd, None, first, True)
        return refs, n

    def _read_range(self, fd: int, length: int | None, carry: bytes, final: bool) -> tuple[list, bytes, int]:
        """Read `length` bytes (None: to the end) after `carry`; pieces cut by content; the tail not yet cut is
        returned unless `final`. Returns (refs, tail, bytes read including carry).

        Reads go into one reused window (fresh 16 MiB buffers cost page faults, and joining tail and block
        copied everything once more); the pipeline copies out only the pieces it keeps (new ones)."""
        refs: list = []
        settled = ahead = 0
        total = len(carry)
        left = length
        window = self._window
        if window is None:
            window = self._window = bytearray(WINDOW + MAX_CHUNK)
        view = memoryview(window)
        filled = len(carry)
        window[:filled] = carry
        while True:
            want = WINDOW if left is None else min(WINDOW, left)
            got = os.readv(fd, [view[filled:filled + want]]) if want else 0
            if left is not None:
                left -= got
            total += got
            self.bytes_read += got
            eof = not got or left == 0
            filled += got
            pieces, tail = self.pipe.cut(view[:filled], final and eof)
            for p in pieces:
                ref = self.pipe.add(p)
                refs.append(ref)
                if ref.__class__ is not bytes:
                    ahead += len(p)
            while ahead > AHEAD and settled < len(refs):  # a big file is stored as it goes, not held whole;
                ref = refs[settled]  # but run ahead of the compression by up to AHEAD bytes, not wait for it
                if ref.__class__ is not bytes:  # window by window
                    ahead -= self._piece_size(ref)
                    refs[settled] = self._store(ref)
                settled += 1
            if eof:
                return refs, bytes(view[filled - tail:filled]), total - (len(carry) if length is not None else 0)
            window[:tail] = bytes(view[filled - tail:filled])  # a copy: the two ranges may overlap
            filled = tail
            self._throttle()

    @staticmethod
    def _piece_size(ref) -> int:
        if len(ref) == 4:
            return ref[3]
        batch, pos = ref
        return len(batch.pieces[pos]) if batch.results is None else batch.results[pos][3]

    def _throttle(self) -> None:
        """Inside a big file: finish earlier rows (in order) while too much file data is held."""
        for item in self._pending:
            if self._held <= IN_FLIGHT:
                break
            if item[1] is not None:
                self._complete(item)
        self._report()

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._last_progress > 0.25:
            self._last_progress = now
            # The last snapshot's entry count is the estimate of what this walk will meet: a percentage for the
            # operator's bar, dropped (no total) once the tree has grown past it.
            expected = self.base_header.get("rows") or None
            total = expected if expected and self.scanned <= expected else None
            self.progress(self.scanned, total, f"{self.scanned} items scanned, {self.bytes_read >> 20} MiB read")

    # ---- ordered output ------------------------------------------------------------------------------------
    def _pending_row(self, row: list, refs: list | None) -> None:
        if refs is not None:
            self._held += row[R_SIZE] if row[R_EXTENTS] is None else sum(e[1] for e in row[R_EXTENTS])
        self._pending.append([row, refs])

    def _complete(self, item: list) -> None:
        """Store the row's new chunks (dedup, pack) and fill in its chunk list and digest."""
        row, refs = item[0], item[1]
        held = row[R_SIZE] if row[R_EXTENTS] is None else sum(e[1] for e in row[R_EXTENTS])
        if refs.__class__ is tuple:  # a reader's
            self._held -= held
            self._answered(item, *self.readers.answer(refs))
            return
        chunks = bytearray()
        for ref in refs:
            chunks += ref if ref.__class__ is bytes else self._store(ref)
        row[R_CHUNKS] = bytes(chunks)
        item[1] = None
        self._held -= held

    def _answered(self, item: list, answer: tuple, stored: memoryview | None) -> None:
        """A reader's answer for a changed file's row: its content stored, its metadata as read. A worker's pieces
        are ranges of `stored`; an inline read's hold their bytes."""
        row, _, previous = item
        item[1] = None
        if answer[0] is None:  # opened, then not read (EIO...): as an inline read that fails
            self.warn(f"{os.fsdecode(row[R_PATH])}: could not be read ({answer[1]})"
                      + ("; the previous version is kept" if previous else "; not recorded"))
            self._bytes -= row[R_SIZE]
            self.read_files -= 1
            if previous is None:
                self._files -= 1
                item[0] = None
            else:
                previous[R_SOURCE] = row[R_SOURCE]
                self._bytes += previous[R_SIZE]
                del item[2]  # the previous row, kept as it was
                item[0] = previous
            return
        pieces, size, mtime_ns, ctime_ns, row[R_XATTRS], unread, changed, got = answer
        self.bytes_read += got
        self._bytes += size - row[R_SIZE]
        row[R_SIZE], row[R_MTIME], row[R_CTIME] = size, mtime_ns, ctime_ns
        if unread:
            self._xattrs_unread(row, unread)
        if changed:
            self._changed_while_read(row)
        if stored is None:  # read on this thread
            self._read_here_too(row)
        chunks = bytearray()
        queued, has = self.pipe.queued, self.session.has
        for piece in pieces:
            digest = piece[0]
            ref = queued.get(digest)
            if ref is not None:  # a big file's piece on its way to the store
                self._store(ref)
            elif not has(digest):
                if stored is None:
                    _, blob, flags, raw = piece
                else:
                    _, start, end, flags, raw = piece
                    blob = stored[start:end]
                    if self.new_bytes < self._known_bytes:
                        # A view holds its whole batch until the pack writes it: where most of what the readers
                        # send is stored already, a few new pieces would hold many batches. Copied, as they were.
                        blob = bytes(blob)
                self.session.add(digest, blob, flags, raw)
                self.new_bytes += raw
            elif stored is not None:
                self._known_bytes += piece[4]
            chunks += digest
        row[R_CHUNKS] = bytes(chunks)

    def _store(self, ref) -> bytes:
        got = Pipeline.resolve(ref, self.pipe)
        if got.__class__ is bytes:
            return got
        digest, blob, flags, raw = got
        if self.pipe.queued.pop(digest, None) is not None:  # the first holder to get here stores it
            self.session.add(digest, blob, flags, raw)
            self.new_bytes += raw
        return digest

    def _drain(self, keep: int) -> Iterator[list]:
        pending = self._pending
        while pending and (len(pending) > keep or pending[0][1] is None or self._held > IN_FLIGHT):
            item = pending[0]
            if item[1] is not None:
                self._complete(item)
            pending.popleft()
            if len(item) == 2:
                self._emitted += 1
                yield item[0]
            elif (row := self._out(item)) is not None:
                yield row
