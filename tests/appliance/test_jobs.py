"""The job engine on a real catalog: one job per group at a time, coalescing, cancel, throttled progress, failures
raising alerts, and jobs a killed daemon left running marked failed on the next start."""

from __future__ import annotations

import asyncio
import threading
import time
import types

import pytest
from sqlalchemy import event

from appliance.catalog.engine import open_catalog
from appliance.catalog.models import Job
from appliance.errors import Conflict, TapelineError
from appliance.ops import alerts
from appliance.ops.jobs import STALE_REASON, JobEngine, Outcome


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield cat
    cat.close()


class Gate:
    """Job bodies that block until released, recording the order in which they ran."""

    def __init__(self):
        self.release = threading.Event()
        self.started: list[int] = []
        self.running = 0
        self.max_running_per_group: dict[int, int] = {}
        self._lock = threading.Lock()
        self._per_group: dict[int, int] = {}

    def body(self, ctx):
        with self._lock:
            self.started.append(ctx.job_id)
            n = self._per_group.get(ctx.group_id, 0) + 1
            self._per_group[ctx.group_id] = n
            self.max_running_per_group[ctx.group_id] = max(n, self.max_running_per_group.get(ctx.group_id, 0))
        try:
            while not self.release.wait(0.01):
                if ctx.cancel.is_set():
                    return Outcome("failed", "stopped")
            return Outcome("completed", result={"ok": True})
        finally:
            with self._lock:
                self._per_group[ctx.group_id] -= 1


def engine_with(catalog, bodies, workers=2):
    engine = JobEngine(catalog, bodies, workers=workers)
    engine.start()
    return engine


def test_one_job_per_group_and_a_sync_asked_while_one_is_queued_is_coalesced(catalog):
    gate = Gate()
    engine = engine_with(catalog, {"sync": gate.body, "check": gate.body})
    try:
        first, _ = engine.submit("sync", 1, "a")
        wait_running(engine, first)
        second, coalesced2 = engine.submit("sync", 1, "a")   # one runs: this one is queued behind it
        third, coalesced3 = engine.submit("sync", 1, "a")    # one is queued: joins it
        other, _ = engine.submit("sync", 2, "b")             # another group runs in parallel
        wait_running(engine, other)
        assert (coalesced2, coalesced3, third) == (False, True, second)
        gate.release.set()
        for job_id in (first, second, other):
            assert engine.wait(job_id).state == "completed"
        assert gate.max_running_per_group == {1: 1, 2: 1}
        assert gate.started.index(second) > gate.started.index(first)
    finally:
        gate.release.set()
        engine.stop()


def wait_running(engine, job_id, timeout=5):
    from appliance.ops.job_records import get_job
    deadline = time.monotonic() + timeout
    while get_job(engine.catalog, job_id).state != "running":
        assert time.monotonic() < deadline, f"job {job_id} did not start"
        time.sleep(0.01)


def test_a_waiter_is_woken_by_the_end_of_the_job_not_by_its_timeout(catalog):
    gate = Gate()
    engine = engine_with(catalog, {"sync": gate.body})
    try:
        job_id, _ = engine.submit("sync", 1, "a")
        wait_running(engine, job_id)
        assert asyncio.run(engine.wait_for_end(job_id, 0)).state == "running"  # a long poll that times out
        answers = []
        waiter = threading.Thread(target=lambda: answers.append(asyncio.run(engine.wait_for_end(job_id, 3600))))
        waiter.start()
        assert answers == []  # it waits while the job runs...
        gate.release.set()
        waiter.join(120)  # ...and its answer, far inside its hour, is the ended job
        assert [(j.id, j.state) for j in answers] == [(job_id, "completed")]
        assert engine._watchers == {}  # nothing left behind for a job that ended
    finally:
        gate.release.set()
        engine.stop()


def test_cancel_a_queued_and_a_running_job(catalog):
    gate = Gate()
    engine = engine_with(catalog, {"sync": gate.body, "check": gate.body})
    try:
        running, _ = engine.submit("sync", 1, "a")
        wait_running(engine, running)
        queued, _ = engine.submit("check", 1, "a")
        assert engine.cancel(queued).state == "cancelled"
        engine.cancel(running)
        job = engine.wait(running)
        assert (job.state, job.reason) == ("cancelled", "cancelled by request")
        gate.release.set()
        done, _ = engine.submit("check", 1, "a")
        assert engine.wait(done).state == "completed"
        with pytest.raises(Conflict, match="already ended"):
            engine.cancel(done)
    finally:
        gate.release.set()
        engine.stop()


