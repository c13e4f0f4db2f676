"""A group's tape jobs beside its disk jobs: the engine runs a sync while the group's tape backup waits (for a
cartridge, a drive), and the recovery point that backup is to write stays pinned against the group's prune until
the job ends. And the job's speed-floor warning judges the streaming, not the load before it nor a failed drive's
attempt. Real catalog, real engine, real replica store; the job bodies stand in only for the tape side, but for the
failover, which runs the real tape backup over the simulated library."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, create_group
from appliance.catalog.tape_sets import pinned_snapshots
from appliance.media import admin, tape_backup
from appliance.media.tape_backup import Streaming
from appliance.media.tape_write import WriteStats
from appliance.ops.job_records import get_job
from appliance.ops.jobs import JobEngine, Outcome
from appliance.protect import files as protect
from appliance.protect.files import GroupSpec, SourceSpec
from appliance.store import Store
from media_harness import Job, fault


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield cat
    cat.close()


def wait_state(engine, job_id: int, state: str) -> None:
    deadline = time.monotonic() + 10
    while get_job(engine.catalog, job_id).state != state:
        assert time.monotonic() < deadline, f"job {job_id} is {get_job(engine.catalog, job_id).state}, not {state}"
        time.sleep(0.01)


def test_a_sync_runs_while_the_groups_tape_backup_waits_but_two_tape_jobs_of_a_group_do_not_overlap(catalog):
    cartridge = threading.Event()  # what the waiting tape backup waits for
    tape_started: list[int] = []

    def tape_backup(ctx):
        tape_started.append(ctx.job_id)
        while not cartridge.wait(0.01):
            if ctx.cancel.is_set():
                return Outcome("cancelled")
        return Outcome("completed")

    engine = JobEngine(catalog, {"tape-backup": tape_backup, "sync": lambda ctx: Outcome("completed")}, workers=1,
                       tape_slots=lambda: 2)
    engine.start()
    try:
        waiting, _ = engine.submit("tape-backup", 1, "files", {"pool": "p", "snapshot_id": "s1"})
        wait_state(engine, waiting, "running")
        sync, _ = engine.submit("sync", 1, "files")
        assert engine.wait(sync, timeout=10).state == "completed"
        second, _ = engine.submit("tape-backup", 1, "files", {"pool": "p", "snapshot_id": "s2"})
        time.sleep(0.3)  # a free drive slot: only the group's running tape job keeps it queued
        assert get_job(catalog, second).state == "queued" and get_job(catalog, waiting).state == "running"
        cartridge.set()
        assert engine.wait(waiting).state == "completed" and engine.wait(second).state == "completed"
        assert tape_started == [waiting, second]
    finally:
        cartridge.set()
        engine.stop()


def test_the_point_a_queued_or_running_tape_backup_is_to_write_survives_the_groups_prune(catalog, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    group = GroupSpec("files", (SourceSpec(str(src)),))
    store = Store.open(tmp_path / "store", create=True)
    try:
        (src / "a").write_bytes(b"first")
        first = protect.sync(store, group).snapshot.id
        engine = JobEngine(catalog, {"tape-backup": lambda ctx: Outcome("completed")})  # never started: stays queued
        job, _ = engine.submit("tape-backup", 7, "files", {"pool": "p", "kind": "full", "snapshot_id": first})
        assert pinned_snapshots(catalog, 7) == {first} and pinned_snapshots(catalog, 8) == set()
        (src / "a").write_bytes(b"second")
        protect.sync(store, group)
        kept = protect.prune(store, "files", keep=timedelta(0), pinned=pinned_snapshots(catalog, 7))
        assert kept.removed == () and first in [s.id for s in store.snapshots("files")]
        engine.cancel(job)  # the job ended: the point is no longer pinned
        assert pinned_snapshots(catalog, 7) == set()
        pruned = protect.prune(store, "files", keep=timedelta(0), pinned=pinned_snapshots(catalog, 7))
        assert pruned.removed == (first,)
    finally:
        store.close()


def test_the_speed_floor_is_judged_on_the_streaming_alone_not_on_the_cartridges_load():
    written = WriteStats(raw_bytes=6_000_000_000, tape_bytes=3_000_000_000, stalls=4, stall_seconds=2.0)
    fast = Streaming()  # an LTO-9's 20-minute first load before the first frame, then 10 s of streaming
    fast.since, fast.until, fast.done_then, fast.done = 1200.0, 1210.0, 0, written.raw_bytes
    assert fast.too_slow(written, 177) is None  # 300 MB/s reached the drive
    slow = Streaming()
    slow.since, slow.until, slow.done_then, slow.done = 0.0, 30.0, 0, written.raw_bytes
    said = slow.too_slow(written, 177)
    assert said is not None and "100 MB/s" in said and "177 MB/s" in said  # the rate seen and the floor
    assert slow.too_slow(WriteStats(raw_bytes=6_000_000_000, tape_bytes=3_000_000_000), 177) is None  # never waited


def test_after_a_drive_failover_the_speed_floor_judges_the_attempt_that_went_through(media, library_dir, tmp_path,
                                                                                    monkeypatch):
    """Drive 0 goes offline after the set's first frame: the set is written again on drive 1, and the streaming
    judged is that second attempt's alone (attempt 1's window, the failover, would read as a slow source)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(3 << 20))
    create_group(media.catalog, "files", [SourceInput(str(src))], 3600, (), 86400)
    admin.create_pool(media, "weekly", "vtl", "30d", None, None, False, None)
    store = Store.open(tmp_path / "store", create=True)
    judged: list[Streaming] = []

    class Judged(Streaming):
        def too_slow(self, stats, floor):
            judged.append(self)
            return super().too_slow(stats, floor)

    monkeypatch.setattr(tape_backup, "Streaming", Judged)
    acquired: list[float] = []  # when each attempt took its drive
    acquire = media.acquire_drive

    def acquire_drive(*args, **kwargs):
        acquired.append(time.monotonic())
        return acquire(*args, **kwargs)

    monkeypatch.setattr(media, "acquire_drive", acquire_drive)

    class Ctx(Job):
        catalog, group_name = media.catalog, "files"

        def hold(self, step: str) -> None:  # the first frame of an attempt is on tape
            if len(acquired) == 1:
                fault(library_dir, "drive-offline", "drive0")

        def event(self, event: str, message: str = "") -> None:
            pass

    try:
        snapshot = protect.sync(store, GroupSpec("files", (SourceSpec(str(src)),))).snapshot.id
        ctx = Ctx(1, pool="weekly", kind="full", snapshot_id=snapshot)
        outcome = tape_backup.backup(ctx, store, media, media.index)
    finally:
        store.close()
    assert outcome.state == "completed with warnings", outcome
    assert any("went offline" in w for w in outcome.warnings)
    [streaming] = judged
    assert len(acquired) == 2 and streaming.since > acquired[1]  # from attempt 2's first frame, on drive 1
