"""Rotation policies: which cartridges are ready to go offsite, and which are due back from the vault.

A pool rotates when it names a vault (`Pool.vault_id`); its policy is the pool's `offsite_copies`, `recall` and
`gfs` (docs/vault.md says what each means to an operator).

Invariants:
- Offsite-ready: a cartridge of a closed media set of a rotating pool whose every good tape set was verified (at
  least one), none being written (a set "writing" in it, or a running tape backup of its pool while it is open),
  data not yet expired, and the cartridge still on site (mountable or not mountable), not damaged, and neither
  waiting for the read-back check it was recalled for nor failed by its last one (vault/checks.py): a cartridge
  that may not read back stays for the operator to rewrite its sets. A set that never verifies
  never leaves: verifying it (`tapeline media verify`) is the fix, never a skip here.
- Due back: a vaulted cartridge (rotation "vault") with nothing unexpired on it (`pools.unexpired_data`), at the
  pool's recall: "expired" recalls it as soon as its data expired; a calendar event recalls it at the first event
  after its data expired (the courier's run). A cartridge in a case waits until every vaulted cartridge in that case
  is due: a case comes back as one. A pool with `offsite_copies` N > 1 keeps its N newest vaulted media
  sets in the vault even past their expiry, so the vault always holds N generations.
- Both are pure reads over the catalog at `now`: the forecast runs them on a simulated clock, so neither looks at
  the wall clock, the library or a job engine.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import cartridges_in, get_pool
from appliance.catalog.models import Cartridge, MediaSet, Pool, TapeSet
from appliance.catalog.vaults import get_vault
from appliance.errors import Conflict, UsageError
from appliance.media import pools as pool_rules

ON_SITE = ("mountable", "notmountable")
WRITERS = ("tape-backup",)  # job kinds that write into a pool's open media set (params["pool"] names it)


def _pools(s, pool: str | None) -> dict[int, Pool]:
    q = select(Pool).where(Pool.vault_id != None)  # noqa: E711
    if pool is not None:
        q = q.where(Pool.name == pool)
    return {p.id: p for p in s.exec(q).all()}


def ready_sets(catalog: Catalog, now: datetime, pool: str | None = None, closing: bool = False) -> list[MediaSet]:
    """The media sets of rotating pools that may leave: closed, verified, none of their sets still written,
    unexpired. `closing`: also the open set of a pool the export closes (`closes_for_export`) that is otherwise
    ready, which the next export closes before it sends (what the pick list must show)."""
    if pool is not None:
        get_pool(catalog, pool)  # an unknown name is an error naming the known ones, not an empty list
    with catalog.reader() as s:
        return ready_sets_in(s, now, pool, closing)


def ready_sets_in(s: Session, now: datetime, pool: str | None = None, closing: bool = False) -> list[MediaSet]:
    rotating = _pools(s, pool)
    if not rotating:
        return []
    closed = (MediaSet.closed != None) & (MediaSet.closed <= now)  # noqa: E711
    if closing:
        continuing = [p.id for p in rotating.values() if closes_for_export(p)]
        closed = closed | ((MediaSet.closed == None) & MediaSet.pool_id.in_(continuing))  # noqa: E711
    sets = [m for m in s.exec(select(MediaSet).where(MediaSet.pool_id.in_(rotating), closed)).all()
            if m.expires is None or m.expires > now]
    if not sets:
        return []
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = s.exec(select(TapeSet.media_set_id, TapeSet.state, TapeSet.verified != None, func.count())  # noqa: E711
                  .where(TapeSet.media_set_id.in_([m.id for m in sets]))
                  .group_by(TapeSet.media_set_id, TapeSet.state, TapeSet.verified != None)).all()  # noqa: E711
    for media_set_id, state, verified, n in rows:
        counts[media_set_id][set_kind(state, verified)] += n
    return ready_rows(rotating, sets, counts, now, closing)


def set_kind(state: str, verified: bool) -> str:
    """How a tape set counts for its media set's leaving: writing, verified, unverified or other (failed, ...)."""
    return "writing" if state == "writing" else ("verified" if verified else "unverified") \
        if state == "ok" else "other"


