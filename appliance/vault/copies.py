"""Which recovery points a set of cartridges holds the only copy of: what `vault recall` refuses to take away
without --force and what the dry run says a policy change would lose.

A point is held by a tape set (state ok, not expired) whose parts lie on the cartridges; its other copies are the
replica's point (the same store snapshot, while the replica keeps it) and any other good tape set of the same
snapshot whose every part lies elsewhere. A direct (D2T) set is a point of its own: only another copy of that set
would count, and Tapeline writes none. Offsite only: the replica and tapes on site do not count (a recall asks
whether the vault would still hold the point).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlmodel import Session, select

from appliance.catalog.models import Cartridge, RecoveryPoint, TapeSet, TapeSetPart

OFFSITE = ("courier", "vault")


def _good(ts: TapeSet, now: datetime) -> bool:
    return ts.state == "ok" and (ts.expires is None or ts.expires > now)


def only_copies(s: Session, cartridge_ids: set[int], now: datetime, offsite_only: bool = False,
                gone_sets: set[int] | None = None) -> list[dict]:
    """The points held on `cartridge_ids` that no other copy holds (offsite, with `offsite_only`), oldest first.
    `gone_sets`: tape sets that count as gone too (the dry run's freed sets on other cartridges)."""
    if not cartridge_ids:
        return []
    gone_sets = gone_sets or set()
    rows = s.exec(select(TapeSet, TapeSetPart.cartridge_id).join(TapeSetPart, TapeSetPart.set_id == TapeSet.id)
                  .where(TapeSetPart.cartridge_id.in_(cartridge_ids))).all()
    held = {ts.id: ts for ts, _ in rows if _good(ts, now)}
    if not held:
        return []
    snapshots = {ts.snapshot_id for ts in held.values() if ts.snapshot_id}
    in_replica = set() if offsite_only or not snapshots else set(s.exec(
        select(RecoveryPoint.snapshot_id).where(RecoveryPoint.snapshot_id.in_(snapshots))).all())
    others = s.exec(select(TapeSet).where(TapeSet.snapshot_id.in_(snapshots), TapeSet.id.notin_(held))).all() \
        if snapshots else []
    others = [ts for ts in others if _good(ts, now) and ts.id not in gone_sets]
    parts: dict[int, list[int]] = defaultdict(list)
    for set_id, cart_id in s.exec(select(TapeSetPart.set_id, TapeSetPart.cartridge_id)
                                  .where(TapeSetPart.set_id.in_([ts.id for ts in others]))).all() if others else []:
        parts[set_id].append(cart_id)
    rotation = dict(s.exec(select(Cartridge.id, Cartridge.rotation)
                           .where(Cartridge.id.in_({c for cs in parts.values() for c in cs}))).all()) if parts else {}
    elsewhere = set(in_replica)
    for ts in others:
        carts = parts.get(ts.id, [])
        if carts and not cartridge_ids & set(carts) and (
                not offsite_only or all(rotation.get(c) in OFFSITE for c in carts)):
            elsewhere.add(ts.snapshot_id)
    on = defaultdict(set)
    for ts, cart_id in rows:
        on[ts.id].add(cart_id)
    barcodes = dict(s.exec(select(Cartridge.id, Cartridge.barcode)
                           .where(Cartridge.id.in_({c for cs in on.values() for c in cs}))).all())
    lost = [ts for ts in held.values() if not (ts.snapshot_id and ts.snapshot_id in elsewhere)]
    return [{"group": ts.group_name, "point": ts.point_id, "snapshot": ts.snapshot_id, "set": ts.uuid,
             "kind": ts.kind, "time": ts.created, "cartridges": sorted(barcodes[c] for c in on[ts.id])}
            for ts in sorted(lost, key=lambda t: (t.created, t.id))]


def describe(points: list[dict], limit: int = 5) -> str:
    """"docs point 12 (2026-03-02 09:00, set 1a2b3c4d), ..." for a one-line message."""
    shown = [f"{p['group']} {'point ' + str(p['point']) if p['point'] else p['kind'] + ' set'} "
             f"({p['time'].astimezone().strftime('%Y-%m-%d %H:%M')}, set {p['set'][:8]})" for p in points[:limit]]
    more = f" and {len(points) - limit} more" if len(points) > limit else ""
    return ", ".join(shown) + more
