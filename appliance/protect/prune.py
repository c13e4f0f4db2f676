"""Retention: remove expired recovery points and superseded syncs, then collect unreferenced chunks.

Rules: a "point" older than `keep` goes; a "sync" goes once a later snapshot exists; the newest snapshot of the
group (the replica) always stays, and so does a pinned one (a queued or running tape backup is to read it).
Collection is safe against a sync running at the same time in this process (Store.gc: chunks a running session
relies on, its packs and its base snapshot are kept). A kill -9 during a
prune leaves whole snapshots (each is one file, unlinked at once) and whole packs (a rewritten pack is renamed in
before the original is unlinked).

Collection reads every manifest of the store, so the prune after each sync (collect=None) runs it only when the
file versions syncs replaced or deleted since the last collection may add up to GC_SHARE of the store (or
GC_FLOOR bytes): an upper bound of the garbage, since a chunk only becomes garbage once the rows naming it were
replaced or deleted. The estimate lives in the running store (a restart starts it at zero: what was left is
collected with the next collection); an explicit prune always collects.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from appliance.protect.types import NO_PROGRESS, Progress, PruneResult
from appliance.store import Store
from appliance.store.errors import StoreError

GC_SHARE = 0.1
GC_FLOOR = 256 << 20


def expired(store: Store, group: str, keep: timedelta, now: datetime, pinned: Collection[str] = ()) -> list[str]:
    snaps = store.snapshots(group)
    if not snaps:
        return []
    newest = snaps[-1].id
    cutoff = now - keep
    return [s.id for s in snaps if s.id != newest and s.id not in pinned and (s.kind != "point" or s.created < cutoff)]


def prune(store: Store, group: str, *, keep: timedelta, now: datetime | None = None,
          progress: Progress = NO_PROGRESS, cancel: threading.Event | None = None,
          collect: bool | None = True, pinned: Collection[str] = ()) -> PruneResult:
    """Remove expired snapshots but the `pinned` ones (a tape job still to read them), then collect unreferenced
    chunks: always (True), never (False), or when it may pay (None, see above)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    removed = []
    skipped = []
    doomed = expired(store, group, keep, now, pinned)
    for i, sid in enumerate(doomed):
        if cancel is not None and cancel.is_set():
            return PruneResult("failed", "cancelled", tuple(removed), 0, 0, 0)
        progress(i, len(doomed), f"removing {sid}")
        try:
            store.delete_snapshot(sid)
            removed.append(sid)
        except StoreError as exc:
            skipped.append(str(exc))
    if collect is None:
        collect = store.worth_collecting(GC_SHARE, GC_FLOOR)
    if not collect:
        reason = "; ".join(skipped)
        return PruneResult("completed", reason, tuple(removed), 0, 0, 0, collected=False)
    try:
        stats = store.gc(cancel, progress)
    except OSError as exc:
        return PruneResult("failed", f"garbage collection stopped: {exc}: check {store.root}", tuple(removed),
                           0, 0, 0)
    if stats.get("cancelled"):
        return PruneResult("failed", "cancelled", tuple(removed), 0, 0, 0)
    reason = "; ".join(skipped + ([stats["skipped"]] if "skipped" in stats else []))
    return PruneResult("completed", reason, tuple(removed), stats.get("packs_deleted", 0),
                       stats.get("packs_rewritten", 0), stats.get("bytes_freed", 0))