def ready_rows(rotating: dict[int, Pool], sets, counts: dict[int, dict[str, int]], now: datetime,
               closing: bool = False) -> list[MediaSet]:
    """`ready_sets` over rows: `rotating`, the pools looked at; `sets`, their media sets (any superset: each is
    checked here); `counts`, media set id -> {set_kind: tape sets}."""
    def may_leave(m: MediaSet) -> bool:
        if m.pool_id not in rotating or (m.expires is not None and m.expires <= now):
            return False
        if m.closed is None:
            return closing and closes_for_export(rotating[m.pool_id])
        return m.closed <= now
    none: dict[str, int] = {}
    return [m for m in sets if may_leave(m) and counts.get(m.id, none).get("verified")
            and not counts.get(m.id, none).get("unverified") and not counts.get(m.id, none).get("writing")]


def offsite_ready(catalog: Catalog, now: datetime, pool: str | None = None, closing: bool = False) -> list[Cartridge]:
    """Cartridges to send offsite now (of `pool`, or of every rotating pool), by pool, media set and sequence.
    `closing`: as the next export will find them, once it closed the open sets (`closes_for_export`)."""
    if pool is not None:
        get_pool(catalog, pool)
    with catalog.reader() as s:
        return offsite_ready_in(s, now, pool, closing)


def offsite_ready_in(s: Session, now: datetime, pool: str | None = None, closing: bool = False) -> list[Cartridge]:
    sets = ready_sets_in(s, now, pool, closing)
    if not sets:
        return []
    return leaving(sets, s.exec(select(Cartridge).where(Cartridge.media_set_id.in_([m.id for m in sets]),
                                                        Cartridge.rotation.in_(ON_SITE))).all())


def leaving(sets: list[MediaSet], carts) -> list[Cartridge]:
    """The cartridges of ready `sets` that leave (any superset of them: each is checked here), by pool, media set
    and sequence: on site, neither waiting for nor failed by a read-back check, not damaged."""
    ids = {m.id for m in sets}
    out = [c for c in carts if c.media_set_id in ids and c.rotation in ON_SITE and not check_pending(c)
           and c.state != "damaged" and c.last_check_result in (None, "ok")]
    return sorted(out, key=lambda c: (c.pool_id, c.media_set_id, c.sequence if c.sequence is not None else -1))


def check_pending(cart: Cartridge) -> bool:
    """Recalled for a sampled read-back check that has not been read yet: it stays until verified."""
    return cart.check_requested is not None and (cart.last_check is None or cart.last_check < cart.check_requested)


def due_back(catalog: Catalog, now: datetime, pool: str | None = None) -> list[Cartridge]:
    """Vaulted cartridges whose recall is due at `now` (of `pool`, or of every pool), by barcode."""
    if pool is not None:
        get_pool(catalog, pool)
    with catalog.reader() as s:
        return due_back_in(s, now, pool)


def due_back_in(s: Session, now: datetime, pool: str | None = None) -> list[Cartridge]:
    # Decided on plain columns (a vault may hold 10,000 cartridges), and only the due ones loaded as rows.
    vaulted = s.exec(select(Cartridge.id, Cartridge.pool_id, Cartridge.media_set_id, Cartridge.case_id,
                            Cartridge.state, Cartridge.expires).where(Cartridge.rotation == "vault")).all()
    pools = {p.id: p for p in s.exec(select(Pool)).all()}
    wanted = sets_asked(vaulted, pools)
    sets = {i: (expires, closed or created) for i, expires, closed, created in s.exec(
        select(MediaSet.id, MediaSet.expires, MediaSet.closed, MediaSet.created)
        .where(MediaSet.id.in_(wanted))).all()} if wanted else {}
    due = due_ids(vaulted, pools, sets, now, pool)
    if not due:
        return []
    return sorted(cartridges_in(s, Cartridge.id, due), key=lambda c: c.barcode)


