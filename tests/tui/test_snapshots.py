"""Snapshots of the main screens (pytest-textual-snapshot): Monitoring and Protection with alerts, running and
finished jobs, paused and failing groups; the daemon-not-running state.

What the daemon says is fixed here (times, ids, pids change with every run): `Recorded` answers the console's calls
with documents in the API's shapes (docs/api.md), and the clock is fixed. The rest is the real console. The flows
against a real daemon are in test_monitoring.py and test_protection.py. Regenerate after a deliberate change of the
look with `pytest tests/tui/test_snapshots.py --snapshot-update`, and look at the SVGs before committing them.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tui.app import TapelineApp

NOW = datetime(2026, 3, 2, 10, 30, 0, tzinfo=timezone.utc)
SIZE = (140, 40)


def at(hms: str, day: int = 2) -> str:
    return f"2026-03-{day:02d}T{hms}+00:00"


def group(name, sources, sync_seconds=900, paused=False, tape=None, gid=1):
    return {"id": gid, "name": name, "sources": [{"id": i, "path": p, "include": [], "exclude": []}
                                                 for i, p in enumerate(sources, 1)],
            "sync_seconds": sync_seconds, "point_times": ["08:00", "12:00", "18:00"], "keep_seconds": 12 * 86400,
            "paused": paused, "created": at("08:00:00", 1), "tape": tape}


GROUPS = [
    group("finance", ["/srv/finance", "/srv/ledger"], tape={"pool": "weekly", "full": "Sun 22:00",
                                                           "incremental": "Mon..Sat 22:00"}),
    group("home", ["/home"], sync_seconds=3600, paused=True, gid=2),
    group("web", ["/var/www"], gid=3),
]
STATUS = {
    "daemon": {"pid": 4242, "started": at("07:00:00"), "data_dir": "/var/lib/tapeline", "socket": "/run/t.sock",
               "catalog": "sqlite", "store": "/var/lib/tapeline/store"},
    "groups": [
        {"name": "finance", "paused": False, "points": 14, "latest_point": at("10:20:00"), "damaged_points": 0,
         "last_sync": {"job": 41, "kind": "sync", "state": "completed", "reason": None,
                       "finished": at("10:20:04")}},
        {"name": "home", "paused": True, "points": 3, "latest_point": at("06:00:00"), "damaged_points": 0,
         "last_sync": {"job": 12, "kind": "sync", "state": "completed", "reason": None, "finished": at("06:00:09")}},
        {"name": "web", "paused": False, "points": 9, "latest_point": at("09:00:00"), "damaged_points": 0,
         "last_sync": {"job": 44, "kind": "sync", "state": "failed", "reason": "source /var/www cannot be reached",
                       "finished": at("10:15:02")}},
    ],
    "jobs": {"running": [45], "queued": [46]},
    "alerts": [
        {"id": 7, "time": at("10:15:02"), "severity": "error", "group_name": "web", "job_id": 44,
         "object_kind": "group", "object_name": "web", "resolved": None,
         "message": "sync of group 'web' failed (job 44): source /var/www cannot be reached (not mounted?)",
         "fix": "mount it or fix the path (`tapeline group show web`), then rerun it with `tapeline sync web`",
         "acknowledged": False},
        {"id": None, "time": at("10:30:00"), "severity": "warning", "group_name": "home", "job_id": None,
         "object_kind": "group", "object_name": "home", "resolved": None,
         "message": "group 'home' is paused", "fix": "resume it with `tapeline group resume home`",
         "acknowledged": False},
    ],
    "needs_attention": True,
}


def job(jid, kind, group_name, state, started, finished=None, done=0, total=None, message="", reason=None,
        warnings=()):
    return {"id": jid, "kind": kind, "group_name": group_name, "group_id": 1, "state": state, "params": {},
            "progress_done": done, "progress_total": total, "progress_message": message, "created": started,
            "started": started if state != "queued" else None, "finished": finished, "reason": reason,
            "warnings": list(warnings), "result": {}, "requested_by": "operator"}


JOBS = [
    job(46, "point", "finance", "queued", at("10:29:30")),
    job(45, "sync", "finance", "running", at("10:28:00"), done=4_200, total=10_000,
        message="4200 items scanned, 310 MiB read"),
    job(44, "sync", "web", "failed", at("10:15:00"), at("10:15:02"), reason="source /var/www cannot be reached"),
    job(43, "check", "finance", "completed with warnings", at("10:00:00"), at("10:03:10"),
        warnings=["2 chunks repaired from the pack copies"]),
    job(41, "sync", "finance", "completed", at("10:20:00"), at("10:20:04")),
]


class Recorded:
    """The daemon's answers, fixed (see the module's docstring)."""
    socket_path = "/run/tapeline/tapeline.sock"

    def snapshot(self):
        return {"status": STATUS, "jobs": JOBS}

    def groups(self):
        return GROUPS

    def group(self, name):
        return next(g for g in GROUPS if g["name"] == name)


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def console(daemon=None, socket_path="/run/tapeline/tapeline.sock") -> TapelineApp:
    app = TapelineApp(socket_path, poll_seconds=3600, now=lambda: NOW)
    if daemon is not None:
        app.daemon = daemon
    return app


async def settle(pilot) -> None:
    await pilot.pause(0.3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


def test_monitoring(snap_compare):
    assert snap_compare(console(Recorded()), terminal_size=SIZE, run_before=settle)


def test_protection(snap_compare):
    async def show(pilot):
        await pilot.press("f2")
        await settle(pilot)
    assert snap_compare(console(Recorded()), terminal_size=SIZE, run_before=show)


def test_daemon_not_running(snap_compare, tmp_path):
    app = console(socket_path="/nonexistent/run/tapeline.sock")
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_a_running_jobs_rate_comes_from_two_polls():
    """The rate column is the progress made between two polls over the time between them."""
    from pilot import rows, run, until

    class Progressing(Recorded):
        polls = 0

        def snapshot(self):
            self.polls += 1
            running = job(45, "sync", "finance", "running", at("10:28:00"), done=1000 * self.polls, total=10_000)
            return {"status": STATUS, "jobs": [running]}

    async def scenario():
        app = console(Progressing())
        app.poll_seconds = 0.2
        async with app.run_test(size=SIZE) as pilot:
            first = await until(pilot, lambda: rows(app, "#jobs"), "the running job")
            assert first[0][5] == ""  # one poll: no rate yet
            rate = await until(pilot, lambda: rows(app, "#jobs")[0][5], "its rate")
            assert rate.endswith("/s") and float(rate[:-2].replace(",", "")) > 0
    run(scenario)
