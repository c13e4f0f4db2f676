"""The schedule: per group an interval sync and a cron job per recovery-point time, kept in the catalog database,
following pauses and changes; a scheduled run queues a job through the engine."""

from __future__ import annotations

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, change_group, create_group, delete_group
from appliance.ops import scheduler as scheduler_mod
from appliance.ops.job_records import list_jobs
from appliance.ops.jobs import JobEngine, Outcome
from appliance.ops.scheduler import Scheduler


@pytest.fixture
def catalog(catalog_url):
    cat = open_catalog(catalog_url)
    yield cat
    cat.close()


def ids(sched: Scheduler) -> list[str]:
    return [e["id"] for e in sched.entries()]


def test_each_group_gets_its_interval_and_cron_jobs_and_they_follow_changes(catalog):
    engine = JobEngine(catalog, {"sync": lambda ctx: Outcome("completed"), "point": lambda ctx: Outcome("completed")})
    a = create_group(catalog, "a", [SourceInput("/srv/a")], 900, ("08:00", "20:00"), 86400)
    b = create_group(catalog, "b", [SourceInput("/srv/b")], 3600, (), 86400)
    sched = Scheduler(catalog, engine)
    sched.start()
    try:
        assert ids(sched) == [f"point:{a.id}:08:00", f"point:{a.id}:20:00", f"sync:{a.id}", f"sync:{b.id}"]
        entries = {e["id"]: e for e in sched.entries()}
        assert "interval[0:15:00]" in entries[f"sync:{a.id}"]["trigger"]
        assert "hour='8', minute='0'" in entries[f"point:{a.id}:08:00"]["trigger"]

        sched.update_group(change_group(catalog, "a", paused=True))
        assert ids(sched) == [f"sync:{b.id}"]
        sched.update_group(change_group(catalog, "a", paused=False, point_times=("14:00",)))
        assert ids(sched) == [f"point:{a.id}:14:00", f"sync:{a.id}", f"sync:{b.id}"]
        delete_group(catalog, "b")
        sched.reconcile()
        assert ids(sched) == [f"point:{a.id}:14:00", f"sync:{a.id}"]
        before = {e["id"]: e["next_run"] for e in sched.entries()}
    finally:
        sched.stop()

    # The schedule lives in the catalog database: a restarted daemon finds the same next run times.
    again = Scheduler(catalog, engine)
    again.start()
    try:
        assert {e["id"]: e["next_run"] for e in again.entries()} == before
    finally:
        again.stop()


def test_a_scheduled_run_queues_a_job_unless_the_group_is_paused(catalog):
    engine = JobEngine(catalog, {"sync": lambda ctx: Outcome("completed"), "point": lambda ctx: Outcome("completed")})
    g = create_group(catalog, "a", [SourceInput("/srv/a")], 900, ("08:00",), 86400)
    sched = Scheduler(catalog, engine)
    sched.start()
    try:
        scheduler_mod.run_scheduled("point", g.id)
        [job] = list_jobs(catalog)
        assert (job.kind, job.group_name, job.requested_by) == ("point", "a", "schedule")
        change_group(catalog, "a", paused=True)
        scheduler_mod.run_scheduled("sync", g.id)
        assert len(list_jobs(catalog)) == 1
    finally:
        sched.stop()


def test_a_tape_schedule_writes_the_newest_point_full_and_incremental(catalog):
    from datetime import datetime, timezone

    from appliance.catalog import tape_sets
    from appliance.catalog.media import add_library, create_pool
    from appliance.catalog.points import record_point

    engine = JobEngine(catalog, {"tape-backup": lambda ctx: Outcome("completed")})
    g = create_group(catalog, "a", [SourceInput("/srv/a")], 900, (), 86400)
    lib = add_library(catalog, "lib", "stream+socket://127.0.0.1:1/changer", [(0, "stream+socket://127.0.0.1:1/drive0",
                                                                               None)])
    pool = create_pool(catalog, "weekly", lib.id, None, "continue", None, None, True, 0)
    tape_sets.set_policy(catalog, g.id, pool.id, "Sat 22:00", "Mon..Fri 22:00")
    sched = Scheduler(catalog, engine)
    sched.start()
    try:
        entries = {e["id"]: e["trigger"] for e in sched.entries()}
        assert "day_of_week='sat', hour='22', minute='0'" in entries[f"tape-full:{g.id}"]
        assert "day_of_week='mon-fri'" in entries[f"tape-incremental:{g.id}"]
        scheduler_mod.run_scheduled_tape("incremental", g.id)
        assert list_jobs(catalog) == []  # no recovery point yet: nothing to write
        point = record_point(catalog, g.id, "snap-1", "point", datetime.now(timezone.utc), 1, 1, [])
        scheduler_mod.run_scheduled_tape("incremental", g.id)
        [job] = list_jobs(catalog)
        assert (job.kind, job.requested_by) == ("tape-backup", "schedule")
        assert job.params == {"pool": "weekly", "kind": "incremental", "snapshot_id": "snap-1", "point_id": point}
    finally:
        sched.stop()
