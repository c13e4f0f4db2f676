"""Issue 8's "Done when" as one run: a week left alone on an accelerated clock (tests/appliance/week_harness.py:
the real appliance, real syncs, aiosmtpd on loopback, the metrics over HTTP) with one source unmounted for a day and
the mail server down for an hour; then what an operator finds, all together."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from week_harness import LAGGING, MAIL_DOWN, POINT_AT, STEP, SYNC, UNMOUNTED, WEEK, run_week, sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    return run_week(tmp_path_factory.mktemp("week"))


def test_every_scheduled_slot_ran_once(week):
    for group in ("docs", "files"):
        syncs = [j for j in week.jobs if (j.kind, j.group_name) == ("sync", group)]
        slots = [round((j.created - week.created) / SYNC) for j in syncs]
        expected = (week.last_step - week.created) // SYNC
        assert sorted(slots) == list(range(1, expected + 1))  # every 3 hours, none twice, none skipped
        assert all(j.requested_by == "schedule" and j.created - week.created - s * SYNC < STEP
                   for j, s in zip(syncs, slots))
        points = [j.created.astimezone() for j in week.jobs if (j.kind, j.group_name) == ("point", group)]
        assert [(p.date(), p.strftime("%H:%M")) for p in points] == [
            ((WEEK + timedelta(days=d)).date(), POINT_AT) for d in range(7)]
    reports = [j.created.astimezone() for j in week.jobs if j.kind == "report-mail"]
    assert [(r.date(), r.hour) for r in reports] == [((WEEK + timedelta(days=d)).date(), 7) for d in range(7)]
    assert all(j.state == "completed" for j in week.jobs if j.kind == "report-mail")
    failed = [j for j in week.jobs if j.state == "failed"]
    assert all(j.group_name == "files" and UNMOUNTED[0] <= j.created <= UNMOUNTED[1] for j in failed)
    assert [j.kind for j in failed].count("sync") == 8 and [j.kind for j in failed].count("point") == 1


def test_each_failure_was_alerted_once_and_resolved_when_its_cause_went_away(week):
    [sync] = [a for a in week.alerts if a.message.startswith("sync of")]
    [point] = [a for a in week.alerts if a.message.startswith("point of")]
    [mail] = [a for a in week.alerts if a.object_kind == "mail server"]
    assert len(week.alerts) == 3
    back = UNMOUNTED[1] + timedelta(minutes=10)  # the first step after the source came back
    assert sync.message.startswith("sync of group 'files' failed (job ")
    assert "is empty where the last sync had 20 files" in sync.message and "check that it is mounted" in sync.fix
    assert point.message.startswith("point of group 'files' failed (job ")
    for alert in (sync, point):
        assert (alert.object_kind, alert.object_name, alert.severity) == ("group", "files", "error")
        assert UNMOUNTED[0] <= alert.time < UNMOUNTED[0] + STEP  # raised at the first failure ...
        assert back <= alert.resolved < back + STEP and not alert.acknowledged  # ... resolved by the next good run
    assert mail.message.startswith("notification mail cannot be sent: the mail server 127.0.0.1:")
    assert (mail.object_kind, mail.severity) == ("mail server", "error") and mail.object_name.startswith("127.0.0.1:")
    assert MAIL_DOWN[0] <= mail.time < MAIL_DOWN[0] + STEP and MAIL_DOWN[1] <= mail.resolved < MAIL_DOWN[1] + STEP
    assert week.status_end["alerts"] == [] and not week.status_end["needs_attention"]
    assert week.status_end["outbox"]["mail"] == 0 == week.outbox_end


def test_every_alert_was_mailed_once_after_the_server_came_back_in_bursts(week):
    alert_mails = [m for m in week.mails if "daily summary" not in m.subject and "Protection status" not in m.subject]
    mailed = [int(i) for m in alert_mails for i in re.findall(r"^[A-Z]+  alert (\d+)  ", m.text, re.M)]
    assert sorted(mailed) == [a.id for a in week.alerts]  # none lost, none twice
    burst, outage = alert_mails
    assert burst.subject.endswith("] 2 new alerts (2 errors)")  # the sync and the point failing together
    assert "Fix: " in burst.text and "tapeline sync files --accept-deletions" in burst.text
    assert "notification mail cannot be sent" in outage.subject
    assert not [m for m in week.mails if MAIL_DOWN[0] <= m.received < MAIL_DOWN[1]]
    assert all(MAIL_DOWN[1] <= m.received < MAIL_DOWN[1] + STEP for m in (burst, outage))


def test_a_daily_summary_each_day_saying_what_failed(week):
    summaries = [m for m in week.mails if "daily summary" in m.subject]
    assert [m.subject.rsplit(" ", 1)[1] for m in summaries] == [
        (WEEK + timedelta(days=d)).date().isoformat() for d in range(7)]
    by_day = {m.subject.rsplit(" ", 1)[1]: m.text for m in summaries}
    thursday = by_day[LAGGING.date().isoformat()]
    failed = [line for line in thursday.splitlines() if re.match(r"  job \d+ (sync|point) of files failed: ", line)]
    assert len(failed) == 8 and "Alerts raised: 3" in thursday and "Alerts open: 2" in thursday
    friday = by_day[(LAGGING + timedelta(days=1)).date().isoformat()]
    assert "Alerts open: 0" in friday and "All is well: nothing needs a person." in friday
    assert "Jobs finished: 0" not in friday


def test_the_protection_report_mailed_that_morning_shows_the_day_of_lag(week):
    reports = {m.subject.rsplit("] ", 1)[1]: m for m in week.mails if "Protection status" in m.subject}
    thursday = reports[f"Protection status {LAGGING.date().isoformat()}: needs attention"]
    assert len(reports) == 7 and sum("needs attention" in s for s in reports) == 1
    [attachment] = [p for p in thursday.message.iter_attachments() if p.get_filename().endswith(".csv")]
    rows = {r["group"]: r for r in csv.DictReader(io.StringIO(attachment.get_content()))}
    # files' newest good point is Wednesday 09:00's sync: 22 hours old, 19 past its 3-hour interval
    assert rows["files"]["status"] == "failing" and 18 * 3600 < float(rows["files"]["lag"]) < 20 * 3600
    assert rows["docs"]["status"] == "ok" and float(rows["docs"]["lag"]) == 0


def test_the_metrics_scraped_tell_the_same(week):
    lag, end = week.metrics_lagging, week.metrics_end
    assert 21 * 3600 < sample(lag, "tapeline_recovery_point_age_seconds", group="files") < 23 * 3600
    assert sample(lag, "tapeline_recovery_point_age_seconds", group="docs") < SYNC.total_seconds()
    assert sample(lag, "tapeline_alerts_open", severity="error") == 2
    assert sample(end, "tapeline_recovery_point_age_seconds", group="files") < SYNC.total_seconds() + STEP.seconds
    assert not sample(end, "tapeline_alerts_open", severity="error")
    assert sample(end, "tapeline_jobs_finished_total", kind="sync", state="failed") == 8
    assert sample(end, "tapeline_jobs_finished_total", kind="point", state="failed") == 1
    assert sample(end, "tapeline_jobs_finished_total", kind="sync", state="completed") == sum(
        j.kind == "sync" and j.state == "completed" for j in week.jobs)
    assert sample(end, "tapeline_jobs_finished_total", kind="report-mail", state="completed") == 7
