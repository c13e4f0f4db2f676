"""The values the protect engine takes and returns: the contract the daemon codes against.

All results are plain values; the engine never prints. `Progress` is called as (done, total or None, message),
where done counts bytes for syncs and restores and items for checks and prunes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from appliance.store.model import (R_MTIME, R_PATH, R_SIZE, R_SOURCE, R_TYPE, TYPES, Entry, SnapshotInfo,
                                   entry_from_row)

Progress = Callable[[int, "int | None", str], None]


def NO_PROGRESS(done: int, total: int | None, message: str) -> None:  # noqa: N802 (a constant-like default)
    return None


@dataclass(frozen=True)
class SourceSpec:
    """A directory to protect. Patterns (fnmatch, gitignore-like; docs/store-format.md "Patterns"): one without
    "/" matches a name at any depth; one with "/" matches the path from the source root ("/" at the start
    anchors it there); "**" crosses directories. An excluded directory is skipped whole. With `include` set,
    only files matching one of them are kept (directories are always walked)."""

    path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupSpec:
    name: str
    sources: tuple[SourceSpec, ...]


@dataclass(frozen=True)
class Change:
    path: bytes  # relative to the source root, as Entry.path
    source: str
    what: str  # "added" | "changed" | "deleted"
    entry: Entry | None  # the new entry; None for "deleted"


class ChangeList(Sequence):
    """The changes of a sync, read back from the new manifest when iterated (a 1M-file first sync would not fit in
    memory as a list of objects); `brief()` from what the sync kept of them when they were few enough. Iterate it,
    or call list() on it."""

    def __init__(self, store, snapshot_id: str | None, changed_rows: Sequence[int],
                 deleted: Sequence[tuple[str, bytes]], kept: list[tuple] | None = None,
                 sources: Sequence[str] = ()) -> None:
        self._store = store
        self._snapshot_id = snapshot_id
        self._changed = changed_rows  # row number in the manifest * 2 + (1 if new else 0)
        self._deleted = deleted
        self._kept = kept  # (source index, path, type, size, mtime) of each changed row, in order, or None
        self._sources = list(sources)

    def __len__(self) -> int:
        return len(self._changed) + len(self._deleted)

    def _changed_rows(self) -> Iterator[tuple[int, list]]:
        """(number * 2 + new, raw row) of every added or changed entry, in manifest order."""
        if self._changed:
            wanted = iter(self._changed)
            nxt = next(wanted)
            for number, row in enumerate(self._store.rows(self._snapshot_id)):
                if number == nxt >> 1:
                    yield nxt, row
                    nxt = next(wanted, -2)
                    if nxt < 0:
                        break

    def __iter__(self) -> Iterator[Change]:
        for nxt, row in self._changed_rows():
            entry = entry_from_row(row, self._sources)
            yield Change(entry.path, entry.source, "added" if nxt & 1 else "changed", entry)
        for source, path in self._deleted:
            yield Change(path, source, "deleted", None)

    def brief(self) -> Iterator[tuple[str, bytes, str, str | None, int, int]]:
        """(source, path, what, type, size, mtime_ns) of each change (type None, size and mtime 0 for a deletion):
        what the catalog's index and the check's drift need, without decoding whole entries."""
        sources = self._sources
        if self._kept is not None:
            for nxt, (si, path, kind, size, mtime) in zip(self._changed, self._kept):
                yield sources[si], path, "added" if nxt & 1 else "changed", TYPES[kind], size, mtime
        else:
            for nxt, row in self._changed_rows():
                yield (sources[row[R_SOURCE]], row[R_PATH], "added" if nxt & 1 else "changed", TYPES[row[R_TYPE]],
                       row[R_SIZE], row[R_MTIME])
        for source, path in self._deleted:
            yield source, path, "deleted", None, 0, 0

    def __getitem__(self, index):  # type: ignore[override]
        return list(self)[index]


@dataclass(frozen=True)
class SyncStats:
    files_scanned: int = 0
    files_changed: int = 0  # added or changed, read this time
    bytes_read: int = 0
    new_bytes: int = 0  # bytes of chunks the store did not have yet
    stored_bytes: int = 0  # what those took in the store, compressed
    duration_s: float = 0.0


@dataclass(frozen=True)
class SyncResult:
    snapshot: SnapshotInfo | None
    state: str  # "completed" | "completed with warnings" | "failed"
    reason: str
    warnings: list[str]
    stats: SyncStats
    changes: Sequence[Change] = field(default_factory=list)
    verified: SyncCheck | None = None  # what the sync verified of its own snapshot, for the check after it
    drift: int | None = None  # files it read that changed before it ended (None: not counted, too many changes)


@dataclass(frozen=True)
class SyncCheck:
    """The check a sync does as it goes: every chunk it stored is read back and hashed once its pack is sealed,
    and every chunk an unchanged file names is looked up in the index. `bad` holds those that failed."""

    chunks_checked: int
    bad: frozenset[bytes]


@dataclass(frozen=True)
class Alert:
    snapshot_id: str | None
    message: str
    fix: str


@dataclass(frozen=True)
class CheckResult:
    state: str  # "ok" | "repaired" | "damaged" | "failed"
    checked_snapshots: tuple[str, ...]
    chunks_checked: int
    repaired: int
    damaged_snapshots: tuple[str, ...]
    alerts: tuple[Alert, ...]
    drift: int  # entries whose source metadata differs now from the replica (changed since the sync)
    reason: str = ""


@dataclass(frozen=True)
class RestoreResult:
    state: str  # "completed" | "completed with warnings" | "failed"
    reason: str
    files: int
    bytes: int
    warnings: list[str]


@dataclass(frozen=True)
class PruneResult:
    state: str  # "completed" | "failed"
    reason: str
    removed: tuple[str, ...]  # snapshot ids
    packs_deleted: int
    packs_rewritten: int
    bytes_freed: int
    collected: bool = True  # False: the unreferenced chunks were left for a later collection


@dataclass(frozen=True)
class Version:
    snapshot_id: str
    created: datetime
    kind: str
    path: bytes  # the full path on the protected machine
    type: str
    size: int
    mtime_ns: int
    digest: bytes | None