def sets_asked(vaulted, pools: dict[int, Pool]) -> set[int]:
    """The media sets `due_ids` needs (of a pool keeping several generations, or of a cartridge with no expiry)."""
    several = {p.id for p in pools.values() if p.offsite_copies > 1}
    return {row[2] for row in vaulted if row[2] is not None and (row[1] in several or row[5] is None)}


def due_ids(vaulted, pools: dict[int, Pool], sets: dict[int, tuple[datetime | None, datetime]], now: datetime,
            pool: str | None = None) -> set[int]:
    """`due_back` over rows: `vaulted`, (id, pool id, media set id, case id, state, expires) of every cartridge in
    a vault; `sets`, media set id -> (expires, closed or created) of those `sets_asked` names. The ids due."""
    several = {p.id for p in pools.values() if p.offsite_copies > 1}
    kept = _kept_generations([(r[1], r[2]) for r in vaulted if r[1] in several and r[2] in sets], pools, sets)
    triggers: dict[str, object] = {}
    fires: dict[tuple[str, datetime], datetime] = {}
    due = set()
    for cart_id, pool_id, media_set_id, _case, state, expires in vaulted:
        if media_set_id in kept or (state in pool_rules.HOLDS_DATA and media_set_id is not None
                                    and (expires is None or expires > now)):
            continue  # pools.unexpired_data, on columns
        rule = pools[pool_id].recall if pool_id in pools else "expired"
        expired_at = expires or (sets[media_set_id][0] if media_set_id in sets else None)
        if rule != "expired" and expired_at is not None:
            if (rule, expired_at) not in fires:  # many cartridges share an expiry: one calendar look-up
                if rule not in triggers:
                    triggers[rule] = pool_rules.calendar_trigger(rule, option="--recall")
                fires[rule, expired_at] = triggers[rule].get_next_fire_time(None, expired_at + timedelta(seconds=1))
            if fires[rule, expired_at] > now:
                continue
        due.add(cart_id)
    # a case comes back as one, once every cartridge in it is due (its return date is its latest one's)
    waiting = {r[3] for r in vaulted if r[3] is not None and r[0] not in due}
    return {r[0] for r in vaulted if r[0] in due and (r[3] is None or r[3] not in waiting)
            and (pool is None or (r[1] in pools and pools[r[1]].name == pool))}


def _kept_generations(vaulted: list[tuple[int, int]], pools: dict[int, Pool],
                      sets: dict[int, tuple[datetime | None, datetime]]) -> set[int]:
    """The media sets a pool with offsite_copies N > 1 keeps in the vault: its N newest there ((pool, media set)
    of its vaulted cartridges; sets: id -> (expires, closed or created))."""
    by_pool: dict[int, set[int]] = defaultdict(set)
    for pool_id, media_set_id in vaulted:
        by_pool[pool_id].add(media_set_id)
    kept: set[int] = set()
    for pool_id, ids in by_pool.items():
        newest = sorted(ids, key=lambda i: (sets[i][1], i), reverse=True)
        kept.update(newest[:pools[pool_id].offsite_copies])
    return kept


def closes_for_export(pool: Pool) -> bool:
    """Whether the export closes the pool's open media set: every allocation but `always` (whose jobs close their
    own set) keeps one open, `continue` until it is closed, a calendar one until its next event; the catalog backup
    the export writes goes into it and must leave with the batch."""
    return pool.allocation != "always"


def close_for_export(catalog: Catalog, media_set: MediaSet, now: datetime) -> MediaSet:
    """Close the open media set of a pool that keeps one open (`closes_for_export`) so it can go offsite; refused
    while a job writes to it (the next write then opens a new set, as any closed set makes it)."""
    return pool_rules.close_idle_set(catalog, media_set.id, now, WRITERS)


# --- a pool's rotation policy (`tapeline pool set`) ---------------------------------------------------------------

TIERS = ("daily", "weekly", "monthly", "yearly")
_GFS_UNITS = {"d": 86400, "w": 7 * 86400, "m": 31 * 86400, "y": 366 * 86400}  # a month or year never falls short
_GFS_ITEM = re.compile(r"(\d+)\s*([dwmy])")


