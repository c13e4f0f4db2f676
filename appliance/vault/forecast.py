"""The rotation forecast (`tapeline vault forecast [--weeks N]`): the coming weeks day by day, by running the real
policy code on a simulated clock over a copy of the catalog.

How: the rows that decide the future (libraries, vaults, cases, pools, media sets still holding data, their tape
sets, cartridges, groups and their tape policies) are copied into a SQLite catalog in memory. Then, day by day:
each group's tape schedule fires as the scheduler fires it (`pools.next_event` over the same calendar events); each
backup is written as the tape job writes it, through media/pools.py (media_set_for_write, next_cartridge,
join_media_set, record_written, cartridge_full, stamp_set) with the size of the group's recent sets of that kind;
at the end of the day the expiry runs (`pools.expire`), the export (as Export._prepare: the catalog backup written
into each pool it sends from, a set of the reserved group through the same pool code, so with `always` allocation
it takes a cartridge of its own; `policy.close_for_export`, then `policy.offsite_ready`: the cartridges go to the
courier, and are in the vault the next day) and the recall (`rotation.recall`: what `policy.due_back` says and the
sampled read-back checks of `checks.check_due`; vault-retrieve, then a day with the courier, then back in the
library, where a sampled one is read back and recorded as checked). Nothing here decides when a cartridge leaves,
returns or is reused: the policy code does, so the forecast says what the appliance will do.

Assumptions (docs/vault.md): `tapeline vault export` and `tapeline vault recall` run every day and the courier
takes a day each way; a cartridge that comes back is put into the library the day it arrives; a cartridge holds
what the library's fullest one holds of its media set (else an LTO-8's native capacity); every backup verifies
when its pool verifies; nothing fails. The real catalog is only read.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import create_engine, func, insert, select as core_select, text, update
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import cartridges_in
from appliance.catalog.tape_sets import DR_GROUP
from appliance.catalog.models import (IN_LIBRARY_LOCATIONS, Cartridge, Library, MediaCase, MediaSet, Pool,
                                      ProtectionGroup, TapePolicy, TapeSet, TapeSetPart, Vault)
from appliance.catalog.moves import move
from appliance.errors import Conflict, UsageError
from appliance.media import pools as pool_rules
from appliance.media.format import BLOCK_SIZE
from appliance.ops.plan import LTO
from appliance.vault import checks, policy, rotation

MAX_WEEKS = 104
DEFAULT_CAPACITY = LTO[8][0]
RECENT_SETS = 5  # a group's next set is as big as the mean of its last few of the same kind
OPERATOR = "forecast"
Progress = Callable[[int, int, str], None]
OFFSITE = ("courier", "vault", "vaultretrieve", "courierretrieve")


@dataclass
class PoolDay:
    pool: str
    in_library: int = 0  # cartridges of the pool in the library holding data
    scratch: int = 0  # cartridges in the library the pool may write next
    offsite: int = 0  # in a vault or on the way
    written: int = 0  # tape sets written that day
    sent: list[str] = field(default_factory=list)  # handed to the courier that day
    back: list[str] = field(default_factory=list)  # arrived back on site that day
    short: int = 0  # backups that found no cartridge to write (the job would wait for one)

    def to_json(self) -> dict:
        return {"pool": self.pool, "in_library": self.in_library, "scratch": self.scratch, "offsite": self.offsite,
                "written": self.written, "sent": self.sent, "back": self.back, "short": self.short}


@dataclass
class Forecast:
    start: datetime
    weeks: int
    days: list[tuple[str, list[PoolDay]]]  # (local date, one entry per pool)
    scratch_out: dict[str, str | None]  # pool -> the first day a backup finds no cartridge, None: it never does
    assumptions: tuple[str, ...]

    def to_json(self) -> dict:
        return {"start": self.start.isoformat(), "weeks": self.weeks, "scratch_runs_out": self.scratch_out,
                "days": [{"day": day, "pools": [p.to_json() for p in pools]} for day, pools in self.days],
                "assumptions": list(self.assumptions)}


ASSUMPTIONS = ("`tapeline vault export` and `tapeline vault recall` run every day; the courier takes a day each way",
               "a returning cartridge goes into the library the day it arrives; one recalled for its sampled "
               "read-back check is read (and reads back well) that day and leaves again with the next export",
               "each export writes the catalog backup into each pool it sends from",
               "each backup is as big as the group's recent ones of its kind, verifies when its pool verifies, and "
               "nothing fails")


# The policy code asks every simulated day for cartridges by state, rotation and expiry, and for tape sets by state:
# columns the catalog leaves unindexed (its own queries on them run once per command), indexed in the copy.
SIM_INDEXES = ("cartridge (state, pool_id)", "cartridge (rotation)", "cartridge (expires)", "tape_set (state)")


def _memory_catalog() -> Catalog:
    """A catalog in memory: one connection (StaticPool), so every session of the simulation sees the same rows."""
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:  # DDL of this copy only: an Index object would join the catalog's own metadata
        for i, columns in enumerate(SIM_INDEXES):
            conn.execute(text(f"CREATE INDEX ix_forecast_{i} ON {columns}"))
    return Catalog(engine)


def seed(catalog: Catalog, now: datetime) -> Catalog:
    """A copy in memory of what decides the coming weeks: every cartridge, every media set still holding data (or
    open) and its tape sets, pools, vaults, cases, libraries, groups with their tape policies."""
    sim = _memory_catalog()
    with catalog.read_engine.connect() as src, sim.engine.begin() as dst:
        live = core_select(MediaSet.__table__).where((MediaSet.expires == None) | (MediaSet.expires > now)  # noqa
                                                     | MediaSet.id.in_(core_select(Cartridge.media_set_id)))
        live_ids = core_select(live.subquery().c.id)
        for model, query in ((Library, None), (Vault, None), (MediaCase, None), (Pool, None), (ProtectionGroup, None),
                             (TapePolicy, None), (MediaSet, live),
                             (TapeSet, core_select(TapeSet.__table__).where(TapeSet.media_set_id.in_(live_ids))),
                             (Cartridge, None)):
            rows = [dict(r) for r in src.execute(query if query is not None
                                                 else core_select(model.__table__)).mappings()]
            if rows:
                dst.execute(insert(model.__table__), rows)
    return sim


def _set_sizes(catalog: Catalog) -> dict[tuple[str, str], int]:
    """(group, kind) -> the mean size of its recent good sets of that kind (a full's stands in for a first one)."""
    recent: dict[tuple[str, str], list[int]] = defaultdict(list)
    with catalog.reader() as s:
        for group, kind, nbytes in s.exec(select(TapeSet.group_name, TapeSet.kind, TapeSet.bytes)
                                          .where(TapeSet.state.in_(("ok", "expired")))
                                          .order_by(TapeSet.id.desc())).all():
            if len(recent[(group, kind)]) < RECENT_SETS:
                recent[(group, kind)].append(nbytes)
    return {key: sum(v) // len(v) for key, v in recent.items()}


def _on_cartridges(catalog: Catalog) -> tuple[dict[int, int], dict[int, int]]:
    """What the cartridges hold of their current media set (cartridge id -> bytes, from the blocks of the parts
    on them; `bytes_written` counts a cartridge's whole life), and what one cartridge holds per library: the most a
    full one took (else an LTO-8's native capacity)."""
    with catalog.reader() as s:
        rows = s.exec(select(Cartridge.id, Cartridge.library_id, Cartridge.state, func.sum(TapeSetPart.blocks))
                      .join(TapeSetPart, TapeSetPart.cartridge_id == Cartridge.id)
                      .join(TapeSet, TapeSet.id == TapeSetPart.set_id)
                      .where(TapeSet.media_set_id == Cartridge.media_set_id,
                             Cartridge.state.in_(("allocated", "full")))
                      .group_by(Cartridge.id, Cartridge.library_id, Cartridge.state)).all()
    held = {cart_id: blocks * BLOCK_SIZE for cart_id, _, _, blocks in rows}
    most: dict[int, int] = {}
    for cart_id, library_id, state, _ in rows:
        if state == "full":
            most[library_id] = max(most.get(library_id, 0), held[cart_id])
    return held, most


def _capacities(sim: Catalog, most: dict[int, int]) -> dict[int, int]:
    """Pool id -> what one of its cartridges holds."""
    with sim.reader() as s:
        return {p.id: most.get(p.library_id) or DEFAULT_CAPACITY for p in s.exec(select(Pool)).all()}


def _events(sim: Catalog, start: datetime, end: datetime) -> list[tuple[datetime, str, str, str]]:
    """(time, group, pool, kind) of every tape backup the groups' schedules fire in (start, end]; a full and an
    incremental due at once make one full."""
    out = []
    with sim.reader() as s:
        rows = s.exec(select(TapePolicy, ProtectionGroup.name, Pool.name)
                      .join(ProtectionGroup, ProtectionGroup.id == TapePolicy.group_id)
                      .join(Pool, Pool.id == TapePolicy.pool_id)).all()
    for tp, group, pool in rows:
        fires: dict[datetime, str] = {}
        for kind, event in (("incremental", tp.incremental), ("full", tp.full)):
            t = start
            while event:
                t = pool_rules.next_event(event, t)
                if t > end:
                    break
                fires[t] = kind
        out += [(t, group, pool, kind) for t, kind in fires.items()]
    return sorted(out)


def _write(sim: Catalog, pool: Pool, group: str, kind: str, when: datetime, nbytes: int, capacity: int,
           held: dict[int, int]) -> bool:
    """One backup written as the tape job writes it; False when no cartridge could take it. `held`: what each
    cartridge holds of its current media set (kept up to date here)."""
    ms = pool_rules.media_set_for_write(sim, pool, when)
    remaining, first = nbytes, True
    while first or remaining > 0:
        first = False
        cart = pool_rules.next_cartridge(sim, pool, ms, now=when)
        if cart is None:
            return False
        if cart.media_set_id != ms.id:
            held[cart.id] = 0
        cart = pool_rules.join_media_set(sim, cart.barcode, ms, when)
        put = min(max(capacity - held.get(cart.id, 0), 0), remaining)
        held[cart.id] = held.get(cart.id, 0) + put
        remaining -= put
        _written(sim, cart.id, put, when, full=remaining > 0 or held[cart.id] >= capacity)
    with sim.session() as s:  # the set as the job leaves it (tape_sets.create_set, then finish_set)
        s.add(TapeSet(uuid=str(uuid.uuid4()), media_set_id=ms.id, group_name=group, kind=kind, created=when,
                      state="ok", bytes=nbytes, verified=when if pool.verify else None))
    pool_rules.stamp_set(sim, ms.id, when)
    return True


def _written(sim: Catalog, cart_id: int, nbytes: int, when: datetime, full: bool) -> None:
    """The job's bookkeeping after a part, in one statement: what pools.record_written (new sets go after this
    one and its index) and, at the end of the medium, pools.cartridge_full record. They decide nothing, and the
    forecast makes a few thousand of them."""
    with sim.session() as s:
        s.execute(update(Cartridge).where(Cartridge.id == cart_id).values(
            next_file=Cartridge.next_file + 2, bytes_written=Cartridge.bytes_written + nbytes, last_used=when,
            **({"state": "full"} if full else {})))


def _steps(sim: Catalog, steps: list[tuple[datetime, int, str]]) -> list[str]:
    """The moves (time, cartridge id, rotation state) of one day, in one transaction; the barcodes moved."""
    moved = []
    if not steps:
        return moved
    with sim.session() as s:
        carts = _rows(s, {cart_id for _, cart_id, _ in steps})
        for when, cart_id, to in steps:
            cart = carts[cart_id]
            place = ("slot", cart.location_number) if to == "mountable" else None
            move(s, cart, to, when, operator=OPERATOR, place=place)
            moved.append(cart.barcode)
    return moved


def _export(sim: Catalog, when: datetime, write_backup: Callable[[Pool], bool]) -> list[Cartridge]:
    """What `tapeline vault export` does (vault/export.py Export._prepare, then its batches): for each rotating pool
    with news (an open set holding backups, in a pool whose open set the export closes: policy.closes_for_export)
    or offsite-ready cartridges, the catalog backup written into the pool (`write_backup`: a set of the reserved
    group, through the same allocation as any write: with `always`, a media set and a cartridge of its own), then
    the open set closed; then the offsite-ready cartridges to the courier."""
    with sim.reader() as s:
        rotating = list(s.exec(select(Pool).where(Pool.vault_id != None).order_by(Pool.name)).all())  # noqa: E711
        open_sets = {ms.pool_id: ms for ms in s.exec(select(MediaSet).where(MediaSet.closed == None)  # noqa: E711
                                                     .order_by(MediaSet.id)).all()}
        holding = set(s.exec(select(TapeSet.media_set_id).where(TapeSet.state == "ok",
                                                                TapeSet.group_name != DR_GROUP)).all())
    for pool in rotating:
        open_set = open_sets.get(pool.id)
        news = open_set is not None and policy.closes_for_export(pool) and open_set.id in holding
        if not news and not policy.offsite_ready(sim, when, pool.name):
            continue
        write_backup(pool)
        with sim.reader() as s:
            open_set = s.exec(select(MediaSet).where(MediaSet.pool_id == pool.id, MediaSet.closed == None)  # noqa
                              .order_by(MediaSet.id.desc())).first()
        if policy.closes_for_export(pool) and open_set is not None:
            try:
                policy.close_for_export(sim, open_set, when)
            except Conflict:  # a set still written: it leaves with a later export, as the real one does
                pass
    ready = policy.offsite_ready(sim, when)
    if ready:
        with sim.session() as s:
            vaults = dict(s.exec(select(Pool.id, Pool.vault_id)).all())
            rows = _rows(s, {cart.id for cart in ready})
            for cart in ready:
                row = rows[cart.id]
                move(s, row, "courier", when, operator=OPERATOR, vault_id=vaults.get(row.pool_id))
    return ready


def _by_barcode(sim: Catalog, barcodes: list[str]) -> list[Cartridge]:
    with sim.reader() as s:
        return cartridges_in(s, Cartridge.barcode, barcodes)


def _rows(s, ids: set[int]) -> dict[int, Cartridge]:
    """Cartridges by id, in one query a few hundred."""
    return {c.id: c for c in cartridges_in(s, Cartridge.id, ids)}


def _snapshot(sim: Catalog, pools: list[Pool]) -> dict[int, tuple[int, int, int]]:
    """Pool id -> (in the library with data, scratch it may write, offsite)."""
    held, away, free = Counter(), Counter(), Counter()
    with sim.reader() as s:  # one pass over the cartridges, counted by what the three figures look at
        for pool_id, library_id, state, kind, rotation, protected, n in s.exec(select(
                Cartridge.pool_id, Cartridge.library_id, Cartridge.state, Cartridge.location_kind, Cartridge.rotation,
                Cartridge.write_protected, func.count()).group_by(
                Cartridge.pool_id, Cartridge.library_id, Cartridge.state, Cartridge.location_kind, Cartridge.rotation,
                Cartridge.write_protected)).all():
            if kind in IN_LIBRARY_LOCATIONS and state in ("allocated", "full", "expired"):
                held[pool_id] += n
            if rotation in OFFSITE:
                away[pool_id] += n
            if state in ("scratch", "blank") and kind in pool_rules.IN_LIBRARY and not protected:
                free[pool_id, library_id] += n
    return {p.id: (held[p.id], free[p.id, p.library_id] + free[None, p.library_id], away[p.id]) for p in pools}


def check_weeks(weeks: int) -> int:
    if not 1 <= weeks <= MAX_WEEKS:
        raise UsageError(f"a forecast of {weeks} weeks is out of range", f"give --weeks from 1 to {MAX_WEEKS}")
    return weeks


def forecast(catalog: Catalog, now: datetime, weeks: int = 4, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> Forecast | None:
    """The coming `weeks`; `progress(days done, days, message)` after each simulated day; None when `cancel` was
    set (checked between days)."""
    check_weeks(weeks)
    sim = seed(catalog, now)
    try:
        return _run(sim, catalog, now, weeks, progress or (lambda done, total, message: None),
                    cancel or threading.Event())
    finally:
        sim.engine.dispose()


def _run(sim: Catalog, catalog: Catalog, now: datetime, weeks: int, progress: Progress,
         cancel: threading.Event) -> Forecast | None:
    sizes = _set_sizes(catalog)
    held, most = _on_cartridges(catalog)
    capacity = _capacities(sim, most)
    with sim.reader() as s:
        pools = list(s.exec(select(Pool).order_by(Pool.name)).all())
    by_name = {p.name: p for p in pools}
    scratch_out: dict[str, str | None] = {p.name: None for p in pools}
    days, pending = [], []  # pending: (when, cartridge id, next state) of moves that take a day
    checking: set[int] = set()  # cartridges recalled for their sampled read-back check, on their way back
    local = now.astimezone()
    events = _events(sim, local, local + timedelta(days=weeks * 7))  # the schedules do not change meanwhile
    for i in range(weeks * 7):
        if cancel.is_set():
            return None
        start, end = local + timedelta(days=i), local + timedelta(days=i + 1)
        day = start.date().isoformat()
        today = {p.id: PoolDay(p.name) for p in pools}
        due_moves = sorted(m for m in pending if m[0] <= end)
        pending = [m for m in pending if m[0] > end]
        steps = [(when, cart_id, to) for when, cart_id, to, _ in due_moves]
        steps += [(when, cart_id, "mountable") for when, cart_id, to, _ in due_moves if to == "onsiteretrieve"]
        for barcode, (when, cart_id, to, pool_id) in zip(_steps(sim, steps), due_moves):
            if to == "onsiteretrieve" and pool_id in today:
                today[pool_id].back.append(barcode)
            if to == "onsiteretrieve" and cart_id in checking:  # the import queues its verify: it reads back well
                checking.discard(cart_id)
                checks.record_check(sim, barcode, when, None)
        while events and events[0][0] <= end:
            when, group, pool_name, kind = events.pop(0)
            pool = by_name[pool_name]
            nbytes = sizes.get((group, kind), sizes.get((group, "full"), 0))
            if _write(sim, pool, group, kind, when, nbytes, capacity[pool.id], held):
                today[pool.id].written += 1
            else:
                today[pool.id].short += 1
                scratch_out[pool.name] = scratch_out[pool.name] or day
        pool_rules.expire(sim, end)
        def catalog_backup(pool: Pool, when=end) -> bool:
            if _write(sim, pool, DR_GROUP, "full", when, sizes.get((DR_GROUP, "full"), 0), capacity[pool.id], held):
                return True
            today[pool.id].short += 1
            scratch_out[pool.name] = scratch_out[pool.name] or day
            return False

        for cart in _export(sim, end, catalog_backup):
            today[cart.pool_id].sent.append(cart.barcode)
            pending.append((end + timedelta(days=1), cart.id, "vault", cart.pool_id))
        recalled = rotation.recall(sim, end, OPERATOR)["recalled"]  # the due ones and the sampled checks
        for cart in _by_barcode(sim, [r["barcode"] for r in recalled]):
            pending.append((end + timedelta(days=1), cart.id, "courierretrieve", cart.pool_id))
            pending.append((end + timedelta(days=2) - timedelta(seconds=1), cart.id, "onsiteretrieve", cart.pool_id))
            if policy.check_pending(cart):
                checking.add(cart.id)
        for pool_id, counts in _snapshot(sim, pools).items():
            today[pool_id].in_library, today[pool_id].scratch, today[pool_id].offsite = counts
        days.append((day, [today[p.id] for p in pools]))
        progress(i + 1, weeks * 7, f"simulated {day}")
    return Forecast(now, weeks, days, scratch_out, ASSUMPTIONS)
