"""The schedule: per protection group, an interval job (its sync frequency) and one cron job per recovery-point time.

APScheduler 3.11 `BackgroundScheduler` with its jobs in the catalog database (`SQLAlchemyJobStore`), so a point
missed while the daemon was down runs once when it comes back (coalesced, within MISFIRE_GRACE). Jobs are pickled:
they name module-level functions by reference and carry only plain ids (RECIPES.md); the functions reach the running
job engine through `_engine`, which `Scheduler.start` sets.

Missed runs and clock jumps (each entry stores its next run time, so a run that happened is never due again):
- Runs missed while the daemon was down, or skipped over by the clock jumping forward, are coalesced: the entry runs
  once, when the daemon is back or the jump is seen, if its latest missed slot is at most MISFIRE_GRACE old. A slot
  older than that is not run (a point made hours late is not the point of that hour) but raises a warning alert
  naming the slot and the command that makes one now; the group's next successful run of that kind resolves it.
- The clock jumping back never runs a slot again (its stored next run time is still ahead). Interval entries
  (syncs) keep their real spacing: their next run moves back by the jump, so a sync does not pause for the hour the
  clock lost. Cron entries keep their wall-clock times.
- A jump of CLOCK_JUMP seconds or more (wall clock against the monotonic clock, looked at every second by the
  daemon's watchdog) is logged and raises a warning alert saying what was done.

Invariants: the catalog's groups are the truth. `reconcile` makes the scheduler's jobs match them (removing jobs of
deleted or paused groups, adding missing ones, replacing ones whose trigger changed, and leaving unchanged jobs
alone so their next run time survives a restart). Job ids: "sync:<group id>", "point:<group id>:<HH:MM>", and for
a group with a tape policy "tape-full:<group id>" and "tape-incremental:<group id>".
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.executors.debug import DebugExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from appliance.catalog.engine import Catalog
from appliance.catalog import tape_sets
from appliance.catalog.groups import GroupInfo, get_group_by_id, list_groups
from appliance.catalog.points import list_points
from appliance.errors import TapelineError
from appliance.media.pools import calendar_trigger
from appliance.ops import alerts
from appliance.ops.messages import span_text
from appliance.text import plural, text_time

log = logging.getLogger("tapeline.scheduler")

MISFIRE_GRACE = 3600
CLOCK_JUMP = 60.0  # seconds the wall clock may drift from the monotonic clock between two looks before it "jumped"
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


def run_scheduled_report(name: str) -> None:
    """What a report entry runs: a "report-mail" job mailing the report (docs/reports.md)."""
    engine = _engine
    if engine is None:
        return
    try:
        engine.submit("report-mail", None, None, {"report": name}, requested_by="schedule")
    except TapelineError as exc:
        log.warning("scheduled mail of report %s not started: %s", name, exc)


def missed_message(kind: str, group_name: str, slot: datetime) -> str:
    """The alert of a slot missed beyond the grace (its start is what the group's next good run resolves)."""
    return (f"scheduled {kind} of group '{group_name}' at {text_time(slot)} was missed: the daemon was down or the "
            "clock jumped")


class _Driven(BaseScheduler):
    """A schedule with no thread of its own: processed only when `run_due` is called (a simulated clock)."""

    def wakeup(self) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)


