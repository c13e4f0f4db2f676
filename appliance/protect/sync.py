"""Sync: walk the sources, skip what did not change since the last snapshot, store what did, write a manifest.

Invariants:
- The walk is depth first with names sorted as bytes, the manifest's order, so the previous manifest is merged
  as a stream (no dict of every path: a 1M-file sync stays small).
- A file counts as unchanged when type, size, mtime_ns, ctime_ns, inode and mode all match its previous row;
  its row is copied (xattrs and ACLs change ctime, so they are covered too).
- Nothing is committed unless the whole scan succeeded: packs are sealed first, then the manifest is renamed in.
  A refusal, a cancel, ENOSPC or a crash leaves the previous snapshots as they were.
- A source that is missing or empty where the last snapshot had files, or that lost more than `max_vanished`
  of them, is refused: an unmounted disk must never be recorded as everything deleted.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from array import array
from itertools import chain
from datetime import UTC, datetime

from appliance.protect.scan import Scanner, SyncRefused
from appliance.protect.types import NO_PROGRESS, ChangeList, GroupSpec, Progress, SyncCheck, SyncResult, SyncStats
from appliance.store import Store
from appliance.store.errors import ManifestDamaged
from appliance.store.workers import WorkerFailed, WorkerLost

MIN_FILES_FOR_VANISH_CHECK = 10


def _base(store: Store, group: str) -> tuple[str | None, dict]:
    """The newest snapshot of the group whose manifest reads, and its header."""
    for info in reversed(store.snapshots(group)):
        if any("damaged manifest" in w for w in info.warnings):
            continue
        try:
            return info.id, store.header(info.id)
        except ManifestDamaged:
            continue
    return None, {}


def _precheck(group: GroupSpec, header: dict, allow_empty: bool) -> str | None:
    counts = dict(zip(header.get("sources", []), header.get("source_files", [])))
    for spec in group.sources:
        had = counts.get(spec.path, 0)
        try:
            with os.scandir(spec.path) as it:
                empty = next(it, None) is None
        except FileNotFoundError:
            if had:
                return f"source {spec.path} is missing where the last sync had {had} files: check that it is mounted"
            return f"source {spec.path} does not exist: check the path of group {group.name!r}"
        except NotADirectoryError:
            return f"source {spec.path} is not a directory: check the path of group {group.name!r}"
        except PermissionError:
            return f"source {spec.path} cannot be read (permission denied): run the daemon as root"
        if empty and had and not allow_empty:
            return (f"source {spec.path} is empty where the last sync had {had} files: check that it is mounted "
                    f"(refusing to record every file deleted); if they really were deleted, run "
                    f"`tapeline sync {group.name} --accept-deletions`")
    return None


def sync(store: Store, group: GroupSpec, *, kind: str = "sync", progress: Progress = NO_PROGRESS,
         cancel: threading.Event | None = None, now: datetime | None = None,
         max_vanished: float = 0.5) -> SyncResult:
    """Make a snapshot ("sync", or a recovery point "point") of the group's sources. Never raises for a
    source or store problem: the result says "failed" and why.

    A source that lost more than `max_vanished` of its files, or became empty, is refused as "not mounted?";
    `max_vanished=1.0` is the operator's word that the deletions are real."""
    started = time.monotonic()
    created = (now or datetime.now(UTC)).astimezone(UTC)
    while True:
        base_id, header = _base(store, group.name)
        refusal = _precheck(group, header, allow_empty=max_vanished >= 1.0)
        if refusal:
            return SyncResult(None, "failed", refusal, [refusal], SyncStats(duration_s=time.monotonic() - started))
        try:
            return _run(store, group, kind, progress, cancel, max_vanished, created, started, base_id, header)
        except ManifestDamaged as exc:  # the base's body is damaged: record it and sync against an older base
            store.mark_damaged(base_id, [str(exc)])


def _run(store: Store, group: GroupSpec, kind: str, progress: Progress, cancel: threading.Event | None,
         max_vanished: float, created: datetime, started: float, base_id: str | None, header: dict) -> SyncResult:
    session = store.session(base_id)
    scanner = Scanner(store, session, group, base_id, header, progress, cancel, max_vanished,
                      MIN_FILES_FOR_VANISH_CHECK)
    sources = [s.path for s in group.sources]
    counting: list = []

    def count_drift():  # iterated once the walk's rows are out (chained after them: no layer per row)
        counting.append(scanner.drift())
        yield from ()

    try:
        info = session.commit(group.name, kind, created, sources, chain(scanner.rows(), count_drift()),
                              header_extra=scanner.header_extra)
        unchanged, missing = scanner.lost()
        verified = SyncCheck(session.verified_chunks + unchanged, frozenset(session.bad_chunks() | missing))
        drift = _counted(counting[0]) if counting else None
    except (SyncRefused, WorkerLost, WorkerFailed) as exc:
        return _failed(scanner, str(exc), started)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            reason = (f"disk full writing the replica store {store.root}: free space or shorten retention "
                      f"and prune; nothing already protected was lost")
        else:
            reason = f"store write failed ({exc}): check {store.root}; nothing already protected was lost"
        return _failed(scanner, reason, started)
    finally:
        scanner.close()
        session.close()
    stats = scanner.stats(time.monotonic() - started, session.stored_bytes)
    warnings = scanner.warnings_list()
    state = "completed with warnings" if warnings else "completed"
    changes = ChangeList(store, info.id, scanner.changed, scanner.deleted, scanner.changed_brief, sources)
    store.note_replaced(scanner.replaced_bytes)
    what = "recovery point" if kind == "point" else "sync"
    progress(scanner.scanned, scanner.scanned, f"{what} of {group.name} {state}")
    return SyncResult(info, state, "", warnings, stats, changes, verified, drift)


def _counted(count) -> int | None:
    """The drift, or None for the check to count itself: the snapshot is in place, a lost reader cannot fail it."""
    try:
        return count()
    except (WorkerLost, WorkerFailed):
        return None


def _failed(scanner: Scanner, reason: str, started: float) -> SyncResult:
    return SyncResult(None, "failed", reason, [*scanner.warnings_list(), reason],
                      scanner.stats(time.monotonic() - started, 0), ChangeList(None, None, array("Q"), []))
