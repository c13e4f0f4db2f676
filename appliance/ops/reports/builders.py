"""The four reports, built from the catalog of a running Appliance at a given time `now` (a period of `days` days
ending then). Each returns a model.Report of raw values; nothing here formats or prints.

Invariants:
- Every group and every job of the period appears: a report that leaves something out says so in its notes.
- Days are the appliance's local calendar days; the last one ends at `now`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time as day_time, timedelta

from sqlmodel import select

from appliance.catalog import groups as groups_mod
from appliance.catalog import media as media_cat
from appliance.catalog import tape_sets
from appliance.catalog.models import Job, JobEvent, RecoveryPoint
from appliance.media.pools import IN_LIBRARY
from appliance.ops.reports.model import Chart, Column, Report, Table
from appliance import text

LATE_GRACE = 300  # seconds past its sync interval a group may be before it is late (a sync takes a while itself)


def late_after(sync_seconds: int) -> int:
    """Lag (seconds past the sync interval) from which a group is late: half an interval, at least LATE_GRACE."""
    return max(LATE_GRACE, sync_seconds // 2)


def _jobs_since(catalog, since: datetime) -> list[Job]:
    with catalog.reader() as s:
        return list(s.exec(select(Job).where(Job.created >= since).order_by(Job.id)).all())


def _days(now: datetime, days: int) -> list[tuple[str, datetime]]:
    """(local date, end of that day or now) for each of the last `days` days, oldest first."""
    local = now.astimezone()
    out = []
    for back in range(days - 1, -1, -1):
        day = local.date() - timedelta(days=back)
        end = datetime.combine(day + timedelta(days=1), day_time(0), tzinfo=local.tzinfo)
        out.append((day.isoformat(), min(end, now)))
    return out


# -- protection -----------------------------------------------------------------------------------------------------

def protection(appliance, days: int, now: datetime) -> Report:
    cat = appliance.catalog
    open_alerts = Counter(a.group_name for a in appliance.alerts())
    last_jobs: dict[int, Job] = {}
    with cat.reader() as s:
        for job in s.exec(select(Job).where(Job.kind.in_(("sync", "point")), Job.finished.is_not(None))
                          .order_by(Job.id)).all():
            last_jobs[job.group_id] = job
        points = s.exec(select(RecoveryPoint.group_id, RecoveryPoint.time, RecoveryPoint.state)).all()
    newest: dict[int, datetime] = {}
    count: Counter = Counter()
    for gid, when, state in points:
        if state == "ok":
            count[gid] += 1
            newest[gid] = max(newest.get(gid, when), when)
    rows, states = [], Counter()
    for g in groups_mod.list_groups(cat):
        last = newest.get(g.id)
        age = (now - last).total_seconds() if last else None
        lag = max(0.0, age - g.sync_seconds) if age is not None else None
        job = last_jobs.get(g.id)
        if g.paused:
            state = "paused"
        elif last is None:
            state = "no point"
        elif job is not None and job.state == "failed":
            state = "failing"
        elif lag > late_after(g.sync_seconds):
            state = "late"
        else:
            state = "ok"
        states[state] += 1
        last_sync = "-" if job is None else job.state + (f": {job.reason}" if job.reason else "")
        rows.append((g.name, state, last, age, g.sync_seconds, lag, count[g.id], last_sync, open_alerts[g.name]))
    bad = sum(n for s, n in states.items() if s not in ("ok", "paused"))
    summary = [f"{text.plural(len(rows), 'group')}: "
               + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"),
               "every group has a recent good recovery point" if rows and not bad
               else f"{text.plural(bad, 'group')} {'needs' if bad == 1 else 'need'} a person: see their last sync "
               "and `tapeline alerts`" if bad
               else "no group yet: create one with `tapeline group create`"]
    table = Table("Groups", (Column("group"), Column("status"), Column("newest good point", "time"),
                             Column("age", "duration"), Column("syncs every", "duration"), Column("lag", "duration"),
                             Column("points", "int"), Column("last sync"), Column("open alerts", "int")),
                  tuple(rows), empty="no group yet")
    return Report("protection", "Protection status", now, days, tuple(summary), (table,), needs_attention=bad > 0)


# -- jobs -----------------------------------------------------------------------------------------------------------

def _retries(catalog, since: datetime) -> Counter:
    """Job id -> how many times it was run again after a transient failure (its "retried" events)."""
    with catalog.reader() as s:
        ids = s.exec(select(JobEvent.job_id).where(JobEvent.event == "retried", JobEvent.time >= since)).all()
    return Counter(ids)


def jobs(appliance, days: int, now: datetime) -> Report:
    since = now - timedelta(days=days)
    js = _jobs_since(appliance.catalog, since)
    retried = _retries(appliance.catalog, since)
    detail = []
    runs: dict[tuple[str, str], Counter] = {}
    for j in js:
        took = (j.finished - j.started).total_seconds() if j.started and j.finished else None
        detail.append((j.id, j.kind, j.group_name or "-", j.state, j.requested_by, j.created, j.started, j.finished,
                       took, retried[j.id], j.reason or ""))
        runs.setdefault((j.group_name or "-", j.kind), Counter())[j.state] += 1
    outcomes = ("completed", "completed with warnings", "failed", "cancelled", "queued", "running")
    summary_rows = tuple((group, kind, sum(c.values()), *(c[o] for o in outcomes))
                         for (group, kind), c in sorted(runs.items()))
    states = Counter(j.state for j in js)
    failed = states["failed"]
    summary = (f"{text.plural(len(js), 'job')} in the last {text.plural(days, 'day')}: "
               + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"),
               f"{failed} failed: each has an alert with its fix (`tapeline alerts`)" if failed
               else "no job failed")
    per_group = Table("Runs by group and kind", (Column("group"), Column("kind"), Column("jobs", "int"),
                                                 *(Column(o, "int") for o in outcomes)),
                      summary_rows, empty="no job in the period")
    table = Table("Jobs", (Column("id", "int"), Column("kind"), Column("group"), Column("state"),
                           Column("requested by"), Column("requested", "time"), Column("started", "time"),
                           Column("finished", "time"), Column("took", "duration"), Column("retries", "int"),
                           Column("reason")),
                  tuple(detail), empty="no job in the period")
    return Report("jobs", "Job history", now, days, summary, (table, per_group), needs_attention=failed > 0)


# -- storage --------------------------------------------------------------------------------------------------------

def storage(appliance, days: int, now: datetime) -> Report:
    cat = appliance.catalog
    size = appliance.store.size()
    groups = groups_mod.list_groups(cat)
    names = {g.id: g.name for g in groups}
    with cat.reader() as s:
        points = s.exec(select(RecoveryPoint.group_id, RecoveryPoint.time, RecoveryPoint.bytes, RecoveryPoint.state)
                        .order_by(RecoveryPoint.time)).all()
    since = now - timedelta(days=days)
    js = _jobs_since(cat, since)
    logical = sum(p.bytes for p in points)
    read, new, stored = Counter(), Counter(), Counter()
    for j in js:
        sync = (j.result or {}).get("sync")
        if sync and j.group_name:
            read[j.group_name] += int(sync.get("bytes_read") or 0)
            new[j.group_name] += int(sync.get("new_bytes") or 0)
            stored[j.group_name] += int(sync.get("stored_bytes") or 0)
    group_rows = []
    for g in groups:
        mine = [p for p in points if p.group_id == g.id and p.state == "ok"]
        group_rows.append((g.name, len(mine), mine[-1].bytes if mine else None, mine[0].time if mine else None,
                           read[g.name], new[g.name], stored[g.name]))
    day_rows = []
    for day, end in _days(now, days):
        latest: dict[int, int] = {}
        for p in points:
            if p.time <= end and p.state == "ok" and p.group_id in names:
                latest[p.group_id] = p.bytes
        day_rows.append((day, _store_at(size, js, end), sum(latest.values()),
                         *(latest.get(g.id) for g in groups)))
    growth = Table("Growth by day", (Column("day"), Column("store (estimated)", "bytes"),
                                     Column("protected, all groups", "bytes"),
                                     *(Column(g.name, "bytes") for g in groups)), tuple(day_rows))
    per_group = Table("Groups", (Column("group"), Column("points", "int"), Column("protected", "bytes"),
                                 Column("oldest point", "time"), Column("changed (read)", "bytes"),
                                 Column("new to the store", "bytes"), Column("stored (compressed)", "bytes")),
                      tuple(group_rows), empty="no group yet")
    grew = (f"; the data they protect went from {text.size(day_rows[0][2])} on {day_rows[0][0]} to "
            f"{text.size(day_rows[-1][2])} now, and the store from {text.size(day_rows[0][1])} to {text.size(size)}")
    summary = (f"the replica store takes {text.size(size)} for {text.size(logical)} of files in all recovery "
               f"points (a ratio of {logical / size:.1f} to 1)" if size else "the replica store is empty",
               f"{text.plural(len(groups), 'group')}{grew}")
    notes = ("the store's size on past days is estimated from today's size and what each job since wrote (a sync's "
             "stored bytes) and freed (a prune's freed bytes)",)
    chart = Chart(f"Growth over the last {text.plural(days, 'day')}", growth)
    return Report("storage", "Storage use and growth", now, days, summary, (growth, per_group), chart=chart,
                  notes=notes)


def _store_at(size_now: int, js: list[Job], when: datetime) -> int:
    """The store's size at `when`: its size now less what jobs finished since then wrote, plus what they freed."""
    after = 0
    for j in js:
        if j.finished and j.finished > when:
            r = j.result or {}
            after += int((r.get("sync") or {}).get("stored_bytes") or 0)
            after -= int((r.get("prune") or {}).get("bytes_freed") or 0)
    return max(0, size_now - after)


