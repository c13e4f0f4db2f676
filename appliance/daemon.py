"""The running appliance: catalog, store, job engine and scheduler, and the operations the API exposes.

`Appliance.open()` then `start()`; `stop()` on the way out. The HTTP layer (appliance/api) calls the methods here and
nothing else, so every rule about what an operator may ask lives in one place.

Invariants:
- This process is the only writer of the catalog and the store (the store's flock enforces it).
- On start, before any job runs: jobs a killed daemon left running are marked failed; a new catalog (no group,
  point or job ever) next to a store with snapshots is rebuilt from the store; groups whose points differ from the store's are re-indexed.
- Group changes reach the scheduler at once (update_group / remove_group).
- A source may not hold the data directory or the store, nor lie inside the store (it would back itself up).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone

from appliance.catalog import groups as groups_mod
from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import GroupInfo, SourceInput
from appliance.catalog.points import PointInfo, count_points, list_points, versions
from appliance.catalog.rebuild import GroupDefaults, RebuildResult, rebuild_from_store, reconcile
from appliance.config import Settings
from appliance.errors import Conflict, NotFound, TapelineError, UsageError
from appliance.ops import alerts
from appliance.ops.jobs import JobEngine, get_job, list_jobs
from appliance.ops.messages import text_time
from appliance.ops.scheduler import Scheduler
from appliance.ops.tasks import Tasks
from appliance.store import Store

log = logging.getLogger("tapeline.daemon")

DEMO_GROUP = "demo"
DEMO_FILES = {
    "README.txt": "This directory is protected by the Tapeline demo group.\nEdit or delete files, then run "
                  "`tapeline sync demo --wait` and `tapeline versions PATH`.\n",
    "notes/meeting.txt": "Agenda: rotation of the offsite tapes; restore test of the file server.\n",
    "notes/todo.txt": "- label new cartridges\n- check the cleaning tape\n",
    "data/numbers.csv": "".join(f"{i},{i * i}\n" for i in range(1000)),
}


class Appliance:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.started = datetime.now(timezone.utc)
        self.catalog = None
        self.store = None
        self.engine: JobEngine | None = None
        self.scheduler: Scheduler | None = None

    # -- life cycle ---------------------------------------------------------------------------------------------

    def open(self) -> None:
        s = self.settings
        try:
            s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise TapelineError(f"cannot create the data directory {s.data_dir} ({exc.strerror})",
                                "run the daemon as root, or use --data DIR for development") from exc
        self.catalog = open_catalog(s.catalog_url)
        self.store = Store.open(s.store_path, create=True)
        for warning in self.store.open_warnings:
            log.warning("store: %s", warning)
        self.engine = JobEngine(self.catalog, Tasks(self.store).bodies(), workers=s.workers)
        self.scheduler = Scheduler(self.catalog, self.engine)

    def start(self) -> None:
        self.engine.recover()
        if self._catalog_is_new() and self.store.snapshots():
            log.warning("the catalog is empty but the store has recovery points: rebuilding the catalog")
            self.rebuild_catalog(check_idle=False)
        else:
            reconcile(self.catalog, self.store)
        self.engine.start()
        self.scheduler.start()

    def _catalog_is_new(self) -> bool:
        """No group, point or job ever: a fresh or lost catalog (not one whose groups were deleted on purpose)."""
        return (count_points(self.catalog) == 0 and not groups_mod.list_groups(self.catalog)
                and not list_jobs(self.catalog, limit=1))

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.engine is not None:
            self.engine.stop()
        if self.store is not None:
            self.store.close()
        if self.catalog is not None:
            self.catalog.close()

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
            raise Conflict(f"group '{name}' has {len(busy)} job(s) queued or running",
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
        for p in paths:
            if not os.path.isabs(p):
                raise UsageError(f"path {p!r} is not absolute", "name files by their full path on the protected machine")
        chosen = self.resolve_point(name, point, at)
        for p in paths:
            self._check_in_point(name, chosen, p)
        job_id, _ = self.request(name, "restore", {"snapshot_id": chosen.snapshot_id, "target": target,
                                                   "paths": list(paths), "overwrite": overwrite})
        return job_id, chosen

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
        open_alerts = alerts.list_alerts(self.catalog)
        running = list_jobs(self.catalog, state="running")
        queued = list_jobs(self.catalog, state="queued")
        return {
            "daemon": {"pid": os.getpid(), "started": self.started.isoformat(), "data_dir": str(self.settings.data_dir),
                       "socket": str(self.settings.socket_path), "catalog": self.catalog.dialect,
                       "store": str(self.settings.store_path)},
            "groups": groups,
            "jobs": {"running": [j.id for j in running], "queued": [j.id for j in queued]},
            "alerts": [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in a.model_dump().items()}
                       for a in open_alerts],
            "needs_attention": any(a.severity in ("error", "warning") for a in open_alerts),
        }

    def job(self, job_id: int):
        return get_job(self.catalog, job_id)

    async def wait_job(self, job_id: int, timeout: float):
        """The job once it ended, or as it is after `timeout` seconds."""
        return await self.engine.wait_for_end(job_id, timeout)
