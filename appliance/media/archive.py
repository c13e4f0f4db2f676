"""Members of a set as a POSIX pax archive cut into independent zstd frames, and back.

What GNU tar needs to restore a member identically is written the way GNU tar writes it: full mtime/atime/ctime in
ns in pax records, uid/gid and names, SCHILY.xattr.* for extended attributes, POSIX ACLs as SCHILY.acl.access and
SCHILY.acl.default text (the store keeps them as system.posix_acl_* xattrs in the kernel's binary form), names that
are not UTF-8 as raw bytes, hardlinks as LNKTYPE, sparse files as GNU sparse 1.0 (a map of data regions ahead of the
data, so `tar -x` recreates the holes). The encoding itself is in `pax.py`.

Invariants:
- Frames hold at most `frame_size` bytes of archive. A member smaller than a frame is never split: when it does not
  fit in what is left of the current frame, that frame is cut first, so a small file is read from one frame.
- Every member's first header is recorded (IndexEntry.frame, .offset) in the frame it starts in.
- A member's content is exactly the size its header announces, or the writer raises `ArchiveError`: the pax stream
  after a short or long member would be garbage. Builders that read a changing source (`members_from_tree`) pad or
  cut and warn themselves.
"""

from __future__ import annotations

import grp
import io
import os
import pwd
import stat
import tarfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import blake3
import zstandard

from appliance.media.format import (SEALED_MAGIC, SKIPPABLE_HEADER, Frame, FramePosition, IndexEntry,
                                    skippable_at)
from appliance.media.pax import (BLOCK, ENCODING, ERRORS, ArchiveError, pax_time, sparse_name, tar_header, text,
                                 xattr_records)
from appliance.protect.scan import data_extents, read_xattrs
from appliance.store.model import Entry

FRAME_SIZE = 4 << 20
READ_SIZE = 1 << 20
FAST_LEVEL = 1  # for a frame mostly of content known to be incompressible: level 3 spends 4x longer finding that out
TAR_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "fifo": tarfile.FIFOTYPE,
              "chardev": tarfile.CHRTYPE, "blockdev": tarfile.BLKTYPE, "hardlink": tarfile.LNKTYPE}
TAR_KINDS = {v: k for k, v in TAR_TYPES.items()}
IFMT = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO,
         "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK, "hardlink": stat.S_IFREG}


class FrameDamaged(ArchiveError):
    """A frame read back does not match its recorded hash, or does not decompress."""

    def __init__(self, number: int, why: str) -> None:
        super().__init__(f"frame {number} is damaged ({why})", "restore its files from another copy of the set")
        self.number = number


@dataclass(frozen=True)
class Member:
    """What to archive: the header as a TarInfo describing the file as it is (real name and size), its content
    (the data regions only, in order, for a sparse file) and what the index records beside it."""

    info: tarfile.TarInfo
    content: Iterable[bytes] | None = None
    sparse: tuple[tuple[int, int], ...] | None = None  # (offset, length) data regions of a sparse file
    digest: bytes | None = None
    mtime_ns: int | None = None  # None: info.mtime in whole seconds
    path: bytes = field(default=b"", compare=False)  # the name as bytes; b"": info.name encoded


_new, _set = object.__new__, object.__setattr__


def fast_member(info: tarfile.TarInfo, content, sparse, digest: bytes | None, mtime_ns: int | None,
                path: bytes) -> Member:
    """Member(...) without the frozen dataclass's per-field setattr: one a member of a set, on the archive's
    thread (a third of the cost)."""
    member = _new(Member)
    _set(member, "__dict__", {"info": info, "content": content, "sparse": sparse, "digest": digest,
                              "mtime_ns": mtime_ns, "path": path})
    return member


def index_entry(path: bytes, key: tuple, frame: int, offset: int, part: int, link: bytes | None) -> IndexEntry:
    """IndexEntry(...) without the frozen dataclass's per-field setattr (as `fast_member`); `key` as
    `Prepared.key`."""
    kind, size, mode, uid, gid, mtime_ns, digest = key
    entry = _new(IndexEntry)
    _set(entry, "__dict__", {"path": path, "type": kind, "size": size, "mode": mode, "uid": uid, "gid": gid,
                             "mtime_ns": mtime_ns, "digest": digest, "frame": frame, "offset": offset, "part": part,
                             "in_set": None, "link": link})
    return entry


