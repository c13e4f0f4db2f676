"""The schedule against its clock (time-machine moves the wall clock; the monotonic clock goes on as it does): a
run missed while the daemon was down runs once within the grace and is alerted beyond it, a clock jump forward or
back runs nothing twice and skips nothing silently, and a simulated stretch of days runs every slot once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, create_group
from appliance.ops import alerts
from appliance.text import text_time
from appliance.ops.scheduler import Scheduler

UTC = timezone.utc
MONDAY = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield cat
    cat.close()


class Recorder:
    """Stands for the job engine: what the schedule asked for, and when (the engine's own tests cover the rest)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.runs: list[tuple[str, str, datetime]] = []

    def submit(self, kind, group_id, group_name, params=None, requested_by="operator"):
        assert requested_by == "schedule"
        self.runs.append((kind, group_name, datetime.now(UTC)))
        return len(self.runs), False

    def kinds(self, since=0):
        return [(k, t.strftime("%a %H:%M")) for k, _, t in self.runs[since:]]


def scheduler(catalog, engine) -> Scheduler:
    """A schedule the test alone processes (`run_due` at each clock it sets): a driven one has no thread of its own
    to process it at a moment of its own and race the test."""
    sched = Scheduler(catalog, engine, timezone=UTC, driven=True)
    sched.start()
    return sched


def messages(catalog):
    return sorted(a.message for a in alerts.list_alerts(catalog))


def test_runs_missed_while_the_daemon_was_down_run_once_within_the_grace_and_are_alerted_beyond_it(catalog):
    rec = Recorder(catalog)
    with time_machine.travel(MONDAY, tick=False) as clock:
        create_group(catalog, "a", [SourceInput("/srv/a")], 900, ("08:00",), 86400)
        sched = scheduler(catalog, rec)
        clock.move_to(MONDAY.replace(minute=16))
        sched.run_due()
        sched.stop()
        clock.move_to(MONDAY.replace(hour=10, minute=30))  # down from 07:16 to 10:30: eleven syncs, the 08:00 point
        sched = scheduler(catalog, rec)
        sched.run_due()
        assert rec.kinds() == [("sync", "Mon 07:16"), ("sync", "Mon 10:30")]
        assert messages(catalog) == [f"scheduled point of group 'a' at {text_time(MONDAY.replace(hour=8))} was "
                                     "missed: the daemon was down or the clock jumped"]
        [alert] = alerts.list_alerts(catalog)
        assert alert.fix == ("run it now with `tapeline point a` if it is needed; the next runs at "
                             f"{text_time(MONDAY + timedelta(days=1, hours=1))}")
        sched.stop()
        clock.move_to(MONDAY + timedelta(days=1, hours=1, minutes=40))  # Tuesday 08:40: 40 minutes late, in grace
        sched = scheduler(catalog, rec)
        sched.run_due()
        sched.run_due()
        assert sorted(rec.kinds(2)) == [("point", "Tue 08:40"), ("sync", "Tue 08:40")]
        sched.stop()


def test_a_clock_jump_forward_runs_what_it_skipped_once_and_back_runs_nothing_twice(catalog):
    rec = Recorder(catalog)
    with time_machine.travel(MONDAY, tick=False) as clock:
        create_group(catalog, "a", [SourceInput("/srv/a")], 900, ("08:00",), 86400)
        sched = scheduler(catalog, rec)
        try:
            clock.move_to(MONDAY.replace(hour=8, minute=1))  # forward 61 minutes at once
            assert sched.watch_clock() == pytest.approx(3660, abs=30)
            sched.run_due()
            assert sorted(rec.kinds()) == [("point", "Mon 08:01"), ("sync", "Mon 08:01")]

            clock.move_to(MONDAY.replace(hour=7, minute=11))  # back 50 minutes: 08:00 comes again on the wall
            assert sched.watch_clock() == pytest.approx(-3000, abs=30)
            next_sync = datetime.fromisoformat({e["id"]: e["next_run"] for e in sched.entries()}["sync:1"])
            # 15 minutes after the last, as ever: the jump is measured against the monotonic clock, which went on
            # by the real second or so the test took (a loaded machine made it 07:24:59)
            assert abs(next_sync - MONDAY.replace(hour=7, minute=25)) < timedelta(seconds=30)
            sched.run_due()
            clock.move_to(MONDAY.replace(hour=7, minute=26))
            sched.run_due()
            clock.move_to(MONDAY.replace(hour=8, minute=5))
            sched.run_due()
            assert rec.kinds(2) == [("sync", "Mon 07:26"), ("sync", "Mon 08:05")]  # and no second 08:00 point
            assert [m.split(" at ")[0] for m in messages(catalog)] == ["the system clock jumped back by 50 min 0 s",
                                                                       "the system clock jumped forward by 1 h 1 min"]
        finally:
            sched.stop()


def test_a_simulated_week_with_a_day_down_runs_every_slot_once_and_alerts_the_missed_ones(catalog):
    rec = Recorder(catalog)
    create_group(catalog, "a", [SourceInput("/srv/a")], 3600, ("08:00", "20:00"), 86400)
    week = MONDAY.replace(hour=0)
    down = (week + timedelta(days=1, hours=13), week + timedelta(days=2, hours=13))  # Tue 13:00 to Wed 13:00
    with time_machine.travel(week, tick=False) as clock:
        sched = scheduler(catalog, rec)
        now = week
        while now < week + timedelta(days=7):
            now += timedelta(minutes=5)
            clock.move_to(now)
            if down[0] <= now < down[1]:
                if sched is not None:
                    sched.stop()
                    sched = None
                continue
            sched = sched or scheduler(catalog, rec)
            sched.run_due()
        sched.stop()
    syncs = [t for k, _, t in rec.runs if k == "sync"]
    # Hourly, none while down (Tue 13:00 to Wed 12:00); the slots missed run once on return, at Wed 13:00. (A thread
    # of APScheduler's own used to process the schedule once more as it stopped: a 13:00 sync on Tuesday too.)
    assert syncs == [week + timedelta(hours=h) for h in range(1, 7 * 24 + 1)
                     if not down[0] <= week + timedelta(hours=h) < down[1]]
    points = [t for k, _, t in rec.runs if k == "point"]
    missed = [week + timedelta(days=1, hours=20), week + timedelta(days=2, hours=8)]
    assert points == [week + timedelta(days=d, hours=h) for d in range(7) for h in (8, 20)
                      if week + timedelta(days=d, hours=h) not in missed]
    assert messages(catalog) == [f"scheduled point of group 'a' at {text_time(t)} was missed: the daemon was down "
                                 "or the clock jumped" for t in missed]
