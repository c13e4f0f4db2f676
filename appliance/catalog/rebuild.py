"""Rebuild the catalog's index from the store alone (the store is self-describing; the catalog is only an index).

`rebuild_from_store` re-creates every group the store has snapshots of (keeping the settings of groups the catalog
still knows; new ones get the configured defaults and the sources of their newest snapshot), then each group's
points and version index by replaying its snapshots oldest first and diffing each manifest against the previous one.
`reconcile` does the same for just the groups whose points differ from the store's (a daemon killed between a
snapshot's commit and its catalog record, or a prune between its deletes and its catalog update).

Invariants: a replay writes exactly what record_point would have written had each sync been recorded live (modulo
what counts as "changed": here any difference in type, size, mtime, content digest, mode, owner or link target);
an unreadable manifest becomes a damaged point that changes nothing in the index.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import delete
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.groups import SourceInput, create_group
from appliance.catalog.models import FileVersion, ProtectionGroup, RecoveryPoint, Source
from appliance.catalog.points import IndexChange, known_snapshots, record_point
from appliance.errors import TapelineError

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


def reconcile(catalog: Catalog, store) -> list[str]:
    """Rebuild the index of every catalog group whose points differ from the store's. Returns their names."""
    with catalog.session() as s:
        groups = [(g.id, g.name) for g in s.exec(select(ProtectionGroup))]
    fixed = []
    for group_id, name in groups:
        if known_snapshots(catalog, group_id) != {snap.id for snap in store.snapshots(name)}:
            log.warning("catalog and store disagree on group %s's points; re-indexing it from the store", name)
            rebuild_group(catalog, store, group_id, name)
            fixed.append(name)
    return fixed
