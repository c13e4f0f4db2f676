"""Requests for tape jobs, checked before a job is queued: an unknown pool, group, point, set, barcode or library,
or a path the set does not hold, is one line naming the cause and the fix, and no job is started.

Tape backups run as jobs of their group (one tape job of a group at a time; its syncs go on meanwhile: the point
being written is pinned against prune by the queued job itself); restores, verifies and rebuilds belong to no group
(they read tape only, and the group may be gone).
"""

from __future__ import annotations

import os
from datetime import datetime

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.groups import get_group
from appliance.errors import NotFound, UsageError
from appliance.media.index_cache import IndexCache
from appliance.media.pools import calendar_trigger
from appliance.media.tape_restore import select_entries


class TapeDesk:
    def __init__(self, appliance, cache: IndexCache):
        self.app = appliance
        self.cache = cache

    @property
    def catalog(self):
        return self.app.catalog

    def backup(self, group: str, pool: str, point: str | None, kind: str):
        if kind not in ("full", "incremental", "direct"):
            raise UsageError(f"tape backup kind {kind!r} is not one of full, incremental, direct",
                             "give --incremental, --direct, or neither (full)")
        info = get_group(self.catalog, group)
        cat.get_pool(self.catalog, pool)
        params = {"pool": pool, "kind": kind}
        chosen = None
        if kind != "direct":
            chosen = self.app.resolve_point(group, point)
            params.update(snapshot_id=chosen.snapshot_id, point_id=chosen.id)
        job_id, _ = self.app.engine.submit("tape-backup", info.id, info.name, params)
        return job_id, chosen

    def set_policy(self, group: str, pool: str, full: str, incremental: str | None) -> tape_sets.PolicyInfo:
        """A group's tape schedule: full sets on `full`, incremental ones on `incremental`, into `pool`."""
        info = get_group(self.catalog, group)
        row = cat.get_pool(self.catalog, pool)
        calendar_trigger(full, option="--tape-full")
        if incremental:
            calendar_trigger(incremental, option="--tape-incremental")
        tape_sets.set_policy(self.catalog, info.id, row.id, full.strip(), (incremental or "").strip() or None)
        if self.app.scheduler is not None:
            self.app.scheduler.update_group(info)
        return tape_sets.get_policy(self.catalog, info.id)

    def sets(self, group: str | None = None) -> list[tape_sets.SetInfo]:
        return tape_sets.list_sets(self.catalog, group)

    def restore(self, group: str, target: str, set_id: int | None = None, at: datetime | None = None,
                paths: list[str] = (), overwrite: bool = False):
        if not os.path.isabs(target):
            raise UsageError(f"restore target {target!r} is not an absolute path", "give --to an absolute directory")
        self.app.check_target(target)
        for p in paths:
            if not os.path.isabs(p) or ".." in p.split("/"):
                raise UsageError(f"path {p!r} is not a full path", "name files by their full original path, as "
                                 "`tapeline tape sets` and `tapeline versions` show them")
        if set_id is not None:
            chosen = tape_sets.get_set(self.catalog, set_id)
            if chosen.group != group:
                raise NotFound(f"tape set {set_id} is of group '{chosen.group}', not '{group}'",
                               f"list the sets of {group} with `tapeline tape sets {group}`")
            if chosen.state != "ok":
                raise NotFound(f"tape set {set_id} is {chosen.state}: it does not count",
                               f"choose a good one from `tapeline tape sets {group}`")
        else:
            chosen = tape_sets.set_at(self.catalog, group, at)
        try:
            indexes = self.cache.load(chosen.uuid)
        except FileNotFoundError:
            raise NotFound(f"this appliance has no index of tape set {chosen.id}",
                           "read it back from the tapes with `tapeline media rebuild --library LIBRARY --wait`") from None
        for p in paths:
            if not select_entries(indexes, [p]):
                raise NotFound(f"{p} is not in tape set {chosen.id} of group '{group}'",
                               f"see the group's sets with `tapeline tape sets {group}`")
        params = {"set_id": chosen.id, "target": target, "paths": list(paths), "overwrite": overwrite}
        job_id, _ = self.app.engine.submit("tape-restore", None, group, params)
        return job_id, chosen

    def verify(self, barcode: str) -> int:
        cart = cat.get_cartridge(self.catalog, barcode)
        if cart.library_id is None:
            raise NotFound(f"cartridge {barcode} belongs to no library", "run `tapeline library inventory LIBRARY`")
        job_id, _ = self.app.engine.submit("media-verify", None, None, {"barcode": barcode})
        return job_id

    def rebuild(self, library: str) -> int:
        cat.get_library(self.catalog, library)
        job_id, _ = self.app.engine.submit("media-rebuild", None, None, {"library": library})
        return job_id