class Scheduler:
    def __init__(self, catalog: Catalog, engine, timezone=None, driven: bool = False):
        """`driven`: no thread processes the schedule, whoever moves the clock calls `run_due` (due entries then run
        in that thread); else APScheduler's thread does, and due entries run in its thread pool."""
        self.catalog = catalog
        self.engine = engine
        store = SQLAlchemyJobStore(engine=catalog.engine, tablename="apscheduler_jobs")
        kwargs = {"timezone": timezone} if timezone is not None else {}
        if driven:
            kwargs["executors"] = {"default": DebugExecutor()}
        self._scheduler = (_Driven if driven else BackgroundScheduler)(
            jobstores={"default": store},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE}, **kwargs)
        self._scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        self._clocks = (time.time(), time.monotonic())
        self._reports: dict[str, CronTrigger] = {}  # "report:NAME" -> its daily trigger (set_reports)

    def set_reports(self, names: tuple[str, ...], at: str) -> None:
        """Mail these reports every day at `at` (HH:MM, local); takes effect at the next reconcile (start)."""
        hour, minute = at.split(":")
        self._reports = {f"report:{n}": CronTrigger(hour=int(hour), minute=int(minute),
                                                     timezone=self._scheduler.timezone) for n in names}

    def start(self) -> None:
        """Start running the schedule (a driven one: whenever `run_due` is called)."""
        global _engine
        _engine = self.engine
        self._clocks = (time.time(), time.monotonic())
        self._scheduler.start()
        self.reconcile()

    def run_due(self) -> None:
        """Run the entries due now (what the scheduler's own thread does when it wakes; for a test's clock)."""
        self._scheduler._process_jobs()

    def _missed(self, event) -> None:
        """A slot older than the grace: not run, but said (nothing is skipped silently)."""
        kind, group_id = event.job_id.split(":")[0], _group_of(event.job_id)
        if kind == "report":
            name = event.job_id.partition(":")[2]
            alerts.raise_alert(self.catalog, "warning", f"scheduled mail of report {name} at "
                               f"{text_time(event.scheduled_run_time)} was missed: the daemon was down or the clock "
                               "jumped", f"send it now with `tapeline report {name} --mail` if it is needed",
                               about=("report", name))
            return
        try:
            group = get_group_by_id(self.catalog, group_id)
        except TapelineError:  # the group went away meanwhile: nothing to say about it
            return
        job = self._scheduler.get_job(event.job_id)  # (its next run time is not updated yet: ask its trigger)
        upcoming = job and job.trigger.get_next_fire_time(event.scheduled_run_time,
                                                          datetime.now(self._scheduler.timezone))
        upcoming = f"; the next runs at {text_time(upcoming)}" if upcoming else ""
        command = (f"`tapeline {kind} {group.name}`" if kind in ("sync", "point")
                   else f"`tapeline tape backup {group.name} --pool POOL`")
        alerts.raise_alert(self.catalog, "warning", missed_message(kind, group.name, event.scheduled_run_time),
                           f"run it now with {command} if it is needed{upcoming}", group.name)

    def watch_clock(self) -> int:
        """Look for a clock jump since the last look (the daemon's watchdog calls this every second); returns the
        jump in seconds (0: none)."""
        wall, mono = time.time(), time.monotonic()
        jump = round((wall - self._clocks[0]) - (mono - self._clocks[1]))  # whole seconds: the jump, not the drift
        self._clocks = (wall, mono)
        if abs(jump) < CLOCK_JUMP:
            return 0
        self.clock_jumped(jump)
        return jump

    def clock_jumped(self, seconds: float) -> None:
        """The wall clock moved by `seconds` (forward > 0) beyond its own pace: keep syncs' real spacing, run what is
        due once, and say so."""
        moved = 0
        if seconds < 0:
            for job in self._scheduler.get_jobs():
                if isinstance(job.trigger, IntervalTrigger) and job.next_run_time is not None:
                    self._scheduler.modify_job(job.id, next_run_time=job.next_run_time + timedelta(seconds=seconds))
                    moved += 1
        self._scheduler.wakeup()
        way = "forward" if seconds > 0 else "back"
        done = ("runs skipped over run once now (a slot more than an hour old is alerted, not run)" if seconds > 0
                else f"nothing runs twice; {plural(moved, 'sync schedule')} moved back with it")
        log.warning("the system clock jumped %s by %d s: %s", way, abs(seconds), done)
        alerts.raise_alert(self.catalog, "warning", f"the system clock jumped {way} by {span_text(abs(seconds))} at "
                           f"{text_time(datetime.now(timezone.utc))}: {done}",
                           "check the time service (`timedatectl status`); acknowledge this with "
                           "`tapeline alerts ack ID`", about=("clock", "system clock"))

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
            if job.id.startswith("report:") and job.id not in self._reports or (
                    not job.id.startswith("report:") and _group_of(job.id) not in ids):
                self._scheduler.remove_job(job.id)
        for group in groups:
            self.update_group(group)
        for job_id, trigger in self._reports.items():
            old = self._scheduler.get_job(job_id)
            if old is None or str(old.trigger) != str(trigger):
                name = job_id.partition(":")[2]
                self._scheduler.add_job(run_scheduled_report, trigger, args=[name], id=job_id,
                                        name=f"mail report {name}", replace_existing=True)

    def entries(self) -> list[dict]:
        """The schedule as plain values: id, name, next run (UTC ISO), trigger text."""
        return [{"id": j.id, "name": j.name, "trigger": str(j.trigger),
                 "next_run": j.next_run_time.astimezone(timezone.utc).isoformat() if j.next_run_time else None}
                for j in sorted(self._scheduler.get_jobs(), key=lambda j: j.id)]


def _group_of(job_id: str) -> int | None:
    parts = job_id.split(":")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