def parse_gfs(text: str) -> dict[str, int]:
    """`daily=7d,weekly=5w,monthly=12m,yearly=7y` as {tier: seconds}; in this option m is months and y years.
    An empty text (or "none") turns GFS off."""
    if text.strip().lower() in ("", "none", "off"):
        return {}
    tiers: dict[str, int] = {}
    for item in text.split(","):
        name, _, span = item.partition("=")
        name, span = name.strip().lower(), span.strip().lower()
        m = _GFS_ITEM.fullmatch(span)
        if name not in TIERS or m is None or int(m.group(1)) == 0:
            raise UsageError(f"--gfs item {item.strip()!r} is not TIER=DURATION",
                             "write it as daily=7d,weekly=5w,monthly=12m,yearly=7y (d days, w weeks, m months, "
                             "y years; tiers daily, weekly, monthly, yearly)")
        if name in tiers:
            raise UsageError(f"--gfs names tier {name} twice", "give each tier once")
        tiers[name] = int(m.group(1)) * _GFS_UNITS[m.group(2)]
    return tiers


def parse_recall(text: str) -> str:
    """`expired`, or a calendar event (weekly, `Fri 10:00`, ...) at which due cartridges are recalled."""
    value = text.strip()
    if value.lower() == "expired":
        return "expired"
    pool_rules.calendar_trigger(value, option="--recall")
    return value


def parse_copies(value: int) -> int:
    if not 1 <= value <= 99:
        raise UsageError(f"--offsite-copies {value} is out of range", "give a number from 1 to 99")
    return value


@dataclass(frozen=True)
class PolicyChange:
    """What `pool set` (and the dry run) would give the pool: None leaves a setting as it is."""
    vault: str | None = None  # a vault's name, or "" for none (the pool stops rotating)
    offsite_copies: int | None = None
    recall: str | None = None
    gfs: dict[str, int] | None = None
    retention_seconds: int | None = None
    retention_given: bool = False  # retention_seconds None means forever when given
    check_sample: int | None = None
    check_every_seconds: int | None = None

    @property
    def restamps(self) -> bool:
        """Whether written sets take the new retention: only when the change gives a retention or GFS tiers."""
        return self.retention_given or self.gfs is not None

    def applied_to(self, catalog: Catalog, pool: Pool) -> Pool:
        """A copy of `pool` with the change made (not saved)."""
        new = Pool(**pool.model_dump())
        if self.vault is not None:
            new.vault_id = get_vault(catalog, self.vault).id if self.vault else None
        for name in ("offsite_copies", "recall", "gfs", "check_sample", "check_every_seconds"):
            if getattr(self, name) is not None:
                setattr(new, name, getattr(self, name))
        if self.retention_given:
            new.retention_seconds = self.retention_seconds
        return new


def set_policy(catalog: Catalog, name: str, change: PolicyChange, now: datetime, confirm: bool = False) -> tuple[
        Pool, list[dict]]:
    """Give pool `name` its rotation policy. When the change gives a retention or GFS tiers, written sets take
    their new retention at once when it is longer; one that would expire sooner needs `confirm` (the refusal lists
    them and points at the dry run). A change of vault, copies, recall or checks alone restamps nothing (a retention
    changed earlier for new sets only stays so). Returns the pool and the sets whose expiry changed."""
    pool = get_pool(catalog, name)
    new = change.applied_to(catalog, pool)
    if new.check_sample and not new.check_every_seconds:
        raise UsageError(f"--check-sample {new.check_sample} needs a period", "add --check-every 90d (or another)")
    try:
        changed = pool_rules.change_retention(catalog, pool, new.retention_seconds, change.restamps, confirm, now,
                                              new.gfs)
    except Conflict as exc:
        raise Conflict(str(exc.message), f"see what it frees with `tapeline vault dry-run {name} ...` (the same "
                       "options), then rerun with --confirm") from None
    with catalog.session() as s:
        row = s.get(Pool, pool.id)
        row.vault_id, row.offsite_copies, row.recall = new.vault_id, new.offsite_copies, new.recall
        row.check_sample, row.check_every_seconds = new.check_sample, new.check_every_seconds
        s.add(row)
    return get_pool(catalog, name), changed
