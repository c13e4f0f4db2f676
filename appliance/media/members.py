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
from appliance.store.model import Entry


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


def member_key(entry: Entry, roots: dict[str, bytes]) -> tuple[bytes, tuple]:
    """A member's path in the archive and its `Prepared.key`, as `prepared_from_entry` gives them, without
    encoding its headers (an incremental set compares these with its base's entries). `roots` as there."""
    root = roots.get(entry.source)
    if root is None:
        root = roots[entry.source] = entry.source.encode(ENCODING, ERRORS)
    full = root if not entry.path else root.rstrip(b"/") + b"/" + entry.path
    kind = entry.type
    mode = entry.mode & 0o7777
    return full.lstrip(b"/") or b".", (kind, entry.size if kind == "file" else 0, archive.IFMT[kind] | mode,
                                       entry.uid, entry.gid, entry.mtime_ns, entry.digest)


def prepared_from_entry(entry: Entry, roots: dict[str, bytes]) -> archive.Prepared:
    """`archive.prepare(archive.member_from_entry(entry, None))`, the same bytes, built straight from the entry for
    the common member (no xattrs, not sparse, numbers that fit their ustar fields): that path cost ~40 us a member,
    most of a set of small files' archiving time. `roots` caches each source's name as bytes."""
    kind = entry.type
    if entry.xattrs or (kind == "file" and entry.extents is not None):
        return archive.prepare(archive.member_from_entry(entry, None))
    path, key = member_key(entry, roots)
    root = roots[entry.source]
    link = None
    if kind == "symlink":
        link = entry.target or b""
    elif kind == "hardlink":
        link = (root.rstrip(b"/") + b"/" + (entry.target or b"")).lstrip(b"/") or b"."
    size = key[1]
    rdev = entry.rdev if kind in _DEVICES else 0
    headers = plain_header(path + b"/" if kind == "dir" and not path.endswith(b"/") else path, archive.TAR_TYPES[kind],
                           entry.mode & 0o7777, entry.uid, entry.gid, entry.user.encode(ENCODING, ERRORS),
                           entry.group.encode(ENCODING, ERRORS), size, entry.mtime_ns, entry.atime_ns,
                           entry.ctime_ns, link or b"", os.major(rdev), os.minor(rdev))
    if headers is None:
        return archive.prepare(archive.member_from_entry(entry, None))
    return archive.Prepared(path, headers, size, key, link, None)


def from_tree(roots: list[str], warnings: list[str]) -> Callable[[], Iterator["archive.Member"]]:
    """The members of the sources read directly; what could not be read as it was (a file changed or unreadable
    while archived) goes to `warnings` (filled when the returned iterator runs: a new run starts them again)."""
    def members() -> Iterator[archive.Member]:
        warnings.clear()
        for root in roots:
            yield from archive.members_from_tree(Path(root), warnings.append)
    return members
