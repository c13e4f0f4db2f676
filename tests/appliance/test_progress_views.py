"""What `tapeline jobs`, `tapeline job N` and `tapeline status` show of finished work, against a real daemon:
finished jobs at 100% with their reason (not a stale progress message), check and prune results as readable lines,
and a group that only made recovery points is not "never synced"."""

from __future__ import annotations

import json


def test_finished_jobs_results_and_status_read_well(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    for i in range(50):
        (src / f"f{i}").write_text(str(i) * 1000)
    d.run("group", "create", "g", "--source", str(src))
    point_job = d.json("point", "g", "--wait")["id"]
    status = d.run("status").stdout
    assert "never synced" not in status and "last point completed" in status, status  # a point, not a sync

    check_job = d.json("check", "g", "--full", "--wait")["id"]
    prune_job = d.json("prune", "g", "--wait")["id"]
    rows = {line.split()[0]: line for line in d.run("jobs").stdout.splitlines()[1:]}
    for job_id in (point_job, check_job, prune_job):
        assert "100%" in rows[str(job_id)], rows[str(job_id)]
    shown = d.run("job", str(check_job)).stdout
    assert "{" not in shown and "check      ok: " in shown and "chunks checked" in shown, shown
    pruned = d.run("job", str(prune_job)).stdout
    assert "{" not in pruned and "prune      completed: 0 points removed" in pruned, pruned
    assert "check      ok: " in d.run("job", str(point_job)).stdout
    assert json.loads(d.run("--json", "job", str(check_job)).stdout)["result"]["check"]["state"] == "ok"
