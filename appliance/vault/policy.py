"""Rotation policies: which cartridges are ready to go offsite, and which are due back from the vault.

A pool rotates when it names a vault (`Pool.vault_id`); its policy is the pool's `offsite_copies`, `recall` and
`gfs` (docs/vault.md says what each means to an operator).

Invariants:
- Offsite-ready: a cartridge of a closed media set of a rotating pool whose every good tape set was verified (at
  least one), none being written (a set "writing" in it, or a running tape backup of its pool while it is open),
  data not yet expired, and the cartridge still on site (mountable or not mountable). A set that never verifies
  never leaves: verifying it (`tapeline media verify`) is the fix, never a skip here.
- Due back: a vaulted cartridge (rotation "vault") with nothing unexpired on it (`pools.unexpired_data`), at the
  pool's recall: "expired" recalls it as soon as its data expired; a calendar event recalls it at the first event
  after its data expired (the courier's run). A pool with `offsite_copies` N > 1 keeps its N newest vaulted media
  sets in the vault even past their expiry, so the vault always holds N generations.
- Both are pure reads over the catalog at `now`: the forecast runs them on a simulated clock, so neither looks at
  the wall clock, the library or a job engine.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import get_pool
from appliance.catalog.models import Cartridge, MediaSet, Pool, TapeSet
from appliance.media import pools as pool_rules

ON_SITE = ("mountable", "notmountable")
WRITERS = ("tape-backup",)  # job kinds that write into a pool's open media set (params["pool"] names it)


def _pools(s, pool: str | None) -> dict[int, Pool]:
    q = select(Pool).where(Pool.vault_id != None)  # noqa: E711
    if pool is not None:
        q = q.where(Pool.name == pool)
    return {p.id: p for p in s.exec(q).all()}


def ready_sets(catalog: Catalog, now: datetime, pool: str | None = None) -> list[MediaSet]:
    """The media sets of rotating pools that may leave: closed, verified, none of their sets still written,
    unexpired."""
    if pool is not None:
        get_pool(catalog, pool)  # an unknown name is an error naming the known ones, not an empty list
    with catalog.reader() as s:
        rotating = _pools(s, pool)
        if not rotating:
            return []
        sets = s.exec(select(MediaSet).where(MediaSet.pool_id.in_(rotating), MediaSet.closed != None,  # noqa: E711
                                             MediaSet.closed <= now)).all()
        sets = [m for m in sets if m.expires is None or m.expires > now]
        if not sets:
            return []
        counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        rows = s.exec(select(TapeSet.media_set_id, TapeSet.state, TapeSet.verified != None, func.count())  # noqa: E711
                      .where(TapeSet.media_set_id.in_([m.id for m in sets]))
                      .group_by(TapeSet.media_set_id, TapeSet.state, TapeSet.verified != None)).all()  # noqa: E711
        for media_set_id, state, verified, n in rows:
            key = "writing" if state == "writing" else ("verified" if verified else "unverified") \
                if state == "ok" else "other"
            counts[media_set_id][key] += n
    return [m for m in sets if counts[m.id]["verified"] and not counts[m.id]["unverified"]
            and not counts[m.id]["writing"]]


def offsite_ready(catalog: Catalog, now: datetime, pool: str | None = None) -> list[Cartridge]:
    """Cartridges to send offsite now (of `pool`, or of every rotating pool), by pool, media set and sequence."""
    sets = ready_sets(catalog, now, pool)
    if not sets:
        return []
    with catalog.reader() as s:
        return list(s.exec(select(Cartridge).where(Cartridge.media_set_id.in_([m.id for m in sets]),
                                                   Cartridge.rotation.in_(ON_SITE))
                           .order_by(Cartridge.pool_id, Cartridge.media_set_id, Cartridge.sequence)).all())


def due_back(catalog: Catalog, now: datetime, pool: str | None = None) -> list[Cartridge]:
    """Vaulted cartridges whose recall is due at `now` (of `pool`, or of every pool), by barcode."""
    if pool is not None:
        get_pool(catalog, pool)
    with catalog.reader() as s:
        q = select(Cartridge).where(Cartridge.rotation == "vault")
        if pool is not None:
            q = q.join(Pool, Pool.id == Cartridge.pool_id).where(Pool.name == pool)
        vaulted = s.exec(q.order_by(Cartridge.barcode)).all()
        pools = {p.id: p for p in s.exec(select(Pool)).all()}
        sets = {m.id: m for m in s.exec(select(MediaSet).where(
            MediaSet.id.in_({c.media_set_id for c in vaulted if c.media_set_id is not None}))).all()}
    kept = _kept_generations(vaulted, pools, sets)
    due = []
    for cart in vaulted:
        if pool_rules.unexpired_data(cart, now) or cart.media_set_id in kept:
            continue
        rule = pools[cart.pool_id].recall if cart.pool_id in pools else "expired"
        expired_at = cart.expires or (sets[cart.media_set_id].expires if cart.media_set_id in sets else None)
        if rule == "expired" or expired_at is None or pool_rules.next_event(rule, expired_at) <= now:
            due.append(cart)
    return due


def _kept_generations(vaulted: list[Cartridge], pools: dict[int, Pool], sets: dict[int, MediaSet]) -> set[int]:
    """The media sets a pool with offsite_copies N > 1 keeps in the vault: its N newest there."""
    by_pool: dict[int, set[int]] = defaultdict(set)
    for cart in vaulted:
        if cart.media_set_id in sets:
            by_pool[cart.pool_id].add(cart.media_set_id)
    kept: set[int] = set()
    for pool_id, ids in by_pool.items():
        copies = pools[pool_id].offsite_copies if pool_id in pools else 1
        if copies > 1:
            newest = sorted(ids, key=lambda i: (sets[i].closed or sets[i].created, i), reverse=True)
            kept.update(newest[:copies])
    return kept


def close_for_export(catalog: Catalog, media_set: MediaSet, now: datetime) -> MediaSet:
    """Close the open media set of a `continue` pool so it can go offsite; refused while a job writes to it (the
    next write then opens a new set, as any closed set makes it)."""
    return pool_rules.close_idle_set(catalog, media_set.id, now, WRITERS)
