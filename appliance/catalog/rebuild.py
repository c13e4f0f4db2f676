"""Rebuild the catalog's index from the store alone (the store is self-describing; the catalog is only an index).

`rebuild_from_store` re-creates every group the store has snapshots of (keeping the settings of groups the catalog
still knows; new ones get the configured defaults and the sources of their newest snapshot), then each group's
points and version index by replaying its snapshots oldest first and diffing each manifest against the previous one.
`reconcile` does the same for just the groups whose points differ from the store's (a daemon killed between a
snapshot's commit and its catalog record, or a prune between its deletes and its catalog update).

Invariants: a replay writes exactly what record_point would have written had each sync been recorded live (modulo
what counts as "changed": here any difference in type, size, mtime, content digest, mode, owner or link target);
an unreadable manifest becomes a damaged point that changes nothing in the index.

Reconciliation never forgets a point on its own, except one the group's retention had already expired while the
store still holds others of the group (a prune whose catalog update a stop interrupted). Any other point the catalog
has and the store lacks leaves its group as it is and is reported (`Reconciled.missing`; the daemon raises an alert)
until an operator says to forget them (`forget_missing`, `tapeline catalog forget-missing`). And a catalog indexes one
store: `claim_store` records the store's id in it, and refuses another store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

from sqlalchemy import delete
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.groups import SourceInput, create_group
from appliance.catalog.models import FileVersion, ProtectionGroup, RecoveryPoint, Source, StoreIdentity
from appliance.catalog.points import IndexChange, drop_points, known_snapshots, list_points, record_point
from appliance.errors import Conflict, TapelineError

log = logging.getLogger("tapeline.catalog")


@dataclass(frozen=True)
class GroupDefaults:
    sync_seconds: int
    point_times: tuple[str, ...]
    keep_seconds: int


@dataclass(frozen=True)
class RebuildResult:
    groups: tuple[str, ...]
    points: int
    created_groups: tuple[str, ...]


def _signature(e) -> tuple:
    return (e.type, e.size, e.mtime_ns, e.digest, e.mode, e.uid, e.gid, e.target)


def _diff(prev: dict, cur: dict) -> Iterator[IndexChange]:
    for key, (sig, kind, size, mtime) in cur.items():
        old = prev.get(key)
        if old is None:
            yield IndexChange(key[0], key[1], "added", kind, size, mtime)
        elif old[0] != sig:
            yield IndexChange(key[0], key[1], "changed", kind, size, mtime)
    for key in prev.keys() - cur.keys():
        yield IndexChange(key[0], key[1], "deleted")


def _ensure_group(catalog: Catalog, name: str, sources: tuple[str, ...], defaults: GroupDefaults) -> tuple[int, bool]:
    with catalog.session() as s:
        group = s.exec(select(ProtectionGroup).where(ProtectionGroup.name == name)).first()
        if group is not None:
            have = {x.path for x in s.exec(select(Source).where(Source.group_id == group.id))}
            for path in sources:
                if path not in have:
                    s.add(Source(group_id=group.id, path=path))
            return group.id, False
    info = create_group(catalog, name, [SourceInput(p) for p in sources], defaults.sync_seconds,
                        defaults.point_times, defaults.keep_seconds)
    return info.id, True


def rebuild_group(catalog: Catalog, store, group_id: int, group_name: str) -> int:
    """Replace the group's points and version index with a replay of the store's snapshots. Returns points made."""
    with catalog.session() as s:
        s.execute(delete(FileVersion).where(FileVersion.group_id == group_id))
        s.execute(delete(RecoveryPoint).where(RecoveryPoint.group_id == group_id))
        have = {x.path for x in s.exec(select(Source).where(Source.group_id == group_id))}
        for snap in store.snapshots(group_name):
            for path in snap.sources:
                if path not in have:
                    s.add(Source(group_id=group_id, path=path))
                    have.add(path)
    prev: dict = {}
    count = 0
    for snap in store.snapshots(group_name):
        state = snap.state
        try:
            cur = {(e.source, e.path): (_signature(e), e.type, e.size, e.mtime_ns) for e in store.entries(snap.id)}
        except TapelineError as exc:
            log.warning("rebuild: %s", exc)
            cur, state = prev, "damaged"
        record_point(catalog, group_id, snap.id, snap.kind, snap.created, snap.files, snap.bytes, _diff(prev, cur),
                     state=state)
        prev = cur
        count += 1
    return count


def rebuild_from_store(catalog: Catalog, store, defaults: GroupDefaults) -> RebuildResult:
    names: dict[str, tuple[str, ...]] = {}
    for snap in store.snapshots():
        if snap.sources:
            names[snap.group] = snap.sources  # oldest first, so the newest snapshot's sources win
        else:
            names.setdefault(snap.group, ())
    created, points = [], 0
    for name, sources in names.items():
        if not sources:
            log.warning("rebuild: group %s has no readable snapshot; skipped", name)
            continue
        group_id, new = _ensure_group(catalog, name, sources, defaults)
        if new:
            created.append(name)
        points += rebuild_group(catalog, store, group_id, name)
    log.info("catalog rebuilt from the store: %d groups, %d points", len(names), points)
    return RebuildResult(tuple(names), points, tuple(created))


@dataclass(frozen=True)
class Reconciled:
    reindexed: list[str] = field(default_factory=list)      # groups re-indexed from the store
    missing: dict[str, list[int]] = field(default_factory=dict)  # group -> catalog ids of points the store lacks


def reconcile(catalog: Catalog, store, now: datetime | None = None) -> Reconciled:
    """Bring each group's index in line with the store, forgetting no point but pruned ones (see the module's
    docstring); groups with other points missing from the store are left alone and reported."""
    now = now or datetime.now(timezone.utc)
    with catalog.reader() as s:
        groups = [(g.id, g.name, g.keep_seconds) for g in s.exec(select(ProtectionGroup))]
    out = Reconciled()
    for group_id, name, keep_seconds in groups:
        have = {snap.id for snap in store.snapshots(name)}
        known = known_snapshots(catalog, group_id)
        if known == have:
            continue
        gone = [p for p in list_points(catalog, group_id, name) if p.snapshot_id not in have]
        pruned = [p for p in gone if have and p.time < now - timedelta(seconds=keep_seconds)]
        if len(pruned) < len(gone):
            out.missing[name] = [p.id for p in gone]
            log.error("group %s: %d recovery point(s) of the catalog are not in the store %s; left as they are "
                      "until an operator runs `tapeline catalog forget-missing`", name, len(gone), store.root)
            continue
        if pruned:
            log.warning("group %s: forgetting %d expired point(s) a prune removed from the store", name, len(pruned))
            drop_points(catalog, group_id, [p.snapshot_id for p in pruned])
        if have - known:
            log.warning("the store has recovery points of group %s the catalog lacks; re-indexing it", name)
            rebuild_group(catalog, store, group_id, name)
        out.reindexed.append(name)
    return out


def forget_missing(catalog: Catalog, store) -> dict[str, int]:
    """The operator's word: forget every point the store lacks (and index those only the store has).
    Returns group -> points forgotten."""
    with catalog.reader() as s:
        groups = [(g.id, g.name) for g in s.exec(select(ProtectionGroup))]
    forgotten = {}
    for group_id, name in groups:
        have, known = {snap.id for snap in store.snapshots(name)}, known_snapshots(catalog, group_id)
        if known - have:
            log.warning("group %s: forgetting %d recovery point(s) missing from the store, as asked", name,
                        len(known - have))
            forgotten[name] = drop_points(catalog, group_id, known - have)  # the others keep their ids
        if have - known:
            rebuild_group(catalog, store, group_id, name)
    return forgotten


def claim_store(catalog: Catalog, store, catalog_shown: str) -> None:
    """Record the store this catalog indexes; refuse a store other than the one recorded."""
    with catalog.session() as s:
        row = s.get(StoreIdentity, 1)
        if row is None:
            s.add(StoreIdentity(id=1, store_id=store.identity, store_path=str(store.root)))
            return
        if row.store_id != store.identity:
            raise Conflict(f"the catalog {catalog_shown} indexes the replica store {row.store_path} (id "
                           f"{row.store_id[:8]}), not {store.root} (id {store.identity[:8]})",
                           "give each daemon its own catalog (catalog.url), or set store.path to the store this "
                           "catalog indexes")
