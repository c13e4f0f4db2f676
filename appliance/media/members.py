"""What a tape set holds: the members of a recovery point (D2D2T), or of a group's sources read directly (D2T), and
for an incremental set the split between members written again and members an earlier set already holds.

An incremental set's index lists every member of its point: a member whose content and metadata are what the
group's previous set in the pool recorded is not written again, its index entry names the set that holds it
(`in_set`), so a restore from the incremental alone finds every file of the point.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from appliance.media import archive
from appliance.media import format as fmt
from appliance.media.pax import ENCODING, ERRORS, plain_header
from appliance.store.model import Entry

READERS = 2  # threads reading chunks ahead of the archive (zstd and BLAKE3 release the GIL)
BATCH_BYTES, BATCH_MEMBERS = 4 << 20, 256  # small members' chunks read by one task (a task a file costs more)
BIG = 4 << 20  # a member over this size is read chunk by chunk as the archive takes it, not held whole
AHEAD_BATCHES = 2 * READERS  # batches read ahead of the archive (bounds memory: ~AHEAD_BATCHES * BATCH_BYTES)
AHEAD_CHUNKS = 8  # a big member's chunks read ahead of the archive


def _key(entry: "fmt.IndexEntry") -> tuple:
    return entry.type, entry.size, entry.mode, entry.uid, entry.gid, entry.mtime_ns, entry.digest


def base_entries(indexes: list[list["fmt.SetIndex"]]) -> dict[bytes, "fmt.IndexEntry"]:
    """path -> the entry of the base set (its parts' indexes), with `in_set` naming the set that holds the data."""
    out: dict[bytes, fmt.IndexEntry] = {}
    for parts in indexes:
        for index in parts:
            holder = index.header.set_uuid
            for entry in index.entries:
                out[entry.path] = entry if entry.in_set else replace(entry, in_set=holder)
    return out


def from_snapshot(store, snapshot_id: str, base: dict[bytes, "fmt.IndexEntry"] | None,
                  carried: list) -> Callable[[], Iterator["archive.Prepared"]]:
    """The members of a replica snapshot to write; entries unchanged since `base` go to `carried` instead (filled
    when the returned iterator runs: a new run starts them again)."""

    def kept() -> Iterator[tuple[archive.Prepared, tuple[bytes, ...] | None]]:
        carried.clear()
        roots: dict[str, bytes] = {}
        for entry in store.entries(snapshot_id):
            member = prepared_from_entry(entry, roots)
            if base:
                old = base.get(member.path)
                if old is not None and _key(old) == member.key:
                    carried.append(old)
                    continue
            yield member, entry.chunks if entry.type == "file" else None

    return lambda: read_ahead(kept(), store.read_chunk)


_DEVICES = ("chardev", "blockdev")


def prepared_from_entry(entry: Entry, roots: dict[str, bytes]) -> archive.Prepared:
    """`archive.prepare(archive.member_from_entry(entry, None))`, the same bytes, built straight from the entry for
    the common member (no xattrs, not sparse, numbers that fit their ustar fields): that path cost ~40 us a member
    on the archive's thread, the one a set of small files waits on. `roots` caches each source's name as bytes."""
    kind = entry.type
    if entry.xattrs or (kind == "file" and entry.extents is not None):
        return archive.prepare(archive.member_from_entry(entry, None))
    root = roots.get(entry.source)
    if root is None:
        root = roots[entry.source] = entry.source.encode(ENCODING, ERRORS)
    full = root if not entry.path else root.rstrip(b"/") + b"/" + entry.path
    path = full.lstrip(b"/") or b"."
    link = None
    if kind == "symlink":
        link = entry.target or b""
    elif kind == "hardlink":
        link = (root.rstrip(b"/") + b"/" + (entry.target or b"")).lstrip(b"/") or b"."
    mode = entry.mode & 0o7777
    size = entry.size if kind == "file" else 0
    rdev = entry.rdev if kind in _DEVICES else 0
    headers = plain_header(path + b"/" if kind == "dir" and not path.endswith(b"/") else path, archive.TAR_TYPES[kind],
                           mode, entry.uid, entry.gid, entry.user.encode(ENCODING, ERRORS),
                           entry.group.encode(ENCODING, ERRORS), size, entry.mtime_ns, entry.atime_ns,
                           entry.ctime_ns, link or b"", os.major(rdev), os.minor(rdev))
    if headers is None:
        return archive.prepare(archive.member_from_entry(entry, None))
    key = (kind, size, archive.IFMT[kind] | mode, entry.uid, entry.gid, entry.mtime_ns, entry.digest)
    return archive.Prepared(path, headers, size, key, link, None)


def read_ahead(items: Iterable[tuple[archive.Prepared, tuple[bytes, ...] | None]],
               read_chunk: Callable[[bytes], bytes]) -> Iterator[archive.Prepared]:
    """The members, each with its chunks (`read_chunk`: read, decompressed and verified; None for a member without
    content) as its content, read by READERS threads ahead of the caller, whose own thread then only encodes the
    archive: read on that thread, the chunks held the archive to one core. Small members are read in batches; a big
    one streams. A chunk that cannot be read raises when the archive takes that member's content, as a read on the
    caller's thread would."""
    pool = ThreadPoolExecutor(READERS, thread_name_prefix="tape-read")
    queued: deque[tuple[list, Future | None]] = deque()  # (members, their chunks) or ([big member], None)
    batch: list = []
    size = 0

    def read_batch(digest_lists: list[tuple[bytes, ...] | None]) -> list:
        out: list = []
        for digests in digest_lists:
            try:
                out.append(None if digests is None else [read_chunk(d) for d in digests])
            except Exception as exc:  # raised again when the archive takes this member's content
                out.append(exc)
        return out

    def submit() -> None:
        nonlocal batch, size
        if batch:
            queued.append(([m for m, _ in batch], pool.submit(read_batch, [d for _, d in batch])))
            batch, size = [], 0

    def ready(keep: int) -> Iterator[archive.Prepared]:
        while len(queued) > keep:
            members, future = queued.popleft()
            if future is None:
                member, digests = members[0]
                member.content = _streamed(pool, read_chunk, digests)
                yield member
                continue
            for member, content in zip(members, future.result()):
                member.content = _raising(content) if isinstance(content, Exception) else content
                yield member

    try:
        for member, digests in items:
            if member.data_size > BIG:
                submit()
                queued.append(([(member, digests)], None))
            else:
                batch.append((member, digests))
                size += member.data_size
                if size >= BATCH_BYTES or len(batch) >= BATCH_MEMBERS:
                    submit()
            yield from ready(AHEAD_BATCHES)
        submit()
        yield from ready(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _streamed(pool: ThreadPoolExecutor, read_chunk: Callable[[bytes], bytes],
              digests: tuple[bytes, ...]) -> Iterator[bytes]:
    reads: deque[Future] = deque()
    rest = iter(digests)
    try:
        while True:
            while len(reads) < AHEAD_CHUNKS and (digest := next(rest, None)) is not None:
                reads.append(pool.submit(read_chunk, digest))
            if not reads:
                return
            yield reads.popleft().result()
    finally:
        for future in reads:
            future.cancel()


def _raising(exc: Exception) -> Iterator[bytes]:
    raise exc
    yield b""  # a generator: raised when the content is read


def from_tree(roots: list[str], warnings: list[str]) -> Callable[[], Iterator["archive.Member"]]:
    """The members of the sources read directly; what could not be read as it was (a file changed or unreadable
    while archived) goes to `warnings` (filled when the returned iterator runs: a new run starts them again)."""
    def members() -> Iterator[archive.Member]:
        warnings.clear()
        for root in roots:
            yield from archive.members_from_tree(Path(root), warnings.append)
    return members
