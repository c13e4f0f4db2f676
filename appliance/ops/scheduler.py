"""The schedule: per protection group, an interval job (its sync frequency) and one cron job per recovery-point time.

APScheduler 3.11 `BackgroundScheduler` with its jobs in the catalog database (`SQLAlchemyJobStore`), so a point
missed while the daemon was down runs once when it comes back (coalesced, within MISFIRE_GRACE). Jobs are pickled:
they name module-level functions by reference and carry only plain ids (RECIPES.md); the functions reach the running
job engine through `_engine`, which `Scheduler.start` sets.

Invariants: the catalog's groups are the truth. `reconcile` makes the scheduler's jobs match them (removing jobs of
deleted or paused groups, adding missing ones, replacing ones whose trigger changed, and leaving unchanged jobs
alone so their next run time survives a restart). Job ids: "sync:<group id>", "point:<group id>:<HH:MM>", and for
a group with a tape policy "tape-full:<group id>" and "tape-incremental:<group id>".
"""

from __future__ import annotations

import logging
from datetime import timezone

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from appliance.catalog.engine import Catalog
from appliance.catalog import tape_sets
from appliance.catalog.groups import GroupInfo, get_group_by_id, list_groups
from appliance.catalog.points import list_points
from appliance.errors import TapelineError
from appliance.media.pools import calendar_trigger

log = logging.getLogger("tapeline.scheduler")

MISFIRE_GRACE = 3600
_engine = None  # the running JobEngine; set by Scheduler.start, read by run_scheduled


def run_scheduled_tape(kind: str, group_id: int) -> None:
    """What a tape schedule entry runs: a tape backup ("full" or "incremental") of the group's newest recovery point
    into the pool of its tape policy (skipped while the group is paused or has no point yet)."""
    engine = _engine
    if engine is None:
        return
    try:
        group = get_group_by_id(engine.catalog, group_id)
        policy = tape_sets.get_policy(engine.catalog, group_id)
        if group.paused or policy is None:
            return
        points = list_points(engine.catalog, group.id, group.name)
        if not points:
            log.warning("scheduled tape backup of group %s skipped: it has no recovery point yet", group.name)
            return
        engine.submit("tape-backup", group.id, group.name,
                      {"pool": policy.pool, "kind": kind, "snapshot_id": points[-1].snapshot_id,
                       "point_id": points[-1].id}, requested_by="schedule")
    except TapelineError as exc:
        log.warning("scheduled tape backup of group %s not started: %s", group_id, exc)


def run_scheduled(kind: str, group_id: int) -> None:
    """What a schedule entry runs: queue a sync or point of the group (skipped while it is paused)."""
    engine = _engine
    if engine is None:
        return
    try:
        group = get_group_by_id(engine.catalog, group_id)
        if group.paused:
            return
        engine.submit(kind, group.id, group.name, requested_by="schedule")
    except TapelineError as exc:
        log.warning("scheduled %s of group %s not started: %s", kind, group_id, exc)


class Scheduler:
    def __init__(self, catalog: Catalog, engine, timezone=None):
        self.catalog = catalog
        self.engine = engine
        store = SQLAlchemyJobStore(engine=catalog.engine, tablename="apscheduler_jobs")
        kwargs = {"timezone": timezone} if timezone is not None else {}
        self._scheduler = BackgroundScheduler(
            jobstores={"default": store},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE}, **kwargs)

    def start(self) -> None:
        global _engine
        _engine = self.engine
        self._scheduler.start()
        self.reconcile()

    def stop(self) -> None:
        global _engine
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        _engine = None

    def wanted(self, group: GroupInfo) -> dict[str, object]:
        """The schedule entries a group should have: id -> trigger (none while paused)."""
        if group.paused:
            return {}
        out: dict[str, object] = {f"sync:{group.id}": IntervalTrigger(seconds=group.sync_seconds,
                                                                      timezone=self._scheduler.timezone)}
        for t in group.point_times:
            hour, minute = t.split(":")
            out[f"point:{group.id}:{t}"] = CronTrigger(hour=int(hour), minute=int(minute),
                                                        timezone=self._scheduler.timezone)
        policy = tape_sets.get_policy(self.catalog, group.id)
        if policy is not None:
            out[f"tape-full:{group.id}"] = calendar_trigger(policy.full, self._scheduler.timezone)
            if policy.incremental:
                out[f"tape-incremental:{group.id}"] = calendar_trigger(policy.incremental, self._scheduler.timezone)
        return out

    def update_group(self, group: GroupInfo) -> None:
        existing = {j.id: j for j in self._scheduler.get_jobs() if _group_of(j.id) == group.id}
        wanted = self.wanted(group)
        for job_id, job in existing.items():
            if job_id not in wanted:
                self._scheduler.remove_job(job_id)
        for job_id, trigger in wanted.items():
            old = existing.get(job_id)
            if old is not None and str(old.trigger) == str(trigger):
                continue
            kind = job_id.split(":")[0]
            run, arg = (run_scheduled_tape, kind[5:]) if kind.startswith("tape-") else (run_scheduled, kind)
            self._scheduler.add_job(run, trigger, args=[arg, group.id], id=job_id, name=f"{kind} {group.name}",
                                    replace_existing=True)
        log.info("schedule of group %s: %s", group.name, ", ".join(sorted(wanted)) or "paused")

    def remove_group(self, group_id: int) -> None:
        for job in self._scheduler.get_jobs():
            if _group_of(job.id) == group_id:
                self._scheduler.remove_job(job.id)

    def reconcile(self) -> None:
        groups = list_groups(self.catalog)
        ids = {g.id for g in groups}
        for job in self._scheduler.get_jobs():
            if _group_of(job.id) not in ids:
                self._scheduler.remove_job(job.id)
        for group in groups:
            self.update_group(group)

    def entries(self) -> list[dict]:
        """The schedule as plain values: id, name, next run (UTC ISO), trigger text."""
        return [{"id": j.id, "name": j.name, "trigger": str(j.trigger),
                 "next_run": j.next_run_time.astimezone(timezone.utc).isoformat() if j.next_run_time else None}
                for j in sorted(self._scheduler.get_jobs(), key=lambda j: j.id)]


def _group_of(job_id: str) -> int | None:
    parts = job_id.split(":")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