def member_name(full_path: bytes) -> str:
    """The archive name of a path on the protected machine: without the leading "/", as GNU tar writes it."""
    return text(full_path.lstrip(b"/")) or "."


# ---- building members --------------------------------------------------------------------------------------------
def _tarinfo(name: str, kind: str, mode: int, uid: int, gid: int, user: str, group: str, size: int,
             mtime_ns: int, atime_ns: int, ctime_ns: int, rdev: int, link: str | None,
             xattrs: Iterable[tuple[bytes, bytes]]) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = TAR_TYPES[kind]
    info.mode = stat.S_IMODE(mode)
    info.uid, info.gid, info.uname, info.gname = uid, gid, user, group
    info.size = size if kind == "file" else 0
    info.mtime = mtime_ns // 1_000_000_000
    if link is not None:
        info.linkname = link
    if kind in ("chardev", "blockdev"):
        info.devmajor, info.devminor = os.major(rdev), os.minor(rdev)
    info.pax_headers = {"mtime": pax_time(mtime_ns), "atime": pax_time(atime_ns), "ctime": pax_time(ctime_ns),
                        **xattr_records(xattrs)}
    return info


def member_from_entry(entry: Entry, read_chunk: Callable[[bytes], bytes] | None) -> Member:
    """A member from a row of the disk replica (`read_chunk(digest)` gives a chunk's bytes; None: a member whose
    content the caller gives later, `with_content`)."""
    full = entry.full_path
    link = None
    if entry.type == "symlink":
        link = text(entry.target or b"")
    elif entry.type == "hardlink":
        root = entry.source.encode(ENCODING, ERRORS).rstrip(b"/")
        link = member_name(root + b"/" + (entry.target or b""))
    info = _tarinfo(member_name(full), entry.type, entry.mode, entry.uid, entry.gid, entry.user, entry.group,
                    entry.size, entry.mtime_ns, entry.atime_ns, entry.ctime_ns, entry.rdev, link, entry.xattrs)
    content = None
    if entry.type == "file" and read_chunk is not None:
        content = (read_chunk(digest) for digest in entry.chunks)
    sparse = entry.extents if entry.type == "file" else None
    return fast_member(info, content, sparse, entry.digest, entry.mtime_ns, full.lstrip(b"/") or b".")


_NAMES: dict[tuple[str, int], str] = {}


def _name_of(kind: str, number: int) -> str:
    key = (kind, number)
    if key not in _NAMES:
        try:
            _NAMES[key] = pwd.getpwuid(number).pw_name if kind == "user" else grp.getgrgid(number).gr_name
        except KeyError:
            _NAMES[key] = ""
    return _NAMES[key]


_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


def _regions(fd: int, size: int) -> tuple[tuple[int, int], ...]:
    """The file's data regions within its size (a region a growing file took past it is cut there)."""
    return tuple((start, min(start + length, size) - start) for start, length in data_extents(fd, size)
                 if start < size)


