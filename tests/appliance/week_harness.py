"""A week of unattended operation on an accelerated clock, as issue 8's "Done when" puts it: the appliance left
alone with one source unmounted for a day and the mail server down for an hour. tests/appliance/test_week.py
checks what it leaves; bench/week.py prints its figures.

The real appliance (`Appliance(settings, driven=True)`: SQLite catalog, store, job engine running real syncs and
points, scheduler, notifier, report mail jobs, the Prometheus endpoint over HTTP) and a real SMTP server (aiosmtpd
on loopback). time-machine moves the wall clock in steps of STEP; at each step the schedule's due entries run, the
jobs they queued are waited for, and the notifier takes two turns two seconds apart (its poll, then the end of a
burst's quiet second), its timers following the same clock.

The week (local time, from Monday 00:00): groups `docs` and `files` sync every 3 hours and make a recovery point at
12:00; the protection report is mailed and the daily summary sent at 07:00. `files`' source is unmounted (an empty
mount point) from Wednesday 11:50 to Thursday 11:50, so Wednesday's 12:00 sync and point fail together (two alerts
in one burst); the mail server is down from Wednesday 11:50 to 12:50. The metrics are scraped on Thursday at
07:00 (a day of lag) and at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path

import httpx
import time_machine

from mail_harness import MailServer, free_port

from appliance import config
from appliance.catalog.groups import SourceInput
from appliance.catalog.models import Alert, Job
from appliance.daemon import Appliance
from appliance.ops import alerts
from appliance.ops.job_records import list_jobs
from tests.engine_harness import settle

WEEK = datetime(2026, 1, 5).astimezone()  # a Monday, 00:00 local time (no daylight saving change in the week)
STEP = timedelta(minutes=15)
SYNC = timedelta(hours=3)
POINT_AT = "12:00"
UNMOUNTED = (WEEK + timedelta(days=2, hours=11, minutes=50), WEEK + timedelta(days=3, hours=11, minutes=50))
MAIL_DOWN = (WEEK + timedelta(days=2, hours=11, minutes=50), WEEK + timedelta(days=2, hours=12, minutes=50))
LAGGING = WEEK + timedelta(days=3, hours=7)  # Thursday 07:00: the metrics scraped, the report mailed mid-outage


@dataclass
class Mail:
    received: datetime  # on the simulated clock
    message: Message

    @property
    def subject(self) -> str:
        return self.message["Subject"]

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content().replace("\r\n", "\n")


@dataclass
class WeekResult:
    created: datetime  # when the groups were created (their sync slots follow from it)
    last_step: datetime
    jobs: list[Job]
    alerts: list[Alert]
    mails: list[Mail]
    metrics_lagging: str  # the /metrics text on Thursday 07:00
    metrics_end: str
    status_end: dict
    outbox_end: int
    steps: int
    seconds: float  # real time the week took


def run_week(work: Path) -> WeekResult:
    started = time.monotonic()
    sources = {name: work / name for name in ("docs", "files")}
    for name, src in sources.items():
        (src / "sub").mkdir(parents=True)
        for i in range(20):
            (src / "sub" / f"{name}-{i}.txt").write_text(f"{name} file {i}\n" * 50)
    port, metrics_port = free_port(), free_port()
    cfg = work / "tapeline.toml"
    cfg.write_text("\n".join([
        f'data_dir = "{work / "data"}"', "[api]", f'socket = "{work / "data"}/run/tapeline.sock"',
        'group = "tapeline-none"', "[defaults]", "points = []", "[jobs]", "retries = 0",
        "[mail]", 'host = "127.0.0.1"', f"port = {port}", 'security = "none"', 'sender = "tapeline@example.com"',
        'recipients = ["ops@example.com"]', 'summary = "07:00"',
        "[reports]", 'mail = ["protection"]', 'mail_at = "07:00"',
        "[metrics]", f'listen = "127.0.0.1:{metrics_port}"']) + "\n")
    servers = [MailServer(port=port).start()]
    app = Appliance(config.load(cfg), driven=True)
    created = WEEK - timedelta(minutes=1)  # sync slots fall a minute before a step, whatever creating them took
    metrics_lagging = ""
    with time_machine.travel(created, tick=True) as clock:
        app.open()
        app.start()
        try:
            clock.move_to(created)  # opening took a while of the (ticking) clock
            for name, src in sources.items():
                app.create_group(name, [SourceInput(str(src))], int(SYNC.total_seconds()), (POINT_AT,),
                                 30 * 86400)
            now, steps = WEEK, 0
            while now < WEEK + timedelta(days=7):
                clock.move_to(now)
                app.scheduler.run_due()
                settle(app)
                _notify(app, clock, now)
                steps += 1
                if now == LAGGING:
                    metrics_lagging = _scrape(metrics_port)
                nxt = now + STEP
                if now < UNMOUNTED[0] <= nxt:
                    sources["files"].rename(work / "files-away")
                    sources["files"].mkdir()  # the empty mount point
                if now < UNMOUNTED[1] <= nxt:
                    sources["files"].rmdir()
                    (work / "files-away").rename(sources["files"])
                if now < MAIL_DOWN[0] <= nxt:
                    servers[-1].stop()
                if now < MAIL_DOWN[1] <= nxt:
                    servers.append(MailServer(port=port).start())
                last_step, now = now, nxt
            for _ in range(3):  # what the last step raised leaves too
                clock.shift(timedelta(seconds=2))
                app.notifier.step()
            metrics_end = _scrape(metrics_port)
            status_end = app.status()
            outbox_end = len(app.notifier.outbox.names("mail"))
            jobs = list_jobs(app.catalog, limit=10_000)
            every = alerts.list_alerts(app.catalog, include_closed=True, limit=10_000)
        finally:
            app.stop()
            servers[-1].stop()  # (the first one stopped for the outage)
    mails = [Mail(datetime.fromtimestamp(t).astimezone(), m)
             for server in servers for t, (_, _, m, _) in zip(server.times, server.received)]
    return WeekResult(created, last_step, sorted(jobs, key=lambda j: j.id), sorted(every, key=lambda a: a.id),
                      sorted(mails, key=lambda m: m.received), metrics_lagging, metrics_end, status_end, outbox_end,
                      steps, time.monotonic() - started)


def _notify(app: Appliance, clock, now: datetime) -> None:
    """The notifier's poll, then its next turn once a burst's quiet second has passed."""
    app.notifier.step()
    clock.move_to(now + timedelta(seconds=2))
    app.notifier.step()


def _scrape(port: int) -> str:
    resp = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    resp.raise_for_status()
    return resp.text


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from the Prometheus text format (prometheus_client's own parser)."""
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None