def test_progress_reaches_the_catalog_a_few_times_a_second_at_most(catalog, monkeypatch):
    # The job's clock is one the body moves (1 ms per progress call), so the count of writes does not depend on the
    # machine's speed: 1000 calls over 1 s reach the catalog at 0, 0.3, 0.6 and 0.9 s, plus the last one at the end.
    clock = [100.0]
    monkeypatch.setattr("appliance.ops.jobs.time", types.SimpleNamespace(monotonic=lambda: clock[0],
                                                                         sleep=time.sleep))
    writes = []

    @event.listens_for(catalog.engine, "before_cursor_execute")
    def spy(conn, cursor, statement, params, context, executemany):
        if statement.startswith("UPDATE job SET progress_done"):
            writes.append(clock[0])

    def body(ctx):
        for n in range(1, 1001):
            ctx.progress(n, None, f"file {n}")
            clock[0] += 0.001
        return Outcome("completed")

    engine = engine_with(catalog, {"sync": body})
    try:
        job = engine.wait(engine.submit("sync", 1, "a")[0])
        assert job.state == "completed" and job.progress_done == 1000
        assert [round(t - 100.0, 3) for t in writes] == [0.0, 0.3, 0.6, 0.9, 1.0]
    finally:
        engine.stop()


def test_a_failing_job_records_the_reason_and_raises_an_alert_with_a_fix(catalog):
    def broken(ctx):
        raise TapelineError("source /srv is empty where it was full", "mount it, then sync again")

    def crashing(ctx):
        raise RuntimeError("boom")

    engine = engine_with(catalog, {"sync": broken, "check": crashing})
    try:
        job = engine.wait(engine.submit("sync", 1, "files")[0])
        assert (job.state, job.reason, job.result["fix"]) == ("failed", "source /srv is empty where it was full",
                                                             "mount it, then sync again")
        crashed = engine.wait(engine.submit("check", 1, "files")[0])
        assert crashed.state == "failed" and "RuntimeError: boom" in crashed.reason
        open_alerts = alerts.list_alerts(catalog)
        assert [a.fix for a in open_alerts] == ["see the daemon's log (journalctl -u tapeline) and report it",
                                                "mount it, then sync again"]
    finally:
        engine.stop()


def test_jobs_a_killed_daemon_left_running_are_failed_and_queued_ones_run(catalog):
    with catalog.session() as s:
        s.add(Job(id=7, kind="sync", group_id=1, group_name="files", state="running"))
        s.add(Job(id=8, kind="sync", group_id=2, group_name="home", state="queued"))
    runs = []
    engine = JobEngine(catalog, {"sync": lambda ctx: runs.append(ctx.job_id) or Outcome("completed")})
    engine.recover()  # the daemon recovers before it rebuilds the catalog, then starts the workers
    engine.start()
    try:
        assert engine.wait(8).state == "completed"
        time.sleep(0.2)
        assert runs == [8]  # once
        stale = engine.wait(7)
        assert (stale.state, stale.reason) == ("failed", STALE_REASON)
        [alert] = alerts.list_alerts(catalog)
        assert "job 7" in alert.message and alert.fix == "rerun it with `tapeline sync files` and see `tapeline job 7`"
    finally:
        engine.stop()


def test_a_worker_survives_a_crashing_body_and_a_progress_message_that_is_not_utf8(catalog):
    name = b"/srv/name-\xff\xfe.txt".decode("utf-8", "surrogateescape")  # as os.fsdecode gives it

    def crashing(ctx):
        raise RuntimeError(f"cannot read {name}")

    def odd_progress(ctx):
        ctx.progress(1, 2, name)
        return Outcome("completed with warnings", f"{name}: skipped", (f"{name}: exists, not replaced",),
                       {"restore": {"target": name}})

    ran = []
    engine = engine_with(catalog, {"check": crashing, "restore": odd_progress,
                                   "sync": lambda ctx: ran.append(ctx.job_id) or Outcome("completed")}, workers=1)
    try:
        crashed = engine.wait(engine.submit("check", 1, "files")[0], timeout=10)
        assert crashed.state == "failed" and crashed.reason == r"RuntimeError: cannot read /srv/name-\xff\xfe.txt"
        odd = engine.wait(engine.submit("restore", 1, "files", {"x": 1})[0], timeout=10)
        assert odd.state == "completed with warnings", odd.reason
        assert odd.progress_message == r"/srv/name-\xff\xfe.txt"
        assert odd.warnings == [r"/srv/name-\xff\xfe.txt: exists, not replaced"]
        assert odd.result["restore"]["target"] == r"/srv/name-\xff\xfe.txt"
        # The one worker is still alive and takes the next job; nothing is left running.
        nxt = engine.wait(engine.submit("sync", 1, "files")[0], timeout=10)
        assert nxt.state == "completed" and ran == [nxt.id]
        assert engine.running_ids() == []
    finally:
        engine.stop()


def test_a_job_whose_end_cannot_be_recorded_fails_and_the_worker_goes_on(catalog):
    engine = engine_with(catalog, {"check": lambda ctx: Outcome("completed", result={"bad": object()}),
                                   "sync": lambda ctx: Outcome("completed")}, workers=1)
    try:
        bad = engine.wait(engine.submit("check", 1, "files")[0], timeout=10)
        assert bad.state == "failed" and "not JSON serializable" in bad.reason and "\n" not in bad.reason
        assert engine.wait(engine.submit("sync", 1, "files")[0], timeout=10).state == "completed"
    finally:
        engine.stop()
