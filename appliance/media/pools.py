"""Media pools: which media set a write goes to, which cartridge it goes on, and when data may be overwritten.

Allocation, as Proxmox Backup Server has it (`Pool.allocation`):
- `continue`: append to the pool's open media set; a new set only when the pool's encryption key changed. The open
  set closes when the next one is created.
- `always`: every job starts a new media set; the set closes when the job that wrote it stamps it.
- a calendar event (`weekly`, `daily`, `Sat 18:00`, `Mon..Fri 02:00`): a new set once the event has passed since
  the open set was created; the open set closes at that event (even with no write after it: `expire` closes it).

Retention: a media set's data expires `retention` after the set closed; the retention is the pool's at the last
write into the set, never shortened by a later write (`stamp_set` keeps the longer), so changing a pool's retention
shorter frees nothing already written unless `change_retention(..., apply_to_written=True, confirm=True)`, whose
refusal without `confirm` lists the sets that would expire sooner. `None` is forever.

Invariants (every path that writes, labels, erases, recycles or moves a cartridge between pools goes through
`unexpired_data`):
- A cartridge that holds unexpired data is never chosen for writing other than to append to its own open set, and
  never relabelled, erased, recycled or given to another pool.
- Expired cartridges become scratch only `reuse_delay` after their set expired (TSM's REUSEDELAY: a catalog
  restored from an older backup still finds its tapes intact).
- Only cartridges that are in the pool's library (a slot or a drive), not write protected and not busy (in use by
  another job) are chosen for writing.
- Several groups share a pool and its media sets (co-location): nothing here is per group.
"""

from __future__ import annotations

import functools
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import case, func
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import find_cartridge, get_pool
from appliance.catalog.models import Cartridge, Job, MediaSet, Pool, TapeSet
from appliance.catalog.tape_sets import DR_GROUP
from appliance.config import parse_duration
from appliance.errors import Conflict, UsageError
from appliance.text import plural

ALLOCATIONS = ("continue", "always")
IN_LIBRARY = ("slot", "drive")
HOLDS_DATA = ("allocated", "full", "expired", "damaged", "retired")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAMED_EVENTS = {"hourly": {"minute": 0}, "daily": {"hour": 0, "minute": 0},
                 "weekly": {"day_of_week": "mon", "hour": 0, "minute": 0},
                 "monthly": {"day": 1, "hour": 0, "minute": 0}}
_allocating = threading.Lock()  # one media set decision at a time: two jobs of one pool must not open two sets


# --- parsing ----------------------------------------------------------------------------------------------------


def parse_retention(text: str) -> int | None:
    """Seconds of a duration ("30d", "12w"), or None for "forever". UsageError otherwise."""
    if str(text).strip().lower() in ("forever", "keep"):
        return None
    try:
        return parse_duration(text)
    except ValueError:
        raise UsageError(f"--retention {text!r} is neither a duration nor 'forever'",
                         "write it as 30d, 12w or forever") from None


def calendar_trigger(event: str, timezone=None, option: str = "--allocation") -> CronTrigger:
    """A systemd-like calendar event as a cron trigger in local time: hourly, daily, weekly, monthly, or
    `[DAYS] HH:MM` where DAYS is `Mon`, `Mon,Thu` or `Mon..Fri`."""
    text = event.strip().lower()
    if text in _NAMED_EVENTS:
        return CronTrigger(**_NAMED_EVENTS[text], timezone=timezone)
    m = re.fullmatch(r"(?:([a-z]{3}(?:(?:,|\.\.)[a-z]{3})*)\s+)?(\d{1,2}):(\d{2})", text)
    if m is None or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        raise UsageError(f"{option} {event!r} is not a calendar event" if option != "--allocation" else
                         f"--allocation {event!r} is not continue, always or a calendar event",
                         ("give continue, always, " if option == "--allocation" else "give ")
                         + "hourly, daily, weekly, monthly, or `[Mon..Fri] HH:MM`")
    kwargs = {"hour": int(m.group(2)), "minute": int(m.group(3))}
    if m.group(1):
        days = m.group(1).replace("..", "-")
        if any(d not in _DAYS for d in re.split(r"[,-]", days)):
            raise UsageError(f"{option} {event!r} names an unknown day", "use Mon, Tue, Wed, Thu, Fri, Sat, Sun")
        kwargs["day_of_week"] = days
    return CronTrigger(**kwargs, timezone=timezone)


