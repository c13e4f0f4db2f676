"""The job engine's priorities and limits on a real catalog: restores before backups, at most `syncs` syncs at once,
tape jobs on their own threads one per drive, transient failures of scheduled jobs retried with backoff, cancel while a retry waits,
and the history of every job, kept for `keep_history`."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, create_group
from appliance.catalog.models import utcnow
from appliance.errors import NotFound
from appliance.ops import alerts
from appliance.ops.job_records import get_job, job_events
from appliance.ops.jobs import JobEngine, Limits, Outcome
from appliance.ops.tasks import Tasks


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield cat
    cat.close()


class Bodies:
    """Job bodies that block until their job's gate opens, recording the order they started in."""

    def __init__(self):
        self.started: list[int] = []
        self.gates: dict[int, threading.Event] = {}
        self.lock = threading.Lock()

    def gate(self, job_id: int) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(job_id, threading.Event())

    def body(self, ctx):
        with self.lock:
            self.started.append(ctx.job_id)
        gate = self.gate(ctx.job_id)
        while not gate.wait(0.01):
            if ctx.cancel.is_set():
                return Outcome("cancelled", "cancelled by request")
        return Outcome("completed")

    def open_all(self):
        with self.lock:
            gates = list(self.gates.values())
        for g in gates:
            g.set()


def state_of(engine, job_id):
    return get_job(engine.catalog, job_id).state


