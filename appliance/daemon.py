"""The running appliance: catalog, store, job engine and scheduler, and the operations the API exposes.

`Appliance.open()` then `start()`; `stop()` on the way out. The HTTP layer (appliance/api) calls the methods here and
nothing else, so every rule about what an operator may ask lives in one place.

Invariants:
- This process is the only writer of the catalog and the store (the store's flock enforces it), and the only daemon
  of its data directory (`<data_dir>/tapeline.pid`: a second one is refused naming the first one's PID).
- A catalog indexes one store: on open, the store's id is recorded in a new catalog, and a catalog that records
  another store is refused (two daemons sharing a catalog would destroy each other's index).
- On start, before any job runs: jobs a killed daemon left running are marked failed; a new catalog (no group,
  point or job ever) next to a store with snapshots is rebuilt from the store; groups whose points differ from the
  store's are re-indexed, except that points the store lacks are never forgotten without an operator's word
  (an alert asks for `tapeline catalog forget-missing`; see catalog/rebuild.py for the one exception).
- Group changes reach the scheduler at once (update_group / remove_group).
- A source may not hold the data directory or the store, nor lie inside the store (it would back itself up); a
  restore may not write into either (what it wrote would be lost or mistaken for Tapeline's own files).
- A catalog that cannot be written (disk full) is an alert for as long as it lasts (`live_alerts`); the watchdog
  thread retries every WATCH_INTERVAL seconds and records the job ends that waited, with no restart.
- In development the data directory is the user's own (0700); the SQLite catalog is 0600 in either mode.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import func
from sqlmodel import select

from appliance.catalog import groups as groups_mod
from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import GroupInfo, SourceInput
from appliance.catalog.points import PointInfo, count_points, list_points, versions
from appliance.catalog.models import Alert, Drive
from appliance.catalog.rebuild import (GroupDefaults, RebuildResult, claim_store, forget_missing, rebuild_from_store,
                                       reconcile)
from appliance.config import Settings
from appliance.errors import Conflict, NotFound, TapelineError, UsageError
from appliance.media.library import open_changer
from appliance.media.media_tasks import MediaTasks
from appliance.media.service import MediaService
from appliance.media.tape_desk import TapeDesk
from appliance.media.tape_tasks import TapeTasks
from appliance.ops import alerts, plan
from appliance.ops.datalock import DataDirLock
from appliance.ops.job_records import get_job, job_events, list_jobs
from appliance.ops.jobs import JobEngine, Limits
from appliance.ops.metrics import MetricsServer
from appliance.ops.reports.mailing import ReportTasks, check_names as check_report_names
from appliance.text import plural, text_time
from appliance.ops.notify import Notifier
from appliance.ops.scheduler import Scheduler
from appliance.ops.tasks import Tasks
from appliance.store import Store
from appliance.vault.mailslot_jobs import VaultDesk, VaultTasks
from drivers.errors import DeviceError

log = logging.getLogger("tapeline.daemon")

WATCH_INTERVAL = 1.0
HOUSEKEEPING_INTERVAL = 3600.0  # seconds between two sweeps of old job history
MISSING_PREFIX = "the catalog has recovery point(s) of group"

DEMO_GROUP = "demo"
DEMO_FILES = {
    "README.txt": "This directory is protected by the Tapeline demo group.\nEdit or delete files, then run "
                  "`tapeline sync demo --wait` and `tapeline versions PATH`.\n",
    "notes/meeting.txt": "Agenda: rotation of the offsite tapes; restore test of the file server.\n",
    "notes/todo.txt": "- label new cartridges\n- check the cleaning tape\n",
    "data/numbers.csv": "".join(f"{i},{i * i}\n" for i in range(1000)),
}


class Appliance:
    def __init__(self, settings: Settings, driven: bool = False):
        """`driven`: a simulated clock drives the appliance (tests/appliance/week_harness.py): whoever moves the
        clock runs the schedule (`scheduler.run_due`) and the notifier (`notifier.step`), whose timers then follow
        the wall clock; no watchdog (it would take each move of the clock for a jump)."""
        self.settings = settings
        self.driven = driven
        self.started = datetime.now(timezone.utc)
        self.catalog = None
        self.store = None
        self.engine: JobEngine | None = None
        self.media: MediaService | None = None
        self.tape: TapeDesk | None = None
        self.vault_jobs: VaultDesk | None = None
        self.scheduler: Scheduler | None = None
        self.metrics: MetricsServer | None = None
        self.notifier: Notifier | None = None
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._unwritable_since: datetime | None = None
        self._lock: DataDirLock | None = None

    # -- life cycle ---------------------------------------------------------------------------------------------

    def open(self) -> None:
        s = self.settings
        check_report_names(s.report_mail)
        try:
            s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            if s.development and s.data_dir.stat().st_uid == os.getuid():
                s.data_dir.chmod(0o700)  # it names and holds every protected file: the developer's alone
        except OSError as exc:
            raise TapelineError(f"cannot create the data directory {s.data_dir} ({exc.strerror})",
                                "run the daemon as root, or use --data DIR for development") from exc
        self._lock = DataDirLock(s.data_dir)
        self._lock.acquire()  # before the catalog and the store: a second daemon touches neither
        self.catalog = open_catalog(s.catalog_url)
        self.store = Store.open(s.store_path, create=True)
        for warning in self.store.open_warnings:
            log.warning("store: %s", warning)
        claim_store(self.catalog, self.store, self.catalog.shown)
        self.media = MediaService(self.catalog, s)
        index = self.media.index
        self.tape = TapeDesk(self, index)
        self.vault_jobs = VaultDesk(self)
        bodies = {**Tasks(self.store).bodies(), **MediaTasks(self.media).bodies(),
                  **TapeTasks(self.store, self.media, index).bodies(), **ReportTasks(self).bodies(),
                  **VaultTasks(self.store, self.media, index, s).bodies()}
        limits = Limits(workers=s.workers, syncs=s.syncs, retries=s.retries, retry_delay=s.retry_delay_seconds,
                        keep_history=s.keep_history_seconds)
        self.engine = JobEngine(self.catalog, bodies, limits=limits, tape_slots=self._enabled_drives)
        self.media.engine = self.engine
        self.scheduler = Scheduler(self.catalog, self.engine, driven=self.driven)
        self.scheduler.set_reports(s.report_mail, s.report_mail_at)
        # Before start(): the alerts start() raises (jobs a killed daemon left) are news, not history.
        self.notifier = Notifier(self.catalog, s.mail, s.webhook_url, s.data_dir, live=self.live_alerts,
                                 timer=time.time if self.driven else time.monotonic)

    def start(self) -> None:
        self.engine.recover()
        failed = self.media.fail_unfinished()
        if failed:
            log.warning("%d tape set(s) a stopped daemon was writing do not count", failed)
        if self._catalog_is_new() and self.store.snapshots():
            log.warning("the catalog is empty but the store has recovery points: rebuilding the catalog")
            self.rebuild_catalog(check_idle=False)
        else:
            self._alert_missing(reconcile(self.catalog, self.store).missing)
        self.engine.start()
        self.scheduler.start()
        if not self.driven:
            self.notifier.start()
            self._watcher = threading.Thread(target=self._watch, name="tapeline-watchdog", daemon=True)
            self._watcher.start()
        if self.settings.metrics_listen:
            self.metrics = MetricsServer(self, self.settings.metrics_listen)
            self.metrics.start()

    def _enabled_drives(self) -> int:
        """How many tape jobs may run at once: one per enabled drive (of every library)."""
        with self.catalog.reader() as s:
            return s.exec(select(func.count()).select_from(Drive).where(Drive.enabled == True)).one()  # noqa: E712

    def _alert_missing(self, missing: dict[str, list[int]]) -> None:
        for name, ids in missing.items():
            shown = ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            alerts.raise_alert(self.catalog, "error",
                               f"{MISSING_PREFIX} '{name}' that its replica store {self.store.root} does not have "
                               f"({len(ids)}: {shown}); they are kept until you decide",
                               "if store.path names the right store and they are gone, forget them with `tapeline "
                               "catalog forget-missing`; if not, fix store.path and restart", name)

    def forget_missing(self) -> dict[str, int]:
        """The operator's word after a missing-points alert: forget the points the store does not have."""
        if self.engine.running_ids():
            raise Conflict("jobs are running", "wait for them to end (`tapeline jobs`), then run it again")
        forgotten = forget_missing(self.catalog, self.store)
        for name in forgotten:
            alerts.resolve(self.catalog, name, MISSING_PREFIX)
        return forgotten

    def _watch(self) -> None:
        """Notice a catalog that cannot be written, and recover from it without a restart."""
        swept = 0.0
        while not self._watch_stop.wait(WATCH_INTERVAL):
            try:
                self._watch_once()
                self.scheduler.watch_clock()
                if time.monotonic() - swept >= HOUSEKEEPING_INTERVAL and self.catalog.unwritable is None:
                    swept = time.monotonic()
                    self.engine.forget_old()
                    alerts.forget_old(self.catalog, self.settings.keep_history_seconds)
            except Exception:  # the watchdog must outlive whatever it watches
                log.exception("watchdog")

    def _watch_once(self) -> None:
        cat = self.catalog
        if cat.unwritable is None and not self.engine.flush_unrecorded():
            return
        if self._unwritable_since is None:
            self._unwritable_since = datetime.now(timezone.utc)
        # The ends that waited first: a probe alone may fit in space a failed write left behind.
        if self.engine.flush_unrecorded() or not cat.check_writable():
            return
        since, self._unwritable_since = self._unwritable_since, None
        log.warning("catalog: writable again")
        alerts.raise_alert(cat, "warning", f"the catalog could not be written for want of space under {cat.where} "
                           f"from {since.isoformat(timespec='seconds')} to "
                           f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; requests were refused "
                           "meanwhile and jobs that ended were recorded afterwards",
                           f"keep free space under {cat.where}; repeat what was refused; acknowledge this with "
                           "`tapeline alerts ack ID`", about=("catalog", cat.where))

    def live_alerts(self, outbox: dict | None = None) -> list[Alert]:
        """Alerts about the state of the daemon itself, as long as it lasts (not stored: the catalog may be the
        thing that cannot be written). `outbox`: the outbox's state when the caller read it already."""
        out = []
        err = self.catalog.unwritable
        if err is not None:
            out.append(Alert(severity="error", message=err.message, fix=err.fix, object_kind="catalog",
                             object_name=self.catalog.where,
                             time=self._unwritable_since or datetime.now(timezone.utc)))
        return out + (self.notifier.outbox_alerts(outbox) if self.notifier is not None else [])

    def alerts(self, include_closed: bool = False, outbox: dict | None = None) -> list[Alert]:
        return self.live_alerts(outbox) + alerts.list_alerts(self.catalog, include_closed=include_closed)

    def _catalog_is_new(self) -> bool:
        """No group, point or job ever: a fresh or lost catalog (not one whose groups were deleted on purpose)."""
        return (count_points(self.catalog) == 0 and not groups_mod.list_groups(self.catalog)
                and not list_jobs(self.catalog, limit=1))

    def stop(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.engine is not None:
            self.engine.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.media is not None:
            self.media.close()
        if self.store is not None:
            self.store.close()
        if self.catalog is not None:
            self.catalog.close()
        if self._lock is not None:
            self._lock.release()

    def register_library(self, name: str, changer_url: str, drive_url) -> None:
        """`tapeline up`'s embedded library, as `name`: its drives are as many as its changer has
        (`drive_url(i)` gives each one's URL). A library that does not answer costs a warning, not the daemon."""
        try:
            with open_changer(changer_url) as changer:
                count = len(changer.inventory().drives)
            report = self.media.register(name, changer_url, [drive_url(i) for i in range(count)])
        except (TapelineError, DeviceError) as exc:
            log.warning("tape library %r not registered: %s", name, exc)
            return
        log.info("tape library %r: %d drives, %d data cartridges and %d cleaning (%d new to the catalog)", name, count,
                 report.cartridges, len(report.cleaning), len(report.new))

    def create_demo(self) -> GroupInfo | None:
        """First start of `tapeline up`: a `demo` group over a few sample files, synced at once."""
        marker = self.settings.data_dir / ".demo-created"
        if marker.exists() or groups_mod.list_groups(self.catalog):
            return None
        src = self.settings.data_dir / "demo-source"
        for rel, text in DEMO_FILES.items():
            path = src / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_text(text)
        group = self.create_group(DEMO_GROUP, [SourceInput(str(src))])
        marker.write_text("the demo group was created once; delete this file to have it created again\n")
        self.request(DEMO_GROUP, "sync")
        log.info("created the demo group %r protecting %s", DEMO_GROUP, src)
        return group

    # -- groups -------------------------------------------------------------------------------------------------

    def _check_sources(self, sources: list[SourceInput]) -> None:
        data = os.path.realpath(self.settings.data_dir)
        store = os.path.realpath(self.settings.store_path)
        for src in sources:
            path = os.path.realpath(src.path)
            if not os.path.isdir(src.path):
                raise UsageError(f"source {src.path} is not a directory", "create it, mount it, or fix the path")
            for inner, what in ((data, "data directory"), (store, "replica store")):
                if inner == path or inner.startswith(path.rstrip("/") + "/"):
                    raise UsageError(f"source {src.path} holds Tapeline's {what} {inner}",
                                     "protect a directory that does not contain it")
            if path.startswith(store + "/"):
                raise UsageError(f"source {src.path} is inside Tapeline's replica store {store}",
                                 "protect a directory outside it")

    def create_group(self, name: str, sources: list[SourceInput], sync_seconds: int | None = None,
                     point_times: tuple[str, ...] | None = None, keep_seconds: int | None = None) -> GroupInfo:
        s = self.settings
        sources = groups_mod.normalise_sources(sources)
        self._check_sources(sources)
        group = groups_mod.create_group(self.catalog, name, sources, sync_seconds or s.sync_seconds,
                                        s.point_times if point_times is None else point_times,
                                        keep_seconds or s.keep_seconds)
        self.scheduler.update_group(group)
        return group

    def change_group(self, name: str, **changes) -> GroupInfo:
        if changes.get("add_sources"):
            self._check_sources(groups_mod.normalise_sources(list(changes["add_sources"])))
        group = groups_mod.change_group(self.catalog, name, **changes)
        self.scheduler.update_group(group)
        return group

    def delete_group(self, name: str, purge: bool = False) -> tuple[GroupInfo, int | None]:
        """Drop a group from the catalog and the schedule; with `purge`, a job then deletes its recovery points
        from the store (only those made before now, should a new group of that name start meanwhile)."""
        group = groups_mod.get_group(self.catalog, name)
        busy = [j for j in list_jobs(self.catalog, group_id=group.id) if j.state in ("queued", "running")]
        if busy:
            raise Conflict(f"group '{name}' has {plural(len(busy), 'job')} queued or running",
                           f"wait for them or cancel them (`tapeline cancel {busy[0].id}`), then delete it")
        self.scheduler.remove_group(group.id)
        info = groups_mod.delete_group(self.catalog, name)
        job_id = None
        if purge:
            job_id, _ = self.engine.submit("purge", info.id, info.name,
                                           {"group": name, "before": datetime.now(timezone.utc).isoformat()})
        return info, job_id

    # -- jobs ---------------------------------------------------------------------------------------------------

    def request(self, name: str, kind: str, params: dict | None = None) -> tuple[int, bool]:
        group = groups_mod.get_group(self.catalog, name)
        return self.engine.submit(kind, group.id, group.name, params)

    def resolve_point(self, name: str, point: str | None = None, at: datetime | None = None) -> PointInfo:
        group = groups_mod.get_group(self.catalog, name)
        points = list_points(self.catalog, group.id, group.name)
        if not points:
            raise NotFound(f"group '{name}' has no recovery point yet", f"make one with `tapeline sync {name} --wait`")
        if point is not None:
            for p in points:
                if str(p.id) == str(point) or p.snapshot_id == point:
                    return p
            ids = [str(p.id) for p in points]  # IDs count across groups: a new user tries 1
            raise NotFound(f"group '{name}' has no recovery point {point}",
                           f"its points are {', '.join(ids[:3] + ['...'] + ids[-3:] if len(ids) > 6 else ids)} "
                           f"(`tapeline points {name}`), or give --point latest")
        if at is not None:
            before = [p for p in points if p.time <= at]
            if not before:
                raise NotFound(f"group '{name}' has no recovery point at or before {text_time(at)}",
                               f"its oldest is {text_time(points[0].time)}; see `tapeline points {name}`")
            return before[-1]
        return points[-1]

    def restore(self, name: str, target: str, point: str | None = None, at: datetime | None = None,
                paths: list[str] = (), overwrite: bool = False) -> tuple[int, PointInfo]:
        if not os.path.isabs(target):
            raise UsageError(f"restore target {target!r} is not an absolute path", "give --to an absolute directory")
        self.check_target(target)
        for p in paths:
            if not os.path.isabs(p):
                raise UsageError(f"path {p!r} is not absolute", "name files by their full path on the protected machine")
            if ".." in p.split("/"):
                raise UsageError(f"path {p!r} has a '..' component",
                                 "name files by their full path as `tapeline versions` shows it")
        chosen = self.resolve_point(name, point, at)
        for p in paths:
            self._check_in_point(name, chosen, p)
        job_id, _ = self.request(name, "restore", {"snapshot_id": chosen.snapshot_id, "target": target,
                                                   "paths": list(paths), "overwrite": overwrite})
        return job_id, chosen

    def check_target(self, target: str) -> None:
        real = os.path.realpath(target)
        for inner, what in ((self.settings.store_path, "replica store"), (self.settings.data_dir, "data directory")):
            inner = os.path.realpath(inner)
            if real == inner or real.startswith(inner.rstrip("/") + "/"):
                raise UsageError(f"restore target {target} is inside Tapeline's {what} {inner}",
                                 "restore to a directory outside it (what is written there is Tapeline's to delete)")

    def _check_in_point(self, name: str, chosen: PointInfo, path: str) -> None:
        """Refuse up front a path the point does not hold (one index lookup), rather than queue a job that fails."""
        path = os.path.normpath(path)
        sources = [s.path for s in groups_mod.get_group(self.catalog, name).sources]
        if any(v.group == name and v.first_point.id <= chosen.id <= v.last_point.id
               for v in versions(self.catalog, path)):
            return
        if path in sources:
            return  # the source root itself (an empty source has no other entry)
        raise NotFound(f"{path} is not in recovery point {chosen.id} of group '{name}'",
                       f"see which points hold it with `tapeline versions {path}` and the group's sources with "
                       f"`tapeline group show {name}`")

    def points(self, name: str) -> list[PointInfo]:
        group = groups_mod.get_group(self.catalog, name)
        return list_points(self.catalog, group.id, group.name)

    def versions(self, path: str):
        if not os.path.isabs(path):
            raise UsageError(f"path {path!r} is not absolute", "name it by its full path on the protected machine")
        return versions(self.catalog, path)

    def rebuild_catalog(self, check_idle: bool = True) -> RebuildResult:
        if check_idle and self.engine.running_ids():
            raise Conflict("jobs are running", "wait for them to end (`tapeline jobs`), then rebuild the catalog")
        s = self.settings
        result = rebuild_from_store(self.catalog, self.store, GroupDefaults(s.sync_seconds, s.point_times,
                                                                            s.keep_seconds))
        if self.scheduler is not None and check_idle:
            self.scheduler.reconcile()
        return result

    # -- status -------------------------------------------------------------------------------------------------

    def status(self) -> dict:
        groups = []
        running = [j for j in map(self.engine.view, list_jobs(self.catalog, state="running")) if j.state == "running"]
        queued = [j for j in map(self.engine.view, list_jobs(self.catalog, state="queued")) if j.state == "queued"]
        busy = {j.group_id for j in running + queued}
        pointless = []
        for g in groups_mod.list_groups(self.catalog):
            pts = list_points(self.catalog, g.id, g.name)
            last = next(iter(j for j in list_jobs(self.catalog, limit=20, group_id=g.id) if j.kind in ("sync", "point")
                             and j.state not in ("queued", "running")), None)
            groups.append({"name": g.name, "paused": g.paused, "points": len(pts),
                           "latest_point": pts[-1].time.isoformat() if pts else None,
                           "damaged_points": sum(p.state == "damaged" for p in pts),
                           "last_sync": {"job": last.id, "kind": last.kind, "state": last.state,
                                         "reason": last.reason,
                                         "finished": last.finished.isoformat() if last.finished else None}
                           if last else None})
            if not pts and not g.paused and g.id not in busy:
                pointless.append(g.name)
        outbox = self.notifier.outbox_state()  # read once: its alert comes from the same state
        open_alerts = [Alert(severity="warning", group_name=n, object_kind="group", object_name=n,
                             message=f"group '{n}' has no recovery point",
                             fix=f"make one with `tapeline sync {n} --wait`") for n in pointless] + self.alerts(
            outbox=outbox)
        return {
            "daemon": {"pid": os.getpid(), "started": self.started.isoformat(), "data_dir": str(self.settings.data_dir),
                       "socket": str(self.settings.socket_path), "catalog": self.catalog.dialect,
                       "store": str(self.settings.store_path)},
            "groups": groups,
            "jobs": {"running": [j.id for j in running], "queued": [j.id for j in queued]},
            "outbox": outbox,
            "alerts": [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in a.model_dump().items()}
                       for a in open_alerts],
            "needs_attention": any(a.severity in ("error", "warning") for a in open_alerts),
        }

    def plan(self, name: str, tape: dict) -> dict:
        """`tapeline plan GROUP`: the storage plan from the group's measured change rate, beside its real use."""
        return plan.for_group(self.catalog, self.store, name, tape)

    def job(self, job_id: int):
        return self.engine.view(get_job(self.catalog, job_id))

    def job_events(self, job_id: int):
        get_job(self.catalog, job_id)  # NotFound naming the fix
        return job_events(self.catalog, job_id)

    async def wait_job(self, job_id: int, timeout: float):
        """The job once it ended, or as it is after `timeout` seconds."""
        return await self.engine.wait_for_end(job_id, timeout)

    def jobs(self, limit: int, state: str | None):
        return [self.engine.view(j) for j in list_jobs(self.catalog, limit=limit, state=state)]
