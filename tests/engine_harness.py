"""For tests that drive the appliance in process on a simulated clock (tests/appliance/week_harness.py,
tests/vault/month_harness.py): wait until the job engine has nothing left to do."""

from __future__ import annotations

from appliance.ops.job_records import list_jobs


def settle(app) -> None:
    """Wait for every job queued so far to end (a job may queue another: look again until none is left)."""
    while True:
        pending = list_jobs(app.catalog, state="queued") + list_jobs(app.catalog, state="running")
        if not pending:
            return
        for job in pending:
            app.engine.wait(job.id, timeout=300)