def until(what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


KINDS = ("sync", "point", "check", "restore", "tape-backup", "inventory", "label")


def test_a_restore_goes_before_the_backups_queued_ahead_of_it(catalog):
    b = Bodies()
    engine = JobEngine(catalog, {k: b.body for k in KINDS}, limits=Limits(workers=1))
    engine.start()
    try:
        busy, _ = engine.submit("sync", 1, "a")
        until(lambda: state_of(engine, busy) == "running")
        syncs = [engine.submit("sync", g, f"g{g}")[0] for g in (2, 3)]
        restore, _ = engine.submit("restore", 4, "d", {"snapshot_id": "s", "target": "/t"})
        b.open_all()
        b.gate(busy).set()
        for job_id in (busy, restore, *syncs):
            b.gate(job_id).set()
            assert engine.wait(job_id, 10).state == "completed"
        assert b.started == [busy, restore, *syncs]
    finally:
        b.open_all()
        engine.stop()


def test_at_most_syncs_syncs_at_once_and_a_restore_still_finds_a_worker(catalog):
    b = Bodies()
    engine = JobEngine(catalog, {k: b.body for k in KINDS}, limits=Limits(workers=3, syncs=2))
    engine.start()
    try:
        first = [engine.submit("sync", 1, "a")[0], engine.submit("point", 2, "b")[0]]
        until(lambda: all(state_of(engine, j) == "running" for j in first))
        third, _ = engine.submit("sync", 3, "c")
        restore, _ = engine.submit("restore", 4, "d", {"snapshot_id": "s", "target": "/t"})
        until(lambda: state_of(engine, restore) == "running")  # the third worker: not taken by the third sync
        assert state_of(engine, third) == "queued"
        b.gate(first[0]).set()
        until(lambda: state_of(engine, third) == "running")  # a sync slot came free
        b.open_all()
        for job_id in (*first, third, restore):
            b.gate(job_id).set()
            assert engine.wait(job_id, 10).state == "completed"
    finally:
        b.open_all()
        engine.stop()


def test_tape_jobs_run_one_per_drive_beside_the_workers_and_the_rest_wait_queued(catalog):
    b = Bodies()
    drives = [1]
    engine = JobEngine(catalog, {k: b.body for k in KINDS}, limits=Limits(workers=1), tape_slots=lambda: drives[0])
    engine.start()
    try:
        tape = [engine.submit("tape-backup", g, f"t{g}", {"pool": "p"})[0] for g in (1, 2)]
        label, _ = engine.submit("label", None, "pool p", {"barcodes": ["A00001L8"]})
        until(lambda: state_of(engine, tape[0]) == "running")
        # The only worker is free for disk jobs although a tape job runs and two more wait for a drive.
        sync, _ = engine.submit("sync", 9, "s")
        b.gate(sync).set()
        assert engine.wait(sync, 10).state == "completed"
        assert [state_of(engine, j) for j in (tape[1], label)] == ["queued", "queued"]
        drives[0] = 2  # a drive enabled: the next tape job starts (the engine looks again by itself)
        until(lambda: state_of(engine, tape[1]) == "running")
        assert state_of(engine, label) == "queued"
        b.open_all()
        for job_id in (*tape, label):
            b.gate(job_id).set()
            assert engine.wait(job_id, 20).state == "completed"
    finally:
        b.open_all()
        engine.stop()


def test_a_tape_job_waiting_at_the_mail_slots_holds_no_drive(catalog):
    """One drive: an import (which never uses one) starts beside a running backup, and an export gives its slot back
    once its catalog backup is written, so the next backup runs while the export waits for the operator."""
    b = Bodies()

    def export(ctx):
        ctx.release_drive()  # as vault/export.py does once the catalog is on tape
        return b.body(ctx)
    bodies = {**{k: b.body for k in ("tape-backup", "vault-import")}, "vault-export": export}
    engine = JobEngine(catalog, bodies, limits=Limits(workers=1), tape_slots=lambda: 1)
    engine.start()
    try:
        backup, _ = engine.submit("tape-backup", 1, "t1", {"pool": "p"})
        until(lambda: state_of(engine, backup) == "running")
        imported, _ = engine.submit("vault-import", None, None, {})
        until(lambda: state_of(engine, imported) == "running")
        exported, _ = engine.submit("vault-export", None, None, {})
        assert state_of(engine, exported) == "queued"  # the one drive is the backup's
        b.gate(backup).set()
        until(lambda: state_of(engine, exported) == "running")
        after, _ = engine.submit("tape-backup", 2, "t2", {"pool": "p"})
        until(lambda: state_of(engine, after) == "running")  # the export waits on, without the drive
        assert state_of(engine, exported) == "running"
        b.open_all()
        for job_id in (backup, imported, exported, after):
            assert engine.wait(job_id, 20).state == "completed"
    finally:
        b.open_all()
        engine.stop()


def test_a_transient_failure_is_retried_with_a_growing_delay_and_alerted_only_when_retries_run_out(catalog):
    runs: dict[int, int] = {}

    def flaky(ctx):  # the source comes back on the second try
        runs[ctx.job_id] = runs.get(ctx.job_id, 0) + 1
        if ctx.group_name == "flaky" and runs[ctx.job_id] == 1 or ctx.group_name == "gone":
            return Outcome("failed", "source /srv/x cannot be reached", fix="mount it", transient=True)
        return Outcome("completed")

    engine = JobEngine(catalog, {"sync": flaky}, limits=Limits(retries=2, retry_delay=0.2))
    engine.start()
    try:
        ok, _ = engine.submit("sync", 1, "flaky", requested_by="schedule")
        gone, _ = engine.submit("sync", 2, "gone", requested_by="schedule")
        asked = engine.wait(engine.submit("sync", 3, "gone")[0], 10)  # an operator's request: no retry
        assert asked.state == "failed" and "retried" not in [e.event for e in job_events(catalog, asked.id)]
        assert engine.wait(ok, 10).state == "completed"
        job = engine.wait(gone, 10)
        assert (job.state, job.reason) == ("failed", "source /srv/x cannot be reached")
        assert runs == {ok: 2, gone: 3, asked.id: 1}
        assert [e.event for e in job_events(catalog, ok)] == ["queued", "started", "retried", "started", "completed"]
        events = job_events(catalog, gone)
        assert [e.event for e in events] == ["queued", "started", "retried", "started", "retried", "started",
                                             "failed"]
        retried = [e.message for e in events if e.event == "retried"]
        assert retried == ["retry 1 of 2 in 0.2 s: source /srv/x cannot be reached",
                           "retry 2 of 2 in 0.4 s: source /srv/x cannot be reached"]
        started = [e.time for e in events if e.event == "started"]
        assert started[1] - started[0] >= timedelta(seconds=0.2) and started[2] - started[1] >= timedelta(seconds=0.4)
        # One alert for the group (the operator's failure and the scheduled one are the same condition: it says the
        # latest), none for the job that recovered.
        [alert] = alerts.list_alerts(catalog)
        assert (alert.group_name, alert.job_id, alert.fix) == ("gone", gone, "mount it")
        assert alert.message == f"sync of group 'gone' failed (job {gone}): source /srv/x cannot be reached"
    finally:
        engine.stop()


def test_a_job_waiting_for_its_retry_shows_when_and_can_be_cancelled(catalog):
    engine = JobEngine(catalog, {"sync": lambda ctx: Outcome("failed", "drive 0 of library 'vtl' is offline",
                                                             transient=True)},
                       limits=Limits(retries=3, retry_delay=600))
    engine.start()
    try:
        job_id, _ = engine.submit("sync", 1, "a", requested_by="schedule")
        until(lambda: get_job(catalog, job_id).reason is not None)
        job = get_job(catalog, job_id)
        assert (job.state, job.reason) == ("queued", "retry 1 of 3 in 10 min: drive 0 of library 'vtl' is offline")
        assert engine.cancel(job_id).state == "cancelled"
        assert alerts.list_alerts(catalog) == []
        assert [e.event for e in job_events(catalog, job_id)] == ["queued", "started", "retried", "cancelled"]
    finally:
        engine.stop()


def test_a_sync_whose_source_is_not_mounted_is_retried_then_alerted_with_the_fix(catalog, tmp_path):
    g = create_group(catalog, "share", [SourceInput(str(tmp_path / "mnt" / "share"))], 900, (), 86400)
    engine = JobEngine(catalog, Tasks(store=None).bodies(), limits=Limits(retries=1, retry_delay=0.05))
    engine.start()
    try:
        job = engine.wait(engine.submit("sync", g.id, g.name, requested_by="schedule")[0], 10)
        assert job.state == "failed" and "cannot be reached (not a directory: not mounted?)" in job.reason
        assert [e.event for e in job_events(catalog, job.id)].count("retried") == 1
        [alert] = alerts.list_alerts(catalog)
        assert "mount it or fix the path" in alert.fix and "`tapeline sync share`" in alert.fix
    finally:
        engine.stop()


def test_finished_jobs_and_their_history_are_forgotten_after_keep_history(catalog):
    engine = JobEngine(catalog, {"sync": lambda ctx: Outcome("completed")},
                       limits=Limits(keep_history=7 * 86400))
    old, _ = engine.submit("sync", 1, "a")
    engine.start()
    try:
        assert engine.wait(old, 10).state == "completed"
        engine.stop()
        queued, _ = JobEngine(catalog, {"sync": lambda ctx: Outcome("completed")}).submit("sync", 2, "b")
        assert engine.forget_old(utcnow() + timedelta(days=6)) == 0
        assert engine.forget_old(utcnow() + timedelta(days=8)) == 1
        with pytest.raises(NotFound):
            get_job(catalog, old)
        assert job_events(catalog, old) == []
        assert get_job(catalog, queued).state == "queued"  # not finished: kept, whatever its age
    finally:
        engine.stop()


def test_a_long_forecast_holds_neither_a_worker_nor_a_drive(catalog):
    """One worker, one drive: a year's forecast (minutes of simulation) runs beside a sync and a tape backup."""
    b = Bodies()
    engine = JobEngine(catalog, {k: b.body for k in ("sync", "tape-backup", "vault-forecast")},
                       limits=Limits(workers=1), tape_slots=lambda: 1)
    engine.start()
    try:
        forecast, _ = engine.submit("vault-forecast", None, None, {"weeks": 52})
        until(lambda: state_of(engine, forecast) == "running")
        sync, _ = engine.submit("sync", 1, "a")
        backup, _ = engine.submit("tape-backup", 2, "t", {"pool": "p"})
        until(lambda: state_of(engine, sync) == "running" and state_of(engine, backup) == "running")
        b.open_all()
        for job_id in (forecast, sync, backup):
            b.gate(job_id).set()
            assert engine.wait(job_id, 20).state == "completed"
    finally:
        b.open_all()
        engine.stop()
