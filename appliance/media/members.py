"""What a tape set holds: the members of a recovery point (D2D2T), or of a group's sources read directly (D2T), and
for an incremental set the split between members written again and members an earlier set already holds.

An incremental set's index lists every member of its point: a member whose content and metadata are what the
group's previous set in the pool recorded is not written again, its index entry names the set that holds it
(`in_set`), so a restore from the incremental alone finds every file of the point.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from appliance.media import archive
from appliance.media import format as fmt
from appliance.media.pax import ENCODING, ERRORS, plain_header
from appliance.store.model import (R_ATIME, R_CHUNKS, R_CTIME, R_EXTENTS, R_GID, R_GROUP, R_MODE, R_MTIME,
                                   R_PATH, R_RDEV, R_SIZE, R_SOURCE, R_TARGET, R_TYPE, R_UID, R_USER, R_XATTRS,
                                   TYPES, content_digest, entry_from_row)


def entry_key(entry: "fmt.IndexEntry") -> tuple:
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


_DEVICES = ("chardev", "blockdev")


def member_key(row: list, sources: list[str], roots: dict[str, bytes]) -> tuple[bytes, tuple]:
    """A manifest row's path in the archive and its `Prepared.key`, as `prepared_from_row` gives them, without
    encoding its headers (an incremental set compares these with its base's entries). `roots` caches each source's
    name as bytes."""
    source = row[R_SOURCE]
    root = roots.get(sources[source])
    if root is None:
        root = roots[sources[source]] = sources[source].encode(ENCODING, ERRORS)
    path = row[R_PATH]
    full = root if not path else root.rstrip(b"/") + b"/" + path
    kind = TYPES[row[R_TYPE]]
    return full.lstrip(b"/") or b".", (kind, row[R_SIZE] if kind == "file" else 0,
                                       archive.IFMT[kind] | row[R_MODE] & 0o7777, row[R_UID], row[R_GID],
                                       row[R_MTIME], content_digest(row[R_CHUNKS]))


def prepared_from_row(row: list, sources: list[str], roots: dict[str, bytes]) -> archive.Prepared:
    """`archive.prepare(archive.member_from_entry(entry_from_row(row, sources), None))`, the same bytes, built
    straight from the manifest row for the common member (no xattrs, not sparse, numbers that fit their ustar
    fields): through an Entry and a TarInfo that cost ~40 us a member, most of a set of small files' archiving
    time. `roots` as in `member_key`."""
    kind = TYPES[row[R_TYPE]]
    if row[R_XATTRS] or (kind == "file" and row[R_EXTENTS] is not None):
        return archive.prepare(archive.member_from_entry(entry_from_row(row, sources), None))
    path, key = member_key(row, sources, roots)
    link = None
    if kind == "symlink":
        link = row[R_TARGET] or b""
    elif kind == "hardlink":
        root = roots[sources[row[R_SOURCE]]]
        link = (root.rstrip(b"/") + b"/" + (row[R_TARGET] or b"")).lstrip(b"/") or b"."
    size = key[1]
    rdev = row[R_RDEV] if kind in _DEVICES else 0
    headers = plain_header(path + b"/" if kind == "dir" and not path.endswith(b"/") else path, archive.TAR_TYPES[kind],
                           row[R_MODE] & 0o7777, row[R_UID], row[R_GID], row[R_USER].encode(ENCODING, ERRORS),
                           row[R_GROUP].encode(ENCODING, ERRORS), size, row[R_MTIME], row[R_ATIME], row[R_CTIME],
                           link or b"", os.major(rdev), os.minor(rdev))
    if headers is None:
        return archive.prepare(archive.member_from_entry(entry_from_row(row, sources), None))
    return archive.Prepared(path, headers, size, key, link, None)


def from_tree(roots: list[str], warnings: list[str]) -> Callable[[], Iterator["archive.Member"]]:
    """The members of the sources read directly; what could not be read as it was (a file changed or unreadable
    while archived) goes to `warnings` (filled when the returned iterator runs: a new run starts them again)."""
    def members() -> Iterator[archive.Member]:
        warnings.clear()
        for root in roots:
            yield from archive.members_from_tree(Path(root), warnings.append)
    return members
