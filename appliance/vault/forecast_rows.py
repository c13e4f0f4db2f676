"""The forecast's catalog in memory: the rows that decide the coming weeks, and the catalog's operations on them
through the same decision functions the catalog's own paths use (media/pools.py, vault/policy.py, checks.py,
rotation.py, catalog/moves.py).

Why rows in memory and not a catalog copy: the decisions were the cheap part. Played through ORM sessions, even on
a SQLite copy in memory, a year of a big site took about 180 statements a simulated day, over a minute of CPU.

Invariants:
- Every decision is one of those functions; what is here only finds their rows. A finder may hand them more rows
  than the catalog's query would (each function checks each row itself), never fewer: the indexes below are kept
  from the rows' own values. One exception, by a rule of the pool code: a media set whose data expired is no
  longer offered as offsite-ready (only an open set is written, so an expired one never gets a later expiry).
- Pools, media sets and tape sets are plain copies of their columns (same names); cartridges are `CartridgeRow`s.
- A cartridge row records itself as changed whenever any of its fields is set (`Cartridge` columns, same names),
  and the indexes are brought up to date from the changed rows before any finder reads them: a decision that
  changes a row never leaves an index that hides it.
- The real catalog is only read, once, when the rows are loaded.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import datetime
from types import SimpleNamespace

from sortedcontainers import SortedList
from sqlalchemy import func, select as core_select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import IN_LIBRARY_LOCATIONS, Cartridge, MediaCase, MediaSet, Pool, TapeSet, Vault
from appliance.catalog.moves import apply_move
from appliance.catalog.tape_sets import DR_GROUP
from appliance.media import pools as pool_rules
from appliance.vault import checks, policy, rotation

CART_FIELDS = tuple(Cartridge.__table__.columns.keys())
OFFSITE = ("courier", "vault", "vaultretrieve", "courierretrieve")
SCRATCH_STATES = ("scratch", "blank")
EXPIRING_STATES = ("allocated", "full", "expired")  # what pools.expire looks at


class CartridgeRow:
    """A cartridge's columns in memory; setting any of them marks it changed in its `Rows`."""

    __slots__ = CART_FIELDS + ("_rows",)

    def __init__(self, rows: Rows, values: dict):
        object.__setattr__(self, "_rows", rows)
        for name in CART_FIELDS:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        self._rows.changed.add(self.id)


