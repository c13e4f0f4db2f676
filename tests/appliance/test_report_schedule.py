"""Reports mailed on a schedule: a daily entry per name in `[reports] mail`, kept beside the groups' entries, queuing
a "report-mail" job; a slot missed beyond the grace is an alert naming the command that mails it now."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, create_group, delete_group
from appliance.ops import alerts
from appliance.ops import scheduler as scheduler_mod
from appliance.ops.jobs import JobEngine, Outcome, list_jobs
from appliance.ops.scheduler import Scheduler


@pytest.fixture
def catalog(catalog_url):
    cat = open_catalog(catalog_url)
    yield cat
    cat.close()


def done(ctx):
    return Outcome("completed")


def test_report_entries_live_beside_the_groups_and_queue_a_report_mail_job(catalog):
    engine = JobEngine(catalog, {"sync": done, "point": done, "report-mail": done})
    g = create_group(catalog, "a", [SourceInput("/srv/a")], 900, (), 86400)
    sched = Scheduler(catalog, engine)
    sched.set_reports(("protection", "tape"), "06:30")
    sched.start()
    try:
        assert [e["id"] for e in sched.entries()] == ["report:protection", "report:tape", f"sync:{g.id}"]
        assert "hour='6', minute='30'" in {e["id"]: e for e in sched.entries()}["report:tape"]["trigger"]
        delete_group(catalog, "a")
        sched.reconcile()  # a group's going takes no report entry with it
        assert [e["id"] for e in sched.entries()] == ["report:protection", "report:tape"]
        scheduler_mod.run_scheduled_report("protection")
        [job] = list_jobs(catalog)
        assert (job.kind, job.group_name, job.params, job.requested_by) == (
            "report-mail", None, {"report": "protection"}, "schedule")
    finally:
        sched.stop()

    again = Scheduler(catalog, engine)  # the configuration changed: only jobs is mailed now
    again.set_reports(("jobs",), "07:00")
    again.start()
    try:
        assert [e["id"] for e in again.entries()] == ["report:jobs"]
    finally:
        again.stop()


def test_a_report_mail_missed_beyond_the_grace_is_an_alert(catalog):
    sched = Scheduler(catalog, JobEngine(catalog, {"report-mail": done}))
    sched.set_reports(("jobs",), "07:00")
    sched.start()
    try:
        slot = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
        sched._missed(JobExecutionEvent(EVENT_JOB_MISSED, "report:jobs", "default", slot))
    finally:
        sched.stop()
    [alert] = alerts.list_alerts(catalog)
    assert alert.message.startswith("scheduled mail of report jobs at ") and "was missed" in alert.message
    assert "`tapeline report jobs --mail`" in alert.fix