def _file_content(path: bytes, regions: tuple[tuple[int, int], ...], shown: str,
                  warn: Callable[[str], None]) -> Iterator[bytes]:
    """The regions' bytes, exactly as many as announced: a file that shrank or cannot be read is padded with
    zeros, one that grew is cut, each with a warning naming it."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except PermissionError:
        fd = os.open(path, _READ_FLAGS & ~getattr(os, "O_NOATIME", 0))
    except OSError as exc:
        warn(f"{shown}: could not be read ({exc.strerror}); archived as zeros")
        for _, length in regions:
            yield from _zeros(length)
        return
    try:
        short = False
        for offset, length in regions:
            done = 0
            while done < length:
                try:
                    data = os.pread(fd, min(READ_SIZE, length - done), offset + done)
                except OSError as exc:
                    warn(f"{shown}: read error at byte {offset + done} ({exc.strerror}); the rest archived as zeros")
                    data = b""
                if not data:
                    short = True
                    yield from _zeros(length - done)
                    break
                done += len(data)
                yield data
        if short:
            warn(f"{shown}: shrank while archived; padded with zeros to its recorded size")
    finally:
        os.close(fd)


def _zeros(n: int) -> Iterator[bytes]:
    while n > 0:
        yield bytes(min(n, READ_SIZE))
        n -= READ_SIZE


def members_from_tree(root: Path, warn: Callable[[str], None] | None = None) -> Iterator[Member]:
    """D2T: the members of a tree read directly, root first, then depth first with names sorted as bytes (the
    store's manifest order); hardlinks, xattrs, ACLs and sparse regions as the store's scan sees them. What cannot
    be read is a warning through `warn` naming the file, never a silent loss; sockets are not archived (nothing to
    restore), as in the scan."""
    warn = warn or (lambda message: None)
    top = os.fsencode(os.path.abspath(root))
    links: dict[tuple[int, int], str] = {}
    stack = [top]
    while stack:
        path = stack.pop()
        try:
            st = os.stat(path) if path is top else os.lstat(path)  # a root given through a symlink is what it names
        except OSError as exc:
            warn(f"{os.fsdecode(path)}: vanished or unreadable ({exc.strerror}); not archived")
            continue
        member = _member_at(path, st, links, warn)
        if member is None:
            continue
        yield member
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.fsencode(n) for n in os.listdir(path))
            except OSError as exc:
                warn(f"{os.fsdecode(path)}: directory not read ({exc.strerror}); its contents are not archived")
                continue
            stack += [path.rstrip(b"/") + b"/" + n for n in reversed(names)]


def _member_at(path: bytes, st: os.stat_result, links: dict[tuple[int, int], str],
               warn: Callable[[str], None]) -> Member | None:
    kind = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
            stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    name = member_name(path)
    shown = os.fsdecode(path)
    link = None
    if kind == "file" and st.st_nlink > 1:
        first = links.setdefault((st.st_dev, st.st_ino), name)
        if first != name:
            kind, link = "hardlink", first
    if kind == "symlink":
        try:
            link = text(os.readlink(path))
        except OSError as exc:
            warn(f"{shown}: unreadable link ({exc.strerror}); not archived")
            return None
    xattrs, unread = read_xattrs(path)
    if unread:
        warn(f"{shown}: extended attributes or ACLs not read: {', '.join(unread)}; archived without them")
    info = _tarinfo(name, kind, st.st_mode, st.st_uid, st.st_gid, _name_of("user", st.st_uid),
                    _name_of("group", st.st_gid), st.st_size, st.st_mtime_ns, st.st_atime_ns, st.st_ctime_ns,
                    st.st_rdev, link, sorted((xattrs or {}).items()))
    if kind != "file":
        return Member(info, None, None, None, st.st_mtime_ns, path.lstrip(b"/"))
    sparse = None
    regions: tuple[tuple[int, int], ...] = ((0, st.st_size),) if st.st_size else ()
    if st.st_blocks * 512 < st.st_size:
        try:
            fd = os.open(path, _READ_FLAGS & ~getattr(os, "O_NOATIME", 0))
            try:
                sparse = regions = _regions(fd, st.st_size)
            finally:
                os.close(fd)
        except OSError:
            pass  # read as a whole: the content reader warns if it cannot
    return Member(info, _file_content(path, regions, shown, warn), sparse, None, st.st_mtime_ns, path.lstrip(b"/"))


def check_size(path: bytes, written: int, data_size: int, writer: "ArchiveWriter | None" = None) -> None:
    """A member's content gave exactly the bytes its header announced, or the archive is garbage from there on
    (`writer`, when given, is ended)."""
    if written != data_size:
        if writer is not None:
            writer._ended = True
        raise ArchiveError(f"{text(path)}: its content gave {'more than ' if written > data_size else ''}"
                           f"{written} bytes where {data_size} were announced",
                           "check the source (or the store: 'tapeline check GROUP --full') and write the set again")


# ---- writing ----------------------------------------------------------------------------------------------------
class Prepared:
    """A member ready for `ArchiveWriter.add`: its headers encoded (and a sparse member's map after them), the
    size of its data, and what its index entry records. `key` is (type, size, mode with its type bits, uid, gid,
    mtime_ns, digest), as `IndexEntry` has them (an incremental set compares the two)."""

    __slots__ = ("path", "headers", "data_size", "key", "link", "content")

    def __init__(self, path: bytes, headers: bytes, data_size: int, key: tuple, link: bytes | None,
                 content: Iterable[bytes] | None) -> None:
        self.path, self.headers, self.data_size, self.key, self.link, self.content = \
            path, headers, data_size, key, link, content


def prepare(member: Member) -> Prepared:
    info = member.info
    kind = TAR_KINDS.get(info.type)
    if kind is None:
        raise ArchiveError(f"{info.name}: tar type {info.type!r} is not archived", "archive it as a file")
    name = info.name.encode(ENCODING, ERRORS)
    mtime_ns = member.mtime_ns if member.mtime_ns is not None else int(info.mtime) * 1_000_000_000
    key = (kind, info.size, IFMT[kind] | info.mode, info.uid, info.gid, mtime_ns, member.digest)
    link = info.linkname.encode(ENCODING, ERRORS) if kind in ("symlink", "hardlink") else None
    path = member.path or name
    if member.sparse is None:
        data_size = info.size if info.type == tarfile.REGTYPE else 0
        return Prepared(path, tar_header(info, name, data_size, info.pax_headers), data_size, key, link,
                        member.content)
    regions = [(o, n) for o, n in member.sparse if n]
    end = regions[-1][0] + regions[-1][1] if regions else 0
    if end > info.size:
        raise ArchiveError(f"{info.name}: a data region ends at byte {end}, past its size {info.size}",
                           "check the source (or the store: 'tapeline check GROUP --full')")
    if end < info.size or not regions:
        regions.append((info.size, 0))  # as GNU tar: the map reaches the real size, so a trailing hole is kept
    sparse_map = f"{len(regions)}\n" + "".join(f"{o}\n{n}\n" for o, n in regions)
    prefix = sparse_map.encode() + bytes(-len(sparse_map) % BLOCK)
    data_size = sum(n for _, n in regions)
    records = {**info.pax_headers, "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
               "GNU.sparse.name": info.name, "GNU.sparse.realsize": str(info.size)}
    header = tar_header(info, sparse_name(name), len(prefix) + data_size, records)
    return Prepared(path, header + prefix, data_size, key, link, member.content)


class ArchiveWriter:
    """A pax stream cut into zstd frames. Iterate what `add` and `close` return to the end: the frames come out in
    order as they are compressed. `part` is stamped on the index entries of members added from then on.

    Frames are compressed (and sealed, and hashed) by `workers` threads while the caller goes on building the
    archive (zstd and BLAKE3 release the GIL): at most `workers + 1` frames wait, so memory stays bounded.
    `workers=0` compresses in the caller's thread."""

    def __init__(self, frame_size: int = FRAME_SIZE, level: int = 3, cipher=None,
                 workers: int = min(4, os.cpu_count() or 1)) -> None:
        self.frame_size = frame_size
        self.cipher = cipher
        self.part = 1
        self._level = level
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tape-frames") if workers else None
        self._waiting: deque[tuple[Future | tuple[bytes, bytes], int, int, list[IndexEntry]]] = deque()
        self._ahead = workers + 1
        self._pieces: list = []  # the frame being filled: headers and content as given, joined on a worker
        self._size = 0
        self._fast: list[list[int]] = []  # [start, end) of incompressible content in the pieces, by their offset
        self._entries: list[IndexEntry] = []
        self._number = 0
        self._ended = False

    def add(self, member: Member | Prepared, whole: bool = True, incompressible: bool = False) -> Iterator[Frame]:
        """Add a member; returns (through `yield from`) the bytes of content it gave. `whole=False`: the first
        piece of a member whose content goes on in `add_more` calls (a member split between frame workers):
        neither checked against its size nor padded here. `incompressible`: its content is known not to compress
        (the store kept its chunks raw); a frame mostly of such content is compressed at FAST_LEVEL."""
        if self._ended:
            raise ArchiveError("a member added after the end of the archive", "start a new ArchiveWriter")
        if not isinstance(member, Prepared):
            member = prepare(member)
        headers, data_size = member.headers, member.data_size
        pad = -data_size % BLOCK  # the headers fill whole blocks
        total = len(headers) + data_size + pad
        if self._size and self._size + total > self.frame_size >= total:
            yield from self._cut(self._size)
        self._entries.append(index_entry(member.path, member.key, self._number, self._size, self.part, member.link))
        self._pieces.append(headers)
        self._size += len(headers)
        written = yield from self._content(member.content, data_size + 1, incompressible)
        if whole:
            check_size(member.path, written, data_size, self)
            yield from self._pad(pad)
        return written

    def add_more(self, content: Iterable[bytes], pad: int, incompressible: bool = False) -> Iterator[Frame]:
        """More content of the member added last (`add(..., whole=False)`), then `pad` bytes of padding; returns
        (through `yield from`) the bytes of content it gave."""
        written = yield from self._content(content, None, incompressible)
        yield from self._pad(pad)
        return written

    def _content(self, content: Iterable[bytes] | None, stop: int | None, incompressible: bool) -> Iterator[Frame]:
        """Append content, cutting frames as they fill, up to the chunk that reaches `stop` bytes (a member that
        gives more than announced is not read to its end); returns the bytes it gave."""
        written = 0
        for chunk in content or ():
            size = len(chunk)
            written += size
            if stop is not None and written >= stop:
                break
            if size:
                self._pieces.append(chunk)  # (a cut hands the list to a worker and starts a new one)
                self._size += size
                if incompressible:
                    fast = self._fast
                    if fast and fast[-1][1] == self._size - size:
                        fast[-1][1] = self._size
                    else:
                        fast.append([self._size - size, self._size])
            while self._size >= self.frame_size:
                yield from self._cut(self.frame_size)
        return written

    def _pad(self, pad: int) -> Iterator[Frame]:
        if pad:
            self._pieces.append(bytes(pad))
            self._size += pad
        while self._size >= self.frame_size:
            yield from self._cut(self.frame_size)

    def _cut(self, length: int) -> Iterator[Frame]:
        """Hand the first `length` bytes of the pieces to a worker as the next frame; the frames now ready."""
        if length == self._size:
            raw, self._pieces, self._size = self._pieces, [], 0
        else:  # a piece that runs past the frame's end is split (views, not copies)
            taken = 0
            for i, piece in enumerate(self._pieces):
                taken += len(piece)
                if taken >= length:
                    break
            over = taken - length
            raw = self._pieces[:i + 1]
            rest = self._pieces[i + 1:]
            if over:
                last = memoryview(raw[-1])
                raw[-1], rest = last[:len(last) - over], [last[len(last) - over:], *rest]
            self._pieces, self._size = rest, self._size - length
        entries = [e for e in self._entries if e.offset < length]
        self._entries = [replace(e, frame=self._number + 1, offset=e.offset - length)
                         for e in self._entries[len(entries):]]
        number = self._number
        self._number += 1
        fast = 2 * sum(min(end, length) - start for start, end in self._fast if start < length) >= length
        self._fast = [[max(0, start - length), end - length] for start, end in self._fast if end > length]
        job = self._pool.submit(self._store, raw, length, number, fast) if self._pool else \
            self._store(raw, length, number, fast)
        self._waiting.append((job, length, number, entries))
        yield from self._ready(self._ahead)

    def _store(self, pieces: list, length: int, number: int, fast: bool) -> tuple[bytes, bytes]:
        """One frame's stored bytes and their BLAKE3 (run on a worker thread). The pieces are gathered in the
        thread's own buffer, reused: a fresh one a frame costs page faults, and joining them on the archive's
        thread held it up."""
        local = self._local
        name = "fast" if fast else "zstd"
        zstd = getattr(local, name, None)
        if zstd is None:
            zstd = zstandard.ZstdCompressor(level=FAST_LEVEL if fast else self._level, write_checksum=True)
            setattr(local, name, zstd)
        if len(getattr(local, "buf", b"")) < length:
            local.buf = bytearray(max(length, self.frame_size))
        view = memoryview(local.buf)
        at = 0
        for piece in pieces:
            end = at + len(piece)
            view[at:end] = piece
            at = end
        data = zstd.compress(view[:length])
        if self.cipher is not None:
            data = self.cipher.seal(number, data)
        return data, blake3.blake3(data).digest()

    def _ready(self, keep: int) -> Iterator[Frame]:
        """The finished frames at the head of the queue, waiting for them while more than `keep` are queued."""
        while self._waiting:
            job, length, number, entries = self._waiting[0]
            if isinstance(job, Future):
                if len(self._waiting) <= keep and not job.done():
                    return
                job = job.result()
            self._waiting.popleft()
            data, digest = job
            yield Frame(data, length, number, entries, digest)

    def close(self, end: bool = False) -> Iterator[Frame]:
        """The rest of the frames, the last one partly filled. `end=True` (the last part of the set) adds the
        end-of-archive blocks and ends the writer; without it the writer goes on (the next part starts a fresh
        frame)."""
        if end:
            self._pieces.append(bytes(2 * BLOCK))
            self._size += 2 * BLOCK
            self._ended = True
        if self._size:
            yield from self._cut(self._size)
        yield from self._ready(0)
        if end and self._pool is not None:
            self._pool.shutdown()


# ---- reading ----------------------------------------------------------------------------------------------------
class _Bytes:
    """A byte stream over an iterator of chunks (tape blocks, decompressed frames)."""

    def __init__(self, chunks: Iterator[bytes], skip: int = 0) -> None:
        self._chunks = iter(chunks)
        self._buf = bytearray()
        self._skip = skip

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n + self._skip:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            self._buf += chunk
        if self._skip:
            del self._buf[:self._skip]
            self._skip = 0
        return True

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self._buf[:n])

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            while self._fill(len(self._buf) + READ_SIZE):
                pass
            n = len(self._buf)
        else:
            self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def unread(self, data: bytes) -> None:
        """Put bytes read too far back at the front of the stream."""
        self._buf[:0] = data

    def readable(self) -> bool:
        return True


def read_frames(blocks: Iterator[bytes], block_offset: int, cipher=None,
                frames: list[FramePosition] | None = None, check_only: bool = False) -> Iterator[bytes]:
    """The decompressed data of each frame from a LOCATEd position (`block_offset` bytes into the first block).
    Given the frames' positions (consecutive, the first at that offset), exactly those are read and each one's hash
    is checked; without them every frame up to the end of the blocks (skippable frames passed over). `check_only`
    (with positions: a verify) yields each frame's stored bytes once its hash matched, not decompressed."""
    stream = _Bytes(blocks, block_offset)
    dctx = zstandard.ZstdDecompressor()
    if frames is not None:
        for position in frames:
            data = stream.read(position.length)
            if len(data) < position.length:
                raise FrameDamaged(position.number, "the tape file ends inside it")
            if blake3.blake3(data).digest() != position.hash:
                raise FrameDamaged(position.number, "hash mismatch")
            yield data if check_only else _open_frame(dctx, data, cipher, position.number, position.raw_length)
        return
    number = 0
    while True:
        head = stream.peek(SKIPPABLE_HEADER)
        if len(head) < 4:
            return
        found = skippable_at(head)
        if found is not None:
            magic, length = found
            body = stream.read(SKIPPABLE_HEADER + length)
            if magic == SEALED_MAGIC:
                yield _open_frame(dctx, body, cipher, number, None)
                number += 1
            continue
        if head[:4] != zstandard.FRAME_HEADER:
            raise FrameDamaged(number, "no zstd frame starts where one should")
        yield _decompress_one(dctx, stream, number)
        number += 1


def _decompress_one(dctx: zstandard.ZstdDecompressor, stream: _Bytes, number: int) -> bytes:
    obj = dctx.decompressobj()
    out = []
    try:
        while not obj.eof:
            chunk = stream.read(READ_SIZE)
            if not chunk:
                raise FrameDamaged(number, "the tape file ends inside it")
            out.append(obj.decompress(chunk))
    except zstandard.ZstdError as exc:
        raise FrameDamaged(number, str(exc)) from None
    stream.unread(obj.unused_data)
    return b"".join(out)


def _open_frame(dctx: zstandard.ZstdDecompressor, data: bytes, cipher, number: int, raw_length: int | None) -> bytes:
    """One stored frame's data; `raw_length` (known from the index) also pins the frame number a sealed frame
    must carry. A stream read without the index counts frames from its start, which a later part does not."""
    found = skippable_at(data)
    if found is not None and found[0] == SEALED_MAGIC:
        if cipher is None:
            raise ArchiveError(f"frame {number} is encrypted", "give the pool's key file to read this set")
        data = cipher.open(data, number if raw_length is not None else None)
    try:
        raw = dctx.decompress(data, max_output_size=raw_length or 0)
    except zstandard.ZstdError as exc:
        raise FrameDamaged(number, str(exc)) from None
    if raw_length is not None and len(raw) != raw_length:
        raise FrameDamaged(number, f"{len(raw)} bytes where {raw_length} were recorded")
    return raw


def read_members(raw: Iterator[bytes], offset: int) -> Iterator[tuple[tarfile.TarInfo, BinaryIO]]:
    """The members of a tar stream that starts `offset` bytes into the first decompressed frame at a member's first
    header. Each content is read before the next member is asked for (a stream); non-files give empty content.
    pax times keep their nanoseconds in `info.pax_headers` ("mtime", "atime", "ctime"; `pax_time_ns` reads them)."""
    with tarfile.open(fileobj=_Bytes(raw, offset), mode="r|", encoding=ENCODING, errors=ERRORS) as tar:
        for info in tar:
            content = tar.extractfile(info) if info.isreg() else None
            yield info, content if content is not None else io.BytesIO(b"")