def parse_allocation(text: str) -> str:
    """`continue`, `always`, or a calendar event (checked here, kept as typed)."""
    value = text.strip()
    if value.lower() in ALLOCATIONS:
        return value.lower()
    calendar_trigger(value)
    return value


def next_event(event: str, after: datetime) -> datetime:
    """The first time the calendar event fires strictly after `after` (in the zone `after` has)."""
    return _next_fire(event, after).astimezone(after.tzinfo)


@functools.lru_cache(maxsize=4096)
def _next_fire(event: str, after: datetime) -> datetime:
    """`next_event` in the local zone (the one tzlocal found first: it keeps it for the process's life): the pool
    code asks it for the same open set at every write and every expiry, and the forecast a year of them."""
    return _trigger(event).get_next_fire_time(None, after + timedelta(seconds=1))


@functools.lru_cache(maxsize=64)
def _trigger(event: str) -> CronTrigger:
    """The trigger of a calendar event in the local zone: building one costs more than asking it."""
    return calendar_trigger(event)


# --- retention --------------------------------------------------------------------------------------------------


def _longer(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


def _expiry(closed: datetime | None, retention: int | None) -> datetime | None:
    if closed is None or retention is None:
        return None
    return closed + timedelta(seconds=retention)


def unexpired_data(cart: Cartridge, now: datetime) -> bool:
    """True when the cartridge may hold data that must not be overwritten yet (what write, label, erase, recycle
    and pool change all check). Foreign data is not ours to keep: the operator's --force decides for it."""
    if cart.state not in HOLDS_DATA or cart.media_set_id is None:
        return False
    return cart.expires is None or cart.expires > now


def _close(s, ms: MediaSet, when: datetime) -> None:
    """No more appends to `ms`; its data (and its cartridges) expire `retention` from `when`."""
    close_rows(ms, s.exec(select(Cartridge).where(Cartridge.media_set_id == ms.id)).all(),
               s.exec(select(TapeSet).where(TapeSet.media_set_id == ms.id)).all(), when)
    s.add(ms)


def close_rows(ms: MediaSet, carts, tape_sets, when: datetime) -> None:
    """`_close` over rows (the media set's cartridges and tape sets): the catalog's sessions and the forecast's
    rows in memory take the same decision."""
    ms.closed = when
    ms.expires = _expiry(when, ms.retention_seconds)
    for cart in carts:
        cart.expires = ms.expires
        if cart.state == "allocated":
            cart.state = "full"
    for ts in tape_sets:
        ts.expires = ms.expires


def _open_set(s, pool_id: int) -> MediaSet | None:
    return s.exec(select(MediaSet).where(MediaSet.pool_id == pool_id, MediaSet.closed == None)  # noqa: E711
                  .order_by(MediaSet.id.desc())).first()


def gfs_tier(previous: datetime | None, now: datetime) -> str:
    """A new media set's GFS tier: the first of a year (in local time) is yearly, of a month monthly, of an ISO week
    weekly, any other daily; `previous` is when the pool's last set was created."""
    if previous is None:
        return "yearly"
    was, new = previous.astimezone(), now.astimezone()
    if was.year != new.year:
        return "yearly"
    if was.month != new.month:
        return "monthly"
    return "weekly" if was.isocalendar()[:2] != new.isocalendar()[:2] else "daily"


def set_retention(pool: Pool, tier: str | None) -> int | None:
    """The retention a set of `tier` gets in `pool`: its tier's when the pool's GFS names it, else the pool's."""
    if tier is not None and tier in (pool.gfs or {}):
        return pool.gfs[tier]
    return pool.retention_seconds


def _last_created(s, pool_id: int) -> datetime | None:
    """`generation_start` in one query (a pool's history grows with every set it holds)."""
    return s.exec(select(func.max(MediaSet.created)).join(TapeSet, TapeSet.media_set_id == MediaSet.id)
                  .where(MediaSet.pool_id == pool_id, TapeSet.group_name != DR_GROUP)).one()


def generation_start(rows) -> datetime | None:
    """When the pool's newest generation of data began, from (media set created, tape set's group) of its sets:
    its newest media set holding a set of a protection group (one holding only the catalog backup an export wrote,
    or nothing, is no generation). The forecast's way over its rows; the catalog asks `_last_created`."""
    return max((created for created, group in rows if group != DR_GROUP), default=None)


def closes_before_write(pool: Pool, current: MediaSet, now: datetime) -> datetime | None:
    """When the pool's open set `current` closes before a write at `now` (None: the write goes into it)."""
    if pool.allocation == "always" or current.key_fingerprint != pool.key_fingerprint:
        return now
    if pool.allocation != "continue":
        event = next_event(pool.allocation, current.created)
        return event if event <= now else None
    return None


def new_media_set(pool: Pool, last_created: datetime | None, now: datetime) -> MediaSet:
    """The pool's next media set (not saved), its GFS tier from when the previous generation began."""
    tier = gfs_tier(last_created, now) if pool.gfs else None
    return MediaSet(uuid=str(uuid.uuid4()), pool_id=pool.id, created=now, tier=tier,
                    retention_seconds=set_retention(pool, tier), key_fingerprint=pool.key_fingerprint)


def media_set_for_write(catalog: Catalog, pool: Pool | str, now: datetime) -> MediaSet:
    """The media set the next write of `pool` goes to, opening a new one as the allocation policy says."""
    pool = get_pool(catalog, pool) if isinstance(pool, str) else pool
    with _allocating, catalog.session() as s:
        pool = s.get(Pool, pool.id)
        current = _open_set(s, pool.id)
        if current is not None:
            close_at = closes_before_write(pool, current, now)
            if close_at is None:
                return current
            _close(s, current, close_at)
        fresh = new_media_set(pool, _last_created(s, pool.id) if pool.gfs else None, now)
        s.add(fresh)
        s.flush()
        return fresh


def stamp_set(catalog: Catalog, media_set_id: int, now: datetime) -> MediaSet:
    """A tape set was written into the media set: stamp the pool's retention on it (never shorter than it was), and
    close it when the pool allocates a set per job."""
    with catalog.session() as s:
        ms = s.get(MediaSet, media_set_id)
        close_at = stamp_rows(ms, s.get(Pool, ms.pool_id), now)
        s.add(ms)
        if close_at is not None:
            _close(s, ms, close_at)
        return ms


def stamp_rows(ms: MediaSet, pool: Pool, now: datetime) -> datetime | None:
    """`stamp_set` over rows: the retention and last write stamped on `ms`; when it closes (again) now, or None."""
    ms.retention_seconds = _longer(ms.retention_seconds, set_retention(pool, ms.tier))
    ms.last_written = now
    if pool.allocation == "always" and ms.closed is None:
        return now
    if ms.closed is not None:  # written after closing (a job that began before): its clock restarts
        return max(ms.closed, now)
    return None


def close_idle_set(catalog: Catalog, media_set_id: int, now: datetime, writers: tuple[str, ...]) -> MediaSet:
    """Close a media set nobody writes to now (vault/policy.py's export of a `continue` pool's open set). Refused
    while a job of a `writers` kind runs for its pool: that job may hold the set (a job running from now on asks
    `media_set_for_write`, under the same lock, and gets a new one)."""
    with _allocating, catalog.session() as s:
        ms = s.get(MediaSet, media_set_id)
        pool = s.get(Pool, ms.pool_id)
        jobs = [j.id for j in s.exec(select(Job).where(Job.kind.in_(writers), Job.state == "running")).all()
                if j.params.get("pool") == pool.name]
        writing = s.exec(select(TapeSet).where(TapeSet.media_set_id == ms.id, TapeSet.state == "writing")).first()
        refuse_busy(ms, pool, jobs, writing is not None)
        if ms.closed is None:
            _close(s, ms, now)
        return ms


def refuse_busy(ms: MediaSet, pool: Pool, jobs: list[int], writing: bool) -> None:
    """Conflict when a media set to close is being written: by `jobs` of its pool, or a set `writing` in it."""
    if jobs or writing:
        busy = f"job {', '.join(map(str, jobs))}" if jobs else "a tape set still being written"
        raise Conflict(f"media set {ms.uuid} of pool '{pool.name}' is being written ({busy})",
                       f"wait for the job (`tapeline job {jobs[0] if jobs else 'ID'} --wait`), then try again")


# --- cartridges for writing -------------------------------------------------------------------------------------


SCRATCH_TIERS = (("scratch", True), ("scratch", False), ("blank", True), ("blank", False))
"""The order scratch is taken in: (state, the pool's own rather than unassigned)."""


def next_cartridge(catalog: Catalog, pool: Pool, media_set: MediaSet, busy: frozenset[str] = frozenset(),
                   now: datetime | None = None) -> Cartridge | None:
    """The media set's current cartridge when it can take more, else a scratch cartridge for the pool: one of the
    pool's own first, then an unassigned one, labelled ones first; then cartridges never read (`blank`: the writer
    reads their label before writing, and skips one that holds data). None when there is none (the caller waits
    with an alert saying which pool needs what)."""
    with catalog.reader() as s:
        own = s.exec(select(Cartridge).where(Cartridge.media_set_id == media_set.id, Cartridge.state == "allocated")
                     .order_by(Cartridge.sequence.desc())).all()

        # One query per tier, each reading only as many rows as busy ones could hide: a big library has thousands
        # of scratch cartridges, and one query ordering them all by tier sorts every one of them.
        def tier(state: str, own_pool: bool) -> list[Cartridge]:
            return s.exec(select(Cartridge).where(
                Cartridge.state == state,
                Cartridge.pool_id == pool.id if own_pool else Cartridge.pool_id == None,  # noqa: E711
                Cartridge.library_id == pool.library_id, Cartridge.location_kind.in_(IN_LIBRARY),
                Cartridge.write_protected == False)  # noqa: E712
                .order_by(case((Cartridge.label_uuid == None, 1), else_=0), Cartridge.barcode)  # noqa: E711
                .limit(len(busy) + 1)).all()
        return choose_cartridge(pool, media_set, own, tier, busy, now or media_set.created)


def scratch_order(cart: Cartridge) -> tuple[bool, str]:
    """Within a tier: labelled cartridges first, then by barcode."""
    return cart.label_uuid is None, cart.barcode


def choose_cartridge(pool: Pool, media_set: MediaSet, own, tier, busy: frozenset[str],
                     now: datetime) -> Cartridge | None:
    """`next_cartridge`'s decision over rows: `own`, the media set's cartridges by sequence, newest first; `tier(state,
    own_pool)`, the candidates of a scratch tier in `scratch_order` (any superset in that order: each is checked
    here). The catalog reads them with queries, the forecast from its rows in memory."""
    for cart in own:
        if cart.media_set_id == media_set.id and cart.state == "allocated" and _usable(cart, pool, busy):
            return cart
    for state, own_pool in SCRATCH_TIERS:
        owner = pool.id if own_pool else None
        for cart in tier(state, own_pool):
            if cart.state == state and cart.pool_id == owner and _usable(cart, pool, busy) \
                    and not unexpired_data(cart, now):
                return cart
    return None


def _usable(cart: Cartridge, pool: Pool, busy: frozenset[str]) -> bool:
    return (cart.library_id == pool.library_id and cart.location_kind in IN_LIBRARY and not cart.write_protected
            and cart.barcode not in busy)


def join_media_set(catalog: Catalog, barcode: str, media_set: MediaSet, now: datetime) -> Cartridge:
    """A scratch cartridge becomes the media set's next tape (its label and media-set label are written:
    files 0 and 1); sets are appended from file 2."""
    with catalog.session() as s:
        cart = find_cartridge(s, barcode)
        if cart.media_set_id == media_set.id:
            return cart
        used = s.exec(select(Cartridge.sequence).where(Cartridge.media_set_id == media_set.id)).all()
        join_rows(cart, media_set, used, now)
        s.add(cart)
        return cart


def join_rows(cart: Cartridge, media_set: MediaSet, sequences, now: datetime) -> None:
    """`join_media_set` over rows: `sequences`, those of the media set's cartridges."""
    if unexpired_data(cart, now):
        raise Conflict(f"cartridge {cart.barcode} holds unexpired data (media set {cart.media_set_id}, expires "
                       f"{_when(cart.expires)})", "choose a scratch cartridge; see `tapeline media list --state "
                       "scratch`")
    cart.media_set_id, cart.pool_id = media_set.id, media_set.pool_id
    cart.sequence = max((q for q in sequences if q is not None), default=-1) + 1
    cart.state, cart.next_file, cart.expires, cart.note = "allocated", 2, None, None
    cart.last_used = now


def record_written(catalog: Catalog, barcode: str, next_file: int, bytes_added: int, now: datetime) -> Cartridge:
    """After a set (and its index) was written and checked: new sets go after it."""
    with catalog.session() as s:
        cart = find_cartridge(s, barcode)
        cart.next_file = next_file
        cart.bytes_written += bytes_added
        cart.last_used = now
        s.add(cart)
        return cart


def cartridge_full(catalog: Catalog, barcode: str) -> Cartridge:
    """End of medium: no more sets on this one; the media set continues on the next."""
    with catalog.session() as s:
        cart = find_cartridge(s, barcode)
        cart.state = "full"
        s.add(cart)
        return cart


def mark_suspect(catalog: Catalog, barcode: str, reason: str, write: bool = True) -> Cartridge:
    """A media error: the cartridge is damaged (never chosen again) and the set is rewritten elsewhere. What it held
    stays in the catalog for reading."""
    with catalog.session() as s:
        cart = find_cartridge(s, barcode)
        cart.state, cart.note = "damaged", reason
        if write:
            cart.write_errors += 1
        else:
            cart.read_errors += 1
        s.add(cart)
        return cart


# --- expiry and recycling ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpireResult:
    closed: tuple[str, ...]  # media sets closed by their calendar event
    expired: tuple[str, ...]  # cartridges whose data expired (waiting out the reuse delay)
    scratch: tuple[str, ...]  # cartridges back to scratch
    sets: tuple[str, ...] = ()  # tape sets (uuids) that stopped counting: their media set expired


def expire(catalog: Catalog, now: datetime) -> ExpireResult:
    """Close calendar sets whose event passed, mark cartridges of expired sets `expired` (and the tape sets they
    hold: restores refuse them from then on; `MediaService.expire` deletes their index copies), and return those
    whose reuse delay passed to scratch (kept in their pool, label kept: nothing on tape changes until the next
    write)."""
    with _allocating, catalog.session() as s:
        return expire_rows({p.id: p for p in s.exec(select(Pool))},
                           s.exec(select(MediaSet).where(MediaSet.closed == None)).all(),  # noqa: E711
                           lambda: s.exec(select(TapeSet, MediaSet)
                                          .join(MediaSet, MediaSet.id == TapeSet.media_set_id)
                                          .where(TapeSet.state == "ok", MediaSet.expires != None,  # noqa: E711
                                                 MediaSet.expires <= now)).all(),
                           lambda: s.exec(select(Cartridge).where(
                               Cartridge.state.in_(("allocated", "full", "expired")), Cartridge.expires <= now)).all(),
                           now, lambda ms, when: _close(s, ms, when))


def expire_rows(pools: dict[int, Pool], open_sets, tape_sets, carts, now: datetime, close) -> ExpireResult:
    """`expire` over rows: the open media sets; `tape_sets()` and `carts()`, read once those are closed, the (tape
    set, its media set) pairs and the cartridges to look at (any superset of those the catalog's queries find: each
    is checked here); `close(media_set, when)` closes a set with its cartridges and tape sets (`_close`)."""
    closed, expired, scratch, sets = [], [], [], []
    for ms in open_sets:
        pool = pools[ms.pool_id]
        if ms.closed is None and pool.allocation not in ALLOCATIONS:
            event = next_event(pool.allocation, ms.created)
            if event <= now:
                close(ms, event)
                closed.append(ms.uuid)
    # A set whose media set expired no longer counts: its cartridges may be written over after the reuse delay.
    for row, ms in tape_sets():
        if row.state == "ok" and ms.expires is not None and ms.expires <= now:
            row.state = "expired"
            sets.append(row.uuid)
    for cart in carts():
        if cart.state not in ("allocated", "full", "expired") or cart.expires is None or cart.expires > now:
            continue
        delay = timedelta(seconds=pools[cart.pool_id].reuse_delay_seconds if cart.pool_id in pools else 0)
        if cart.expires + delay <= now:
            cart.state, cart.media_set_id, cart.sequence, cart.expires = "scratch", None, None, None
            cart.next_file = 1
            scratch.append(cart.barcode)
        elif cart.state != "expired":
            cart.state = "expired"
            expired.append(cart.barcode)
    return ExpireResult(tuple(closed), tuple(expired), tuple(scratch), tuple(sets))


def change_retention(catalog: Catalog, pool: Pool, retention: int | None, apply_to_written: bool, confirm: bool,
                     now: datetime, gfs: dict[str, int] | None = None) -> list[dict]:
    """Set the pool's retention (and its GFS tiers' when `gfs` is given) for sets written from now on. With
    `apply_to_written`, also restamp the sets already written (a tiered set from its tier), which needs `confirm`
    when any would expire sooner (the refusal lists them). Returns the sets whose expiry changed (or would)."""
    sooner = []
    with catalog.session() as s:
        row = s.get(Pool, pool.id)
        row.retention_seconds = retention
        if gfs is not None:
            row.gfs = gfs
        s.add(row)
        if not apply_to_written:
            return []
        for ms in s.exec(select(MediaSet).where(MediaSet.pool_id == pool.id)).all():
            target = set_retention(row, ms.tier)
            if target == ms.retention_seconds:
                continue
            was = _expiry(ms.closed, ms.retention_seconds)
            will = _expiry(ms.closed, target)
            shorter = ms.retention_seconds is None and target is not None or (
                target is not None and ms.retention_seconds is not None and target < ms.retention_seconds)
            if shorter:
                sooner.append({"media_set": ms.uuid, "created": ms.created, "closed": ms.closed,
                               "expires_was": was, "expires_now": will,
                               "cartridges": [c.barcode for c in s.exec(select(Cartridge)
                                                                        .where(Cartridge.media_set_id == ms.id))]})
            restamp(s, ms, target)
        if sooner and not confirm:
            listed = "; ".join(f"{x['media_set']} ({', '.join(x['cartridges']) or 'no cartridge'}) would expire "
                               f"{_when(x['expires_now'])} instead of {_when(x['expires_was'])}" for x in sooner[:10])
            more = f" and {len(sooner) - 10} more" if len(sooner) > 10 else ""
            raise Conflict(f"shortening the retention of pool '{pool.name}' frees {plural(len(sooner), 'media set')} "
                           f"already written sooner: {listed}{more}", "rerun with --confirm to free them, or leave out "
                           "--apply-to-written to change it for new sets only")
    return sooner


def restamp(s, ms: MediaSet, retention: int | None) -> None:
    """Give a written media set (its cartridges and tape sets) this retention, in the caller's session."""
    ms.retention_seconds = retention
    if ms.closed is not None:
        _close(s, ms, ms.closed)
    s.add(ms)


def _when(t: datetime | None) -> str:
    return "never" if t is None else t.astimezone().strftime("%Y-%m-%d %H:%M:%S")
