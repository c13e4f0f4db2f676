"""Report builders over a real catalog and job engine, where a daemon cannot easily be made to do it (a scheduled
job retried)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from appliance.catalog.engine import open_catalog
from appliance.ops.jobs import JobEngine, Limits, Outcome
from appliance.ops.reports import build, render


@pytest.fixture
def catalog(catalog_url):
    cat = open_catalog(catalog_url)
    yield cat
    cat.close()


def test_the_job_history_counts_the_retries_of_a_scheduled_job(catalog):
    def unreachable(ctx):
        return Outcome("failed", "source /srv/a is not mounted", fix="mount it", transient=True)

    engine = JobEngine(catalog, {"sync": unreachable}, limits=Limits(retries=2, retry_delay=0.01))
    engine.start()
    try:
        job_id, _ = engine.submit("sync", None, "a", requested_by="schedule")
        assert engine.wait(job_id, 30).state == "failed"
    finally:
        engine.stop()
    report = build(SimpleNamespace(catalog=catalog), "jobs", 1, datetime.now(timezone.utc))
    [row] = report.tables[0].rows
    columns = [c.name for c in report.tables[0].columns]
    assert dict(zip(columns, row))["retries"] == 2 and dict(zip(columns, row))["state"] == "failed"
    assert "1 failed" in render(report, "text")