# -- tape -----------------------------------------------------------------------------------------------------------

def tape(appliance, days: int, now: datetime) -> Report:
    cat = appliance.catalog
    since = now - timedelta(days=days)
    pools = media_cat.list_pools(cat)
    libraries = {lib.id: lib.name for lib in media_cat.list_libraries(cat)}
    pool_names = {p.id: p.name for p in pools}
    carts = media_cat.list_cartridges(cat)
    sets = [s for s in tape_sets.list_sets(cat) if s.created >= since]
    pool_rows = []
    for p in pools:
        mine = [c for c in carts if c.pool_id == p.id]
        usable = [c for c in carts if c.library_id == p.library_id and c.pool_id in (None, p.id)
                  and c.state in ("scratch", "blank") and not c.write_protected and c.location_kind in IN_LIBRARY]
        written = [s for s in sets if s.pool == p.name]
        pool_rows.append((p.name, libraries.get(p.library_id, "-"), p.retention_seconds, len(mine), len(usable),
                          sum(c.state == "full" for c in mine), sum(c.bytes_written for c in mine), len(written),
                          sum(s.bytes for s in written if s.state == "ok")))
    cart_rows = tuple((c.barcode, pool_names.get(c.pool_id, "-"), c.state, c.bytes_written, c.mounts,
                       c.read_errors + c.write_errors, c.last_used, c.expires,
                       f"{c.location_kind} {c.location_number}" if c.location_number is not None else c.location_kind)
                      for c in carts if c.state != "cleaning")
    set_rows = tuple((s.id, s.group, s.pool, s.kind, s.created, s.state, s.verified, s.files, s.bytes,
                      " ".join(p.barcode for p in s.parts)) for s in sets)
    failed = sum(s.state == "failed" for s in sets)
    no_scratch = [r[0] for r in pool_rows if r[4] == 0]
    summary = (f"{text.plural(len(pools), 'pool')}, {text.plural(len(cart_rows), 'cartridge')}; "
               f"{text.plural(len(sets), 'tape set')} written in the last {text.plural(days, 'day')}"
               + (f", {failed} failed" if failed else ""),
               f"no scratch cartridge left for {text.noun(len(no_scratch), 'pool')} {', '.join(no_scratch)}: import or "
               "label some" if no_scratch
               else "every pool has a scratch cartridge to write next" if pools else "no tape pool configured")
    cartridges = Table("Cartridges", (Column("barcode"), Column("pool"), Column("state"), Column("written", "bytes"),
                                      Column("mounts", "int"), Column("errors", "int"), Column("last used", "time"),
                                      Column("expires", "time"), Column("where")), cart_rows,
                       empty="no cartridge known")
    pool_table = Table("Pools", (Column("pool"), Column("library"), Column("retention", "duration"),
                                 Column("cartridges", "int"), Column("scratch", "int"), Column("full", "int"),
                                 Column("written", "bytes"), Column("sets in period", "int"),
                                 Column("bytes in period", "bytes")), tuple(pool_rows), empty="no tape pool")
    set_table = Table("Tape sets in the period", (Column("id", "int"), Column("group"), Column("pool"),
                                                  Column("kind"), Column("written", "time"), Column("state"),
                                                  Column("verified", "time"), Column("files", "int"),
                                                  Column("bytes", "bytes"), Column("cartridges")), set_rows,
                      empty="no tape set written in the period")
    return Report("tape", "Tape usage", now, days, summary, (cartridges, pool_table, set_table),
                  needs_attention=bool(failed or no_scratch))
