"""A week of schedules on an accelerated clock: 20 groups, their syncs and recovery points, every slot run once.

    .venv/bin/python bench/week.py [--groups 20] [--step 5] [--part schedule|operator|both]

The daemon's scheduler (APScheduler on a real SQLite catalog, the daemon's own entries and misfire rules) runs a
week of wall-clock time in steps of --step minutes (time-machine moves the clock; the scheduler, a driven one with
no thread of its own, processes what is due at each step, as the daemon's thread does when it wakes). Each group syncs every 15 minutes and makes recovery points at
08:00, 11:00, 14:00, 17:00 and 20:00. The week holds what the issue asks an appliance to live through: the daemon
down from Tuesday 13:00 to Wednesday 13:00, the clock jumping forward 2 hours on Thursday at 09:00 and back an hour
on Friday at 10:00. What the schedule asked of the job engine is counted per group and slot against what should have
run: every sync slot once while up (one on return after the outage, one after the jump forward), every point once
(points of the day down alerted, not run), none twice, nothing skipped without an alert.

Then the operator's week (issue 8's "Done when", tests/appliance/week_harness.py, also run by the slow test
tests/appliance/test_week.py): the real appliance with real syncs of two groups, mail to aiosmtpd on loopback and
the metrics over HTTP, one source unmounted for a day and the mail server down for an hour. Printed: the slots that
ran (each once), the alerts with when they were raised and resolved, the mails (alert mails, summaries, reports) and
how long after the server came back the waiting ones arrived, the metrics at the day of lag and at the end.
There is no peer to run beside these: the figures are checked against what the schedule asked for.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import time_machine

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, create_group
from appliance.ops import alerts
from appliance.ops.messages import span_text
from appliance.ops.scheduler import Scheduler

UTC = timezone.utc
WEEK = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
POINTS = ("08:00", "11:00", "14:00", "17:00", "20:00")


class Recorder:
    """The job engine's side of the schedule: what it was asked to run, and when."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.elapsed = timedelta(0)  # real time since the start of the week (the clock jumps, this does not)
        self.runs: list[tuple[str, str, datetime, timedelta]] = []

    def submit(self, kind, group_id, group_name, params=None, requested_by="operator"):
        self.runs.append((kind, group_name, datetime.now(UTC), self.elapsed))
        return len(self.runs), False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--step", type=int, default=5, help="minutes of clock per step")
    ap.add_argument("--part", choices=("schedule", "operator", "both"), default="both")
    args = ap.parse_args()
    if args.part != "operator":
        schedule_week(args)
    if args.part != "schedule":
        operator_week()


def schedule_week(args) -> None:
    catalog = open_catalog(f"sqlite:///{Path(tempfile.mkdtemp(prefix='tapeline-week-')) / 'catalog.sqlite'}")
    rec = Recorder(catalog)
    names = [f"g{i:02}" for i in range(args.groups)]
    down = (WEEK + timedelta(days=1, hours=13), WEEK + timedelta(days=2, hours=13))
    down_elapsed = (down[0] - WEEK, down[1] - WEEK)  # before the jumps: the same in real time
    jump_forward = WEEK + timedelta(days=3, hours=9)   # to 11:00
    jump_back = WEEK + timedelta(days=4, hours=10)     # to 09:00
    started = time.monotonic()
    with time_machine.travel(WEEK, tick=False) as clock:
        for name in names:
            create_group(catalog, name, [SourceInput(f"/srv/{name}")], 900, POINTS, 12 * 86400)

        def up() -> Scheduler:
            s = Scheduler(catalog, rec, timezone=UTC, driven=True)  # processed only by run_due: no thread races it
            s.start()
            return s

        sched, now, jumped = up(), WEEK, set()
        while now < WEEK + timedelta(days=7):
            now += timedelta(minutes=args.step)
            rec.elapsed += timedelta(minutes=args.step)
            if now >= jump_forward and "forward" not in jumped:
                jumped.add("forward")
                now += timedelta(hours=2)
                clock.move_to(now)
                sched.clock_jumped(7200)
            elif now >= jump_back and "back" not in jumped:
                jumped.add("back")
                now -= timedelta(hours=1)
                clock.move_to(now)
                sched.clock_jumped(-3600)
            clock.move_to(now)
            if down[0] <= now < down[1]:
                if sched is not None:
                    sched.stop()
                    sched = None
                continue
            sched = sched or up()
            sched.run_due()
        sched.stop()
    took = time.monotonic() - started

    # A point slot is its wall-clock time; a sync is twice when it follows the group's last one by less than its
    # interval in real time (after the clock went back, the same wall-clock quarter comes again, an hour later).
    points = Counter(g for k, g, _, _ in rec.runs if k == "point")
    syncs = Counter(g for k, g, _, _ in rec.runs if k == "sync")
    point_twice = [s for s, n in Counter((g, t) for k, g, t, _ in rec.runs if k == "point").items() if n > 1]
    gaps = []
    for name in names:
        times = [e for k, g, _, e in rec.runs if k == "sync" and g == name]
        gaps += [b - a for a, b in zip(times, times[1:]) if not (a < down_elapsed[1] and b > down_elapsed[0])]
    sync_twice = [gap for gap in gaps if gap < timedelta(minutes=15)]
    longest = max(gaps)
    missed_alerts = [a for a in alerts.list_alerts(catalog, limit=10_000) if a.message.startswith("scheduled point")]
    expected_points = 7 * len(POINTS) - 5  # Tue 14:00, 17:00, 20:00 and Wed 08:00, 11:00: down, alerted
    twice = len(point_twice) + len(sync_twice)
    ok = (not twice and all(points[n] == expected_points for n in names) and len(missed_alerts) == 5 * len(names)
          and longest <= timedelta(minutes=15 + args.step))
    print(f"a simulated week, {len(names)} groups, {args.step}-minute steps ({took:.1f} s): "
          f"points per group {sorted(set(points.values()))} (expected {expected_points}: 35 less the 5 of the day "
          f"down), syncs per group {sorted(set(syncs.values()))} (one per quarter hour up), longest gap between two "
          f"syncs while up {int(longest.total_seconds() // 60)} min, run twice {twice}, missed points alerted "
          f"{len(missed_alerts)} (expected {5 * len(names)}): "
          f"{'every job that should run ran once' if ok else 'MISMATCH'}")
    print(json.dumps({"groups": len(names), "points_per_group": sorted(set(points.values())),
                      "syncs_per_group": sorted(set(syncs.values())), "run_twice": twice,
                      "longest_sync_gap_min": longest.total_seconds() / 60,
                      "missed_alerted": len(missed_alerts), "ok": ok, "seconds": round(took, 1)}))