class Rows:
    """Pools, vaults, the media sets still holding data (or open) with their tape sets, and every cartridge."""

    def __init__(self, catalog: Catalog, now: datetime):
        self.changed: set[int] = set()
        live = (MediaSet.expires == None) | (MediaSet.expires > now) | MediaSet.id.in_(  # noqa: E711
            core_select(Cartridge.media_set_id))
        with catalog.read_engine.connect() as conn:
            def rows(query) -> list[SimpleNamespace]:
                return [SimpleNamespace(**r) for r in conn.execute(query).mappings()]
            self.pools = {p.id: p for p in rows(core_select(Pool.__table__))}
            self.vault_names = dict(conn.execute(core_select(Vault.id, Vault.name)).all())
            self.sets = {m.id: m for m in rows(core_select(MediaSet.__table__).where(live))}
            tape_sets = rows(core_select(TapeSet.__table__).where(TapeSet.media_set_id.in_(
                core_select(MediaSet.id).where(live))))
            self.next_set_id = (conn.execute(core_select(func.max(MediaSet.id))).scalar() or 0) + 1
            self.next_case_id = (conn.execute(core_select(func.max(MediaCase.id))).scalar() or 0) + 1
            self.carts = {r["id"]: CartridgeRow(self, r)
                          for r in conn.execute(core_select(Cartridge.__table__)).mappings()}
        self.tapes: dict[int, list[TapeSet]] = defaultdict(list)
        for ts in tape_sets:
            self.tapes[ts.media_set_id].append(ts)
        self.ok_tapes = [ts for ts in tape_sets if ts.state == "ok"]
        self.open_ids = {m.id for m in self.sets.values() if m.closed is None}
        self.unexpired: dict[int, set[int]] = defaultdict(set)  # pool id -> its media sets that may still leave
        for m in self.sets.values():
            self.unexpired[m.pool_id].add(m.id)
        # the indexes: cartridges by media set, scratch tiers in pools.scratch_order, by expiry, in a vault, and
        # counted by what the day's figures look at
        self.by_set: dict[int, set[int]] = defaultdict(set)
        self.tiers: dict[tuple[str, int | None], SortedList] = defaultdict(SortedList)
        self.expiring = SortedList()
        self.vaulted: set[int] = set()
        self.counts: Counter = Counter()
        self.keys: dict[int, tuple] = {}
        for cart in self.carts.values():
            self._index(cart)
        self.changed.clear()

    # --- indexes --------------------------------------------------------------------------------------------------

    def _index(self, c: CartridgeRow) -> None:
        tier = ((c.state, c.pool_id), (*pool_rules.scratch_order(c), c.id)) if c.state in SCRATCH_STATES else None
        expiry = (c.expires, c.id) if c.state in EXPIRING_STATES and c.expires is not None else None
        count = (c.pool_id, c.library_id, c.state, c.location_kind, c.rotation, c.write_protected)
        if c.media_set_id is not None:
            self.by_set[c.media_set_id].add(c.id)
        if tier:
            self.tiers[tier[0]].add(tier[1])
        if expiry:
            self.expiring.add(expiry)
        if c.rotation == "vault":
            self.vaulted.add(c.id)
        self.counts[count] += 1
        self.keys[c.id] = (c.media_set_id, tier, expiry, count)

    def _unindex(self, cart_id: int) -> None:
        media_set_id, tier, expiry, count = self.keys.pop(cart_id)
        if media_set_id is not None:
            self.by_set[media_set_id].discard(cart_id)
        if tier:
            self.tiers[tier[0]].remove(tier[1])
        if expiry:
            self.expiring.remove(expiry)
        self.vaulted.discard(cart_id)
        self.counts[count] -= 1

    def sync(self) -> None:
        """The indexes, from the rows changed since."""
        while self.changed:
            cart_id = self.changed.pop()
            self._unindex(cart_id)
            self._index(self.carts[cart_id])

    def of_set(self, media_set_id: int) -> list[CartridgeRow]:
        self.sync()
        return [self.carts[i] for i in self.by_set.get(media_set_id, ())]

    # --- media sets and writes (media/pools.py) ---------------------------------------------------------------------

    def open_set(self, pool_id: int) -> MediaSet | None:
        """The pool's open media set (its newest, as pools._open_set)."""
        self.open_ids = {i for i in self.open_ids if self.sets[i].closed is None}
        return max((self.sets[i] for i in self.open_ids if self.sets[i].pool_id == pool_id), key=lambda m: m.id,
                   default=None)

    def close(self, ms: MediaSet, when: datetime) -> None:
        pool_rules.close_rows(ms, self.of_set(ms.id), self.tapes.get(ms.id, ()), when)

    def media_set_for_write(self, pool: Pool, now: datetime) -> MediaSet:
        current = self.open_set(pool.id)
        if current is not None:
            close_at = pool_rules.closes_before_write(pool, current, now)
            if close_at is None:
                return current
            self.close(current, close_at)
        last = pool_rules.generation_start((m.created, ts.group_name) for m in self.sets.values()
                                           if m.pool_id == pool.id for ts in self.tapes.get(m.id, ())) \
            if pool.gfs else None
        fresh = SimpleNamespace(**pool_rules.new_media_set(pool, last, now).model_dump())
        fresh.id, self.next_set_id = self.next_set_id, self.next_set_id + 1
        self.sets[fresh.id] = fresh
        self.open_ids.add(fresh.id)
        self.unexpired[pool.id].add(fresh.id)
        return fresh

    def next_cartridge(self, pool: Pool, ms: MediaSet, now: datetime) -> CartridgeRow | None:
        own = sorted((c for c in self.of_set(ms.id) if c.state == "allocated"), key=lambda c: -(c.sequence or 0))

        def tier(state: str, own_pool: bool):
            return (self.carts[entry[-1]] for entry in self.tiers.get((state, pool.id if own_pool else None), ()))
        return pool_rules.choose_cartridge(pool, ms, own, tier, frozenset(), now)

    def join(self, cart: CartridgeRow, ms: MediaSet, now: datetime) -> None:
        if cart.media_set_id != ms.id:
            pool_rules.join_rows(cart, ms, [c.sequence for c in self.of_set(ms.id)], now)

    def add_tape_set(self, ms: MediaSet, group: str, kind: str, when: datetime, nbytes: int, verified: bool) -> None:
        """The set as the job leaves it (tape_sets.create_set, then finish_set), stamped (pools.stamp_set)."""
        ts = SimpleNamespace(uuid=str(uuid.uuid4()), media_set_id=ms.id, group_name=group, kind=kind, created=when,
                             state="ok", bytes=nbytes, verified=when if verified else None, expires=ms.expires)
        self.tapes[ms.id].append(ts)
        self.ok_tapes.append(ts)
        close_at = pool_rules.stamp_rows(ms, self.pools[ms.pool_id], when)
        if close_at is not None:
            self.close(ms, close_at)

    def expire(self, now: datetime) -> None:
        self.sync()
        self.ok_tapes = [ts for ts in self.ok_tapes if ts.state == "ok"]
        pool_rules.expire_rows(
            self.pools, [self.sets[i] for i in self.open_ids],
            lambda: [(ts, self.sets[ts.media_set_id]) for ts in self.ok_tapes],
            lambda: self._expiring(now), now, self.close)

    def _expiring(self, now: datetime) -> list[CartridgeRow]:
        self.sync()
        return [self.carts[i] for _, i in self.expiring.irange(maximum=(now, float("inf")))]

    # --- rotation (vault/policy.py, checks.py, rotation.py) ---------------------------------------------------------

    def holds_backups(self, ms: MediaSet) -> bool:
        """Whether the media set holds a good set of a protection group (not only the catalog backup)."""
        return any(ts.state == "ok" and ts.group_name != DR_GROUP for ts in self.tapes.get(ms.id, ()))

    def offsite_ready(self, now: datetime, pool: Pool | None = None) -> list[CartridgeRow]:
        rotating = {p.id: p for p in self.pools.values() if p.vault_id is not None and (pool is None or p is pool)}
        sets = []
        for pool_id in rotating:  # a media set whose data expired never leaves again: it is not looked at
            live = {i for i in self.unexpired[pool_id] if self.sets[i].expires is None or self.sets[i].expires > now}
            self.unexpired[pool_id] = live
            sets += [self.sets[i] for i in live]
        counts: dict[int, dict[str, int]] = {}
        for m in sets:
            counts[m.id] = kinds = {}
            for ts in self.tapes.get(m.id, ()):
                kind = policy.set_kind(ts.state, ts.verified is not None)
                kinds[kind] = kinds.get(kind, 0) + 1
        ready = policy.ready_rows(rotating, sets, counts, now)
        return policy.leaving(ready, [c for m in ready for c in self.of_set(m.id)])

    def close_for_export(self, pool: Pool, ms: MediaSet, now: datetime) -> None:
        """policy.close_for_export: no job runs here, but a set still being written keeps it open."""
        pool_rules.refuse_busy(ms, pool, [], any(ts.state == "writing" for ts in self.tapes.get(ms.id, ())))
        if ms.closed is None:
            self.close(ms, now)

    def new_case(self) -> int:
        """A case for one pool's cartridges of one export (vault/export.py: `POOL-YYYYMMDD-JOB`)."""
        self.next_case_id += 1
        return self.next_case_id - 1

    def move(self, cart: CartridgeRow, to: str, vault_id: int | None = None,
             place: tuple[str, int | None] | None = None) -> None:
        apply_move(cart, to, vault_id=vault_id, place=place, vault_name=self.vault_names.get)

    def recall(self, now: datetime) -> list[CartridgeRow]:
        """rotation.recall without names: the due ones and this round's sampled checks, to vault-retrieve."""
        self.sync()
        vaulted = [self.carts[i] for i in self.vaulted]
        rows = [(c.id, c.pool_id, c.media_set_id, c.case_id, c.state, c.expires) for c in vaulted]
        asked = policy.sets_asked(rows, self.pools)
        sets = {i: (m.expires, m.closed or m.created) for i, m in self.sets.items() if i in asked}
        due = sorted((self.carts[i] for i in policy.due_ids(rows, self.pools, sets, now)), key=lambda c: c.barcode)
        sampled = []
        for p in sorted(self.pools.values(), key=lambda p: p.id):
            if p.check_sample and p.check_every_seconds is not None:
                last = max((c.check_requested for c in self.carts.values()
                            if c.pool_id == p.id and c.check_requested is not None), default=None)
                if checks.round_due(p, last, now):
                    sampled += checks.sample(p, vaulted, now)
        chosen = rotation.choose_recalls(due, sampled, now)
        for cart, _ in chosen.values():
            self.move(cart, "vaultretrieve")
        return [cart for cart, _ in chosen.values()]

    def snapshot(self) -> dict[int, tuple[int, int, int]]:
        """Pool id -> (its cartridges in the library with data, scratch it may write, offsite)."""
        self.sync()
        held, away, free = Counter(), Counter(), Counter()
        for (pool_id, library_id, state, kind, rotation_state, protected), n in self.counts.items():
            if not n:
                continue
            if kind in IN_LIBRARY_LOCATIONS and state in ("allocated", "full", "expired"):
                held[pool_id] += n
            if rotation_state in OFFSITE:
                away[pool_id] += n
            if state in SCRATCH_STATES and kind in pool_rules.IN_LIBRARY and not protected:
                free[pool_id, library_id] += n
        return {p.id: (held[p.id], free[p.id, p.library_id] + free[None, p.library_id], away[p.id])
                for p in self.pools.values()}

