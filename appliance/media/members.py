"""What a tape set holds: the members of a recovery point (D2D2T), or of a group's sources read directly (D2T), and
for an incremental set the split between members written again and members an earlier set already holds.

An incremental set's index lists every member of its point: a member whose content and metadata are what the
group's previous set in the pool recorded is not written again, its index entry names the set that holds it
(`in_set`), so a restore from the incremental alone finds every file of the point.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from appliance.media import archive
from appliance.media import format as fmt


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
                  carried: list) -> Callable[[], Iterator["archive.Member"]]:
    """The members of a replica snapshot to write; entries unchanged since `base` go to `carried` instead (filled
    when the returned iterator runs: a new run starts them again)."""

    def members() -> Iterator[archive.Member]:
        carried.clear()
        for entry in store.entries(snapshot_id):
            member = archive.member_from_entry(entry, store.read_chunk)
            if base:
                old = base.get(member.path)
                if old is not None and _key(old) == archive.unchanged_key(member):
                    carried.append(old)
                    continue
            yield member
    return members


def from_tree(roots: list[str], warnings: list[str]) -> Callable[[], Iterator["archive.Member"]]:
    """The members of the sources read directly; what could not be read as it was (a file changed or unreadable
    while archived) goes to `warnings` (filled when the returned iterator runs: a new run starts them again)."""
    def members() -> Iterator[archive.Member]:
        warnings.clear()
        for root in roots:
            yield from archive.members_from_tree(Path(root), warnings.append)
    return members