def operator_week() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "appliance"))
    from week_harness import LAGGING, MAIL_DOWN, SYNC, run_week, sample

    logging.disable(logging.ERROR)  # each failed job and alert is logged: the figures are what this prints
    week = run_week(Path(tempfile.mkdtemp(prefix="tapeline-operator-week-")))
    ran = Counter((j.kind, j.group_name or "-", j.state) for j in week.jobs)
    expected_syncs = (week.last_step - week.created) // SYNC
    slots = {g: Counter(round((j.created - week.created) / SYNC) for j in week.jobs
                        if (j.kind, j.group_name) == ("sync", g)) for g in ("docs", "files")}
    once = all(sorted(c) == list(range(1, expected_syncs + 1)) and set(c.values()) == {1} for c in slots.values())
    alert_mails = [m for m in week.mails if "daily summary" not in m.subject and "Protection status" not in m.subject]
    down = f"{MAIL_DOWN[0]:%a %H:%M}-{MAIL_DOWN[1]:%H:%M}"
    during = sum(MAIL_DOWN[0] <= m.received < MAIL_DOWN[1] for m in week.mails)
    print(f"operator's week ({week.steps} steps, {week.seconds:.1f} s): "
          f"{', '.join(f'{k} {g} {st} {n}' for (k, g, st), n in sorted(ran.items()))}; sync slots "
          f"{expected_syncs} per group, {'each ran once' if once else 'MISMATCH'}")
    for a in week.alerts:
        end = (f"resolved {a.resolved.astimezone():%a %H:%M} ({span_text((a.resolved - a.time).total_seconds())} "
               "later)" if a.resolved
               else "still open")
        print(f"  alert {a.id} {a.severity} [{a.object_kind} {a.object_name}] raised {a.time.astimezone():%a %H:%M}, "
              f"{end}: {a.message[:60]}")
    print(f"  mails {len(week.mails)}: {len(alert_mails)} of alerts ("
          f"{', '.join(m.subject.split('] ', 1)[1][:40] for m in alert_mails)}), "
          f"{sum('daily summary' in m.subject for m in week.mails)} daily summaries, "
          f"{sum('Protection status' in m.subject for m in week.mails)} protection reports; mail server down "
          f"{down}: {during} received meanwhile, the alert mails received "
          f"{', '.join(f'{m.received:%a %H:%M}' for m in alert_mails)} (the first step after it came back); "
          f"outbox left {week.outbox_end}")
    print(f"  metrics on {LAGGING:%a %H:%M}: recovery point age files "
          f"{sample(week.metrics_lagging, 'tapeline_recovery_point_age_seconds', group='files') / 3600:.1f} h, docs "
          f"{sample(week.metrics_lagging, 'tapeline_recovery_point_age_seconds', group='docs') / 3600:.1f} h, "
          f"open errors {sample(week.metrics_lagging, 'tapeline_alerts_open', severity='error'):.0f}; at the end: "
          f"files {sample(week.metrics_end, 'tapeline_recovery_point_age_seconds', group='files') / 3600:.1f} h, "
          f"open errors {sample(week.metrics_end, 'tapeline_alerts_open', severity='error') or 0:.0f}")


if __name__ == "__main__":
    main()
