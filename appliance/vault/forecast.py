"""The rotation forecast (`tapeline vault forecast [--weeks N]`): the coming weeks day by day, by running the real
policy code on a simulated clock over a copy of the catalog.

How: the rows that decide the future (pools, vaults, media sets still holding data, their tape sets, cartridges)
are loaded into memory (forecast_rows.py), with the groups' tape policies. Then, day by day: each group's tape
schedule fires as the scheduler fires it (`pools.next_event` over the same calendar events); each backup is written
as the tape job writes it, through the decisions of media/pools.py (the media set for the write, the next cartridge,
joining the set, the retention stamped on the set) with the size of the group's recent sets of that kind; at the end
of the day the expiry runs (`pools.expire_rows`), the export (as Export._prepare: the catalog backup written into
each pool it sends from, a set of the reserved group through the same pool decisions, so with `always` allocation
it takes a cartridge of its own; the open set closed as `policy.close_for_export` closes it, then what
`policy.offsite_ready` decides: the cartridges go to the courier, and are in the vault the next day) and the recall
(what `policy.due_back` decides and the sampled read-back checks of `checks.check_due`, as `rotation.recall` takes
them; vault-retrieve, then a day with the courier, then back in the library, where a sampled one is read back and
recorded as checked). Every move is validated as catalog/moves.py validates it. Nothing here decides when a
cartridge leaves, returns or is reused: the policy code does, over rows in memory instead of catalog sessions, so
the forecast says what the appliance will do.

Assumptions (docs/vault.md): `tapeline vault export` and `tapeline vault recall` run every day and the courier
takes a day each way; a cartridge that comes back is put into the library the day it arrives; a cartridge holds
what the library's fullest one holds of its media set (else an LTO-8's native capacity); every backup verifies
when its pool verifies; nothing fails. The real catalog is only read.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import Cartridge, Pool, ProtectionGroup, TapePolicy, TapeSet, TapeSetPart
from appliance.catalog.tape_sets import DR_GROUP
from appliance.errors import Conflict, UsageError
from appliance.media import pools as pool_rules
from appliance.media.format import BLOCK_SIZE
from appliance.ops.plan import LTO
from appliance.vault import policy
from appliance.vault.forecast_rows import Rows

MAX_WEEKS = 104
DEFAULT_CAPACITY = LTO[8][0]
RECENT_SETS = 5  # a group's next set is as big as the mean of its last few of the same kind
Progress = Callable[[int, int, str], None]


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


def _events(catalog: Catalog, start: datetime, end: datetime) -> list[tuple[datetime, str, int, str]]:
    """(time, group, pool id, kind) of every tape backup the groups' schedules fire in (start, end]; a full and an
    incremental due at once make one full."""
    out = []
    with catalog.reader() as s:
        rows = s.exec(select(TapePolicy, ProtectionGroup.name)
                      .join(ProtectionGroup, ProtectionGroup.id == TapePolicy.group_id)).all()
    for tp, group in rows:
        fires: dict[datetime, str] = {}
        for kind, event in (("incremental", tp.incremental), ("full", tp.full)):
            t = start
            while event:
                t = pool_rules.next_event(event, t)
                if t > end:
                    break
                fires[t] = kind
        out += [(t, group, tp.pool_id, kind) for t, kind in fires.items()]
    return sorted(out)


def _write(rows: Rows, pool: Pool, group: str, kind: str, when: datetime, nbytes: int, capacity: int,
           held: dict[int, int]) -> bool:
    """One backup written as the tape job writes it; False when no cartridge could take it. `held`: what each
    cartridge holds of its current media set (kept up to date here)."""
    ms = rows.media_set_for_write(pool, when)
    remaining, first = nbytes, True
    while first or remaining > 0:
        first = False
        cart = rows.next_cartridge(pool, ms, when)
        if cart is None:
            return False
        if cart.media_set_id != ms.id:
            held[cart.id] = 0
        rows.join(cart, ms, when)
        put = min(max(capacity - held.get(cart.id, 0), 0), remaining)
        held[cart.id] = held.get(cart.id, 0) + put
        remaining -= put
        # the job's bookkeeping after a part (pools.record_written, and pools.cartridge_full at the end of the
        # medium): it decides nothing
        cart.next_file, cart.bytes_written, cart.last_used = cart.next_file + 2, cart.bytes_written + put, when
        if remaining > 0 or held[cart.id] >= capacity:
            cart.state = "full"
    rows.add_tape_set(ms, group, kind, when, nbytes, pool.verify)
    return True


def _export(rows: Rows, when: datetime, write_backup: Callable[[Pool], bool]) -> list:
    """What `tapeline vault export` does (vault/export.py Export._prepare, then its batches): for each rotating pool
    with news (an open set holding backups, in a pool whose open set the export closes: policy.closes_for_export)
    or offsite-ready cartridges, the catalog backup written into the pool (`write_backup`: a set of the reserved
    group, through the same allocation as any write: with `always`, a media set and a cartridge of its own), then
    the open set closed; then the offsite-ready cartridges to the courier."""
    for pool in sorted((p for p in rows.pools.values() if p.vault_id is not None), key=lambda p: p.name):
        open_set = rows.open_set(pool.id)
        news = open_set is not None and policy.closes_for_export(pool) and rows.holds_backups(open_set)
        if not news and not rows.offsite_ready(when, pool):
            continue
        write_backup(pool)
        open_set = rows.open_set(pool.id)
        if policy.closes_for_export(pool) and open_set is not None:
            try:
                rows.close_for_export(pool, open_set, when)
            except Conflict:  # a set still written: it leaves with a later export, as the real one does
                pass
    ready = rows.offsite_ready(when)
    cases: dict[int, int] = {}
    for cart in ready:  # in one case per pool and export, as the export packs them: a case comes back as one
        rows.move(cart, "courier", vault_id=rows.pools[cart.pool_id].vault_id)
        cart.case_id = cases.setdefault(cart.pool_id, rows.new_case())
    return ready


def check_weeks(weeks: int) -> int:
    if not 1 <= weeks <= MAX_WEEKS:
        raise UsageError(f"a forecast of {weeks} weeks is out of range", f"give --weeks from 1 to {MAX_WEEKS}")
    return weeks


def forecast(catalog: Catalog, now: datetime, weeks: int = 4, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> Forecast | None:
    """The coming `weeks`; `progress(days done, days, message)` after each simulated day; None when `cancel` was
    set (checked between days)."""
    check_weeks(weeks)
    return _run(Rows(catalog, now), catalog, now, weeks, progress or (lambda done, total, message: None),
                cancel or threading.Event())


def _run(rows: Rows, catalog: Catalog, now: datetime, weeks: int, progress: Progress,
         cancel: threading.Event) -> Forecast | None:
    sizes = _set_sizes(catalog)
    held, most = _on_cartridges(catalog)
    capacity = {p.id: most.get(p.library_id) or DEFAULT_CAPACITY for p in rows.pools.values()}
    pools = sorted(rows.pools.values(), key=lambda p: p.name)
    scratch_out: dict[str, str | None] = {p.name: None for p in pools}
    days, pending = [], []  # pending: (when, cartridge id, next state, pool id) of moves that take a day
    checking: set[int] = set()  # cartridges recalled for their sampled read-back check, on their way back
    local = now.astimezone()
    events = _events(catalog, local, local + timedelta(days=weeks * 7))  # the schedules do not change meanwhile
    for i in range(weeks * 7):
        if cancel.is_set():
            return None
        start, end = local + timedelta(days=i), local + timedelta(days=i + 1)
        day = start.date().isoformat()
        today = {p.id: PoolDay(p.name) for p in pools}
        due_moves = sorted(m for m in pending if m[0] <= end)
        pending = [m for m in pending if m[0] > end]
        for when, cart_id, to, pool_id in due_moves:
            cart = rows.carts[cart_id]
            rows.move(cart, to)
            if to == "onsiteretrieve":  # back, and put into the library, out of its case (vault/import_.py)
                rows.move(cart, "mountable", place=("slot", cart.location_number))
                cart.case_id = None
                if pool_id in today:
                    today[pool_id].back.append(cart.barcode)
                if cart_id in checking:  # the import queues its verify: it reads back well (checks.record_check)
                    checking.discard(cart_id)
                    cart.last_check, cart.last_check_result = when, "ok"
        while events and events[0][0] <= end:
            when, group, pool_id, kind = events.pop(0)
            pool = rows.pools[pool_id]
            nbytes = sizes.get((group, kind), sizes.get((group, "full"), 0))
            if _write(rows, pool, group, kind, when, nbytes, capacity[pool.id], held):
                today[pool.id].written += 1
            else:
                today[pool.id].short += 1
                scratch_out[pool.name] = scratch_out[pool.name] or day
        rows.expire(end)

        def catalog_backup(pool: Pool, when=end) -> bool:
            if _write(rows, pool, DR_GROUP, "full", when, sizes.get((DR_GROUP, "full"), 0), capacity[pool.id],
                      held):
                return True
            today[pool.id].short += 1
            scratch_out[pool.name] = scratch_out[pool.name] or day
            return False

        for cart in _export(rows, end, catalog_backup):
            today[cart.pool_id].sent.append(cart.barcode)
            pending.append((end + timedelta(days=1), cart.id, "vault", cart.pool_id))
        for cart in rows.recall(end):  # the due ones and the sampled checks
            pending.append((end + timedelta(days=1), cart.id, "courierretrieve", cart.pool_id))
            pending.append((end + timedelta(days=2) - timedelta(seconds=1), cart.id, "onsiteretrieve", cart.pool_id))
            if policy.check_pending(cart):
                checking.add(cart.id)
        for pool_id, counts in rows.snapshot().items():
            today[pool_id].in_library, today[pool_id].scratch, today[pool_id].offsite = counts
        days.append((day, [today[p.id] for p in pools]))
        progress(i + 1, weeks * 7, f"simulated {day}")
    return Forecast(now, weeks, days, scratch_out, ASSUMPTIONS)
