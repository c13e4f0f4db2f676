"""Job bodies: what sync, point, check, restore and prune jobs do, over the protect engine and the catalog.

Invariants:
- A sync (or point) records its snapshot in the catalog in one transaction with its index changes, then runs the
  quick consistency check of the new snapshot, then prunes by the group's retention; the job's state is the worst
  of the three steps, and its result holds each step's figures.
- A source that looks unmounted or any refusal by the engine fails the job with the engine's reason; nothing of the
  store is changed by a failed sync (the engine's guarantee), and nothing of the catalog here. A source that is not
  a directory or looks unmounted is a transient failure (the job engine retries it before it alerts).
- Damage found by a check marks the points damaged in the catalog and raises one alert per engine alert, naming the
  point by its catalog id (what `tapeline points` shows). A full check that finds a damaged point whole again (the
  store cleared its notes) makes it "ok" in the catalog and acknowledges its damage alerts.
- A purge (after `group delete --purge`) deletes only the snapshots made before the group was deleted.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from datetime import datetime, timedelta
from typing import Callable

from appliance.catalog.groups import GroupInfo, get_group_by_id
from appliance.catalog.points import (clear_damaged, drop_points, list_points, mark_damaged, points_by_snapshot,
                                      record_point)
from appliance.catalog.tape_sets import pinned_snapshots
from appliance.ops import alerts
from appliance.ops.jobs import JobContext, Outcome
from appliance.ops.messages import count_warnings, split_fix
from appliance.text import plural
from appliance.protect import files as protect
from appliance.protect.files import GroupSpec, SourceSpec
from appliance.store.errors import SnapshotNotFound

log = logging.getLogger("tapeline.tasks")

MAYBE_UNMOUNTED = "check that it is mounted"  # the engine's refusal of a source that lost most of its files
_RANK = {"completed": 0, "completed with warnings": 1, "failed": 2}


def group_spec(group: GroupInfo) -> GroupSpec:
    return GroupSpec(group.name, tuple(SourceSpec(s.path, s.include, s.exclude) for s in group.sources))


def _for_operator(text: str, group: str) -> str:
    """Store and restore messages in the CLI's words: the store names commands for a GROUP it does not know, and
    says "restore with overwrite" for the option the operator types as `--overwrite`."""
    text = re.sub(r"'tapeline (check|points) GROUP( --full)?'", lambda m: f"`tapeline {m[1]} {group}{m[2] or ''}`",
                  text)
    return text.replace("restore with overwrite", "restore with `--overwrite`")


def _point_prefix(point_id: int, group_name: str) -> str:
    """How an alert about one recovery point starts (and how a healed point's alerts are found again)."""
    return f"recovery point {point_id} of group '{group_name}'"


def _worst(*states: str) -> str:
    return max(states, key=lambda s: _RANK.get(s, 2))


class Tasks:
    """The job bodies of one running appliance, bound to its store (the engine looks them up by kind)."""

    def __init__(self, store):
        self.store = store

    def bodies(self) -> dict[str, Callable[[JobContext], Outcome]]:
        return {"sync": lambda ctx: self.sync(ctx, "sync"), "point": lambda ctx: self.sync(ctx, "point"),
                "check": self.check, "restore": self.restore, "prune": self.prune, "purge": self.purge}

    # -- sync and recovery point --------------------------------------------------------------------------------

    def sync(self, ctx: JobContext, kind: str) -> Outcome:
        group = get_group_by_id(ctx.catalog, ctx.group_id)
        unreachable = [s.path for s in group.sources if not os.path.isdir(s.path)]
        if unreachable:  # an unmounted share or a host briefly away: the engine retries before it alerts
            return Outcome("failed", f"source {unreachable[0]} cannot be reached (not a directory: not mounted?)",
                           fix=f"mount it or fix the path (`tapeline group show {group.name}`), then rerun it with "
                               f"`tapeline {kind} {group.name}`", transient=True)
        # An operator who confirmed a mass deletion lifts the "source not mounted?" guard for this one run.
        max_vanished = 1.0 if ctx.params.get("accept_deletions") else 0.5
        res = protect.sync(self.store, group_spec(group), kind=kind, progress=ctx.progress, cancel=ctx.cancel,
                           max_vanished=max_vanished)
        stats = res.stats
        result = {"sync": {"files_scanned": stats.files_scanned, "files_changed": stats.files_changed,
                           "bytes_read": stats.bytes_read, "new_bytes": stats.new_bytes,
                           "stored_bytes": stats.stored_bytes, "duration_s": round(stats.duration_s, 3),
                           "changes": len(res.changes)}}
        warnings = list(res.warnings)
        if res.state == "failed" or res.snapshot is None:
            if ctx.cancel.is_set():
                return Outcome("cancelled", "cancelled by request", tuple(warnings), result)
            cause, fix = split_fix(res.reason or "the sync failed")
            return Outcome("failed", cause, tuple(w for w in warnings if w != res.reason), result,
                           fix=fix or f"fix the cause, then rerun it with `tapeline {kind} {group.name}`",
                           transient=MAYBE_UNMOUNTED in (res.reason or ""))
        snap = res.snapshot
        took = result["steps_s"] = {"sync": round(stats.duration_s, 3)}  # where a sync job's time went
        started = time.monotonic()
        point_id = record_point(ctx.catalog, group.id, snap.id, snap.kind, snap.created, snap.files, snap.bytes,
                                res.changes.brief(), state=snap.state)
        result["point"] = {"id": point_id, "snapshot_id": snap.id, "files": snap.files, "bytes": snap.bytes}
        ctx.hold("point")
        alerts.resolve(ctx.catalog, group.name, (f"{kind} of group '{group.name}' failed",
                                                 f"{kind} of group '{group.name}' (job",
                                                 f"scheduled {kind} of group '{group.name}' at"))
        took["catalog"] = round(time.monotonic() - started, 3)
        state = res.state

        # The point exists from here on: a cancel now skips the follow-up steps but does not undo the sync.
        steps = (("check", lambda: self._check_new(ctx, group, res, result, warnings)),
                 ("prune", lambda: self._prune(ctx, group, result, warnings, collect=None)))
        for name, step in steps:
            if ctx.cancel.is_set():
                warnings.append("cancelled after the recovery point was made: check and prune skipped "
                                "(they run after the next sync)")
                state = _worst(state, "completed with warnings")
                break
            started = time.monotonic()
            state = _worst(state, step())
            took[name] = round(time.monotonic() - started, 3)
        reason = res.reason if res.state != "completed" else None
        if state == "completed with warnings" and not reason:
            reason = f"{plural(count_warnings(warnings), 'warning')}; see `tapeline job {ctx.job_id}`"
        return Outcome(state, reason, tuple(warnings), result)

    def _check_new(self, ctx: JobContext, group: GroupInfo, res, result: dict, warnings: list[str]) -> str:
        ctx.progress(0, None, "checking the new recovery point")
        chk = protect.check(self.store, group_spec(group), snapshot_id=res.snapshot.id, full=False,
                            progress=ctx.progress, cancel=ctx.cancel, after=res)
        return self._apply_check(ctx, group, chk, result, warnings)

    # -- check --------------------------------------------------------------------------------------------------

    def _apply_check(self, ctx: JobContext, group: GroupInfo, chk, result: dict, warnings: list[str]) -> str:
        points = points_by_snapshot(ctx.catalog, [*chk.damaged_snapshots, *(a.snapshot_id for a in chk.alerts
                                                                           if a.snapshot_id)])
        result["check"] = {"state": chk.state, "chunks_checked": chk.chunks_checked, "repaired": chk.repaired,
                           "damaged_points": list(chk.damaged_snapshots),
                           "damaged_point_ids": [points[s].id for s in chk.damaged_snapshots if s in points],
                           "drift": chk.drift}
        if chk.damaged_snapshots:
            mark_damaged(ctx.catalog, chk.damaged_snapshots)
        for a in chk.alerts:
            p = points.get(a.snapshot_id)
            where = (f"{_point_prefix(p.id, p.group)}: " if p else
                     f"recovery point {a.snapshot_id} of group '{group.name}': " if a.snapshot_id else
                     f"group '{group.name}': ")
            alerts.raise_alert(ctx.catalog, "error" if chk.state in ("damaged", "failed") else "warning",
                               where + a.message, a.fix, p.group if p else group.name, ctx.job_id)
        healed = self._healed(ctx, group, chk)
        if healed:
            result["check"]["healed_point_ids"] = healed
        if chk.state == "failed" and ctx.cancel.is_set():
            warnings.append("consistency check cancelled")
            return "completed with warnings"
        if chk.state == "failed":
            warnings.append(f"consistency check failed: {chk.reason}")
            return "failed"
        if chk.state == "damaged":
            warnings.append(f"consistency check: {plural(len(chk.damaged_snapshots), 'recovery point')} damaged")
            return "completed with warnings"
        if chk.state == "repaired":
            warnings.append(f"consistency check repaired {plural(chk.repaired, 'chunk')} from the source")
            return "completed with warnings"
        return "completed"

    def _healed(self, ctx: JobContext, group: GroupInfo, chk) -> list[int]:
        """Points the catalog has damaged that the store holds whole again (a full check cleared them)."""
        healed = [p for p in list_points(ctx.catalog, group.id, group.name)
                  if p.state == "damaged" and p.snapshot_id in chk.checked_snapshots
                  and p.snapshot_id not in chk.damaged_snapshots and self._whole(p.snapshot_id)]
        if healed:
            clear_damaged(ctx.catalog, [p.snapshot_id for p in healed])
            alerts.resolve(ctx.catalog, group.name, tuple(_point_prefix(p.id, group.name) for p in healed)
                           + tuple(f"group '{group.name}': recovery point {p.snapshot_id}" for p in healed))
        return [p.id for p in healed]

    def _whole(self, snapshot_id: str) -> bool:
        try:
            return self.store.snapshot(snapshot_id).state == "ok"
        except SnapshotNotFound:  # gone from the store meanwhile (pruned): not whole
            return False

    def check(self, ctx: JobContext) -> Outcome:
        group = get_group_by_id(ctx.catalog, ctx.group_id)
        full = bool(ctx.params.get("full"))
        chk = protect.check(self.store, group_spec(group), snapshot_id=None, full=full, progress=ctx.progress,
                            cancel=ctx.cancel)
        if chk.state == "failed" and ctx.cancel.is_set():
            return Outcome("cancelled", "cancelled by request")
        warnings: list[str] = []
        result: dict = {}
        state = self._apply_check(ctx, group, chk, result, warnings)
        reason = chk.reason or (warnings[0] if warnings else None)
        return Outcome(state, reason, tuple(warnings), result)

    # -- prune --------------------------------------------------------------------------------------------------

    def _prune(self, ctx: JobContext, group: GroupInfo, result: dict, warnings: list[str],
               collect: bool | None = True) -> str:
        ctx.progress(0, None, "pruning expired recovery points")
        res = protect.prune(self.store, group.name, keep=timedelta(seconds=group.keep_seconds), progress=ctx.progress,
                            cancel=ctx.cancel, collect=collect, pinned=pinned_snapshots(ctx.catalog, group.id))
        dropped = drop_points(ctx.catalog, group.id, res.removed)
        result["prune"] = {"state": res.state, "removed_points": dropped, "packs_deleted": res.packs_deleted,
                           "packs_rewritten": res.packs_rewritten, "bytes_freed": res.bytes_freed,
                           "collected": res.collected}
        if res.state == "failed":
            warnings.append(f"prune failed: {res.reason}")
            return "completed with warnings"
        return "completed"

    def prune(self, ctx: JobContext) -> Outcome:
        group = get_group_by_id(ctx.catalog, ctx.group_id)
        result: dict = {}
        warnings: list[str] = []
        state = self._prune(ctx, group, result, warnings)
        return Outcome("failed" if warnings else state, warnings[0] if warnings else None, tuple(warnings), result)

    # -- restore ------------------------------------------------------------------------------------------------

    def restore(self, ctx: JobContext) -> Outcome:
        p = ctx.params
        paths = [path.encode("utf-8", "surrogateescape") for path in p.get("paths") or []] or None
        res = protect.restore(self.store, p["snapshot_id"], paths, Path(p["target"]), overwrite=bool(p.get("overwrite")),
                      progress=ctx.progress, cancel=ctx.cancel)
        result = {"restore": {"files": res.files, "bytes": res.bytes, "snapshot_id": p["snapshot_id"],
                              "target": p["target"]}}
        group = ctx.group_name or "NAME"
        reason, fix = split_fix(_for_operator(res.reason, group)) if res.reason else (None, None)
        warnings = [_for_operator(w, group) for w in res.warnings if w != res.reason]
        return Outcome(res.state, reason, tuple(warnings), result, fix=fix)

    # -- purge (the data of a deleted group) --------------------------------------------------------------------

    def purge(self, ctx: JobContext) -> Outcome:
        before = datetime.fromisoformat(ctx.params["before"])
        doomed = [s.id for s in self.store.snapshots(ctx.params["group"]) if s.created <= before]
        for i, sid in enumerate(doomed):
            if ctx.cancel.is_set():
                return Outcome("cancelled", "cancelled by request", result={"removed_points": i})
            ctx.progress(i, len(doomed), f"removing {sid}")
            self.store.delete_snapshot(sid)
        stats = self.store.gc(ctx.cancel, ctx.progress)
        return Outcome("completed", result={"removed_points": len(doomed),
                                            "gc": {k: v for k, v in stats.items() if isinstance(v, (int, bool))}})
