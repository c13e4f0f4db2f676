"""Faults a running daemon meets: a second daemon sharing its catalog, a store that lost points, a stop (SIGTERM) in
the middle of a sync, a full disk under the catalog. Each leaves the points, says what happened with its fix, and
recovers without losing anything or needing a restart."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time

import httpx
import pytest

from daemon_harness import TAPELINE, Daemon, make_daemon


def _source(tmp_path, files: int = 3, name: str = "src"):
    src = tmp_path / name
    src.mkdir()
    for i in range(files):
        sub = src / f"d{i // 100:03}"  # directories of 100: a sync looks for a cancel after each directory
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:05}.txt").write_text(f"file {i}\n")
    return src


def _http(daemon) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://tapeline")


def _poll(what, timeout: float = 60.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := what()):
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(interval)
    return value


# -- a catalog belongs to one store --------------------------------------------------------------------------------


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_second_daemon_with_another_store_is_refused_and_the_points_stay(db, request, tmp_path):
    url = request.getfixturevalue("pg_url") if db == "postgres" else f"sqlite:///{tmp_path / 'shared.sqlite'}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_daemon(tmp_path / "a", url).start()
    try:
        first.run("group", "create", "g", "--source", str(_source(tmp_path)))
        first.run("point", "g", "--wait")
        first.run("point", "g", "--wait")
        second = make_daemon(tmp_path / "b", url)
        run = subprocess.run([TAPELINE, *second.args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1, run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("tapeline: the catalog ") and f"indexes the replica store {first.data / 'store'}" in last
        assert f"not {second.data / 'store'}" in last and "give each daemon its own catalog (catalog.url)" in last
        assert "Traceback" not in run.stderr
        assert len(first.json("points", "g")) == 2
        status = first.json("status")
        assert status["groups"][0]["points"] == 2 and not status["needs_attention"]
    finally:
        assert first.stop() == 0


def test_a_second_daemon_on_the_same_data_directory_is_refused_naming_the_first_ones_pid(tmp_path):
    first = make_daemon(tmp_path, None).start()
    try:
        first.run("group", "create", "g", "--source", str(_source(tmp_path)))
        # Same data directory, another socket: the data directory's lock refuses it before it opens anything.
        other = tmp_path / "other.toml"
        other.write_text(first.config_file.read_text().replace(f'socket = "{first.data}/run/tapeline.sock"',
                                                               f'socket = "{tmp_path}/other.sock"'))
        # Same socket too: refused by the daemon answering on it.
        for config in (other, first.config_file):
            run = subprocess.run([TAPELINE, "serve", "--config", str(config)], capture_output=True, text=True,
                                 timeout=60, env={**os.environ, "TAPELINE_DATA": ""})
            assert run.returncode == 1, run.stderr
            [line] = [x for x in run.stderr.splitlines() if x.startswith("tapeline: ")]
            assert f"another Tapeline daemon (PID {first.proc.pid}) is" in line, line
            assert "stop it" in line and "Traceback" not in run.stderr
        assert not (tmp_path / "other.sock").exists()
        assert [g["name"] for g in first.json("group", "list")] == ["g"]  # the first one serves on, untouched
    finally:
        assert first.stop() == 0
    # A stopped (or killed) daemon leaves no lock behind: the next one starts.
    again = Daemon(first.data, first.config_file, first.args).start()
    assert again.stop() == 0


def test_a_config_typo_stops_the_daemon_with_one_line_naming_the_key_its_line_and_the_valid_keys(tmp_path):
    d = make_daemon(tmp_path, None)
    d.config_file.write_text(d.config_file.read_text() + "[jobs]\nworkers = 2\nsycns = 1\n")
    lineno = d.config_file.read_text().splitlines().index("sycns = 1") + 1
    run = subprocess.run([TAPELINE, *d.args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "TAPELINE_DATA": ""})
    assert run.returncode == 2
    assert run.stderr.strip() == (f"tapeline: {d.config_file} line {lineno}: unknown key jobs.sycns: remove it or "
                                  "correct it; did you mean syncs? [jobs] takes workers, syncs, retries, retry_delay, "
                                  "keep_history")
    assert not (d.data / "catalog.sqlite").exists()


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_points_missing_from_the_store_are_alerted_and_kept_until_an_operator_forgets_them(db, request, tmp_path):
    d = make_daemon(tmp_path, request.getfixturevalue("pg_url") if db == "postgres" else None).start()
    try:
        d.run("group", "create", "g", "--source", str(_source(tmp_path)), "--keep", "30d")
        for _ in range(3):
            d.run("point", "g", "--wait")
        points = d.json("points", "g")
        assert d.stop() == 0
        # Two of the three points leave the store behind the daemon's back (a store restored from an old copy,
        # a wrong store.path, a person's rm).
        for p in points[:2]:
            (d.data / "store" / "snapshots" / "g" / f"{p['snapshot_id']}.snap").unlink()
        d.start()
        assert [p["id"] for p in d.json("points", "g")] == [p["id"] for p in points]  # nothing forgotten
        status = d.json("status", check=1)
        [alert] = [a for a in status["alerts"] if a["group_name"] == "g"]
        assert alert["severity"] == "error" and f"({points[0]['id']}, {points[1]['id']})" not in alert["message"]
        assert f"2: {points[0]['id']}, {points[1]['id']}" in alert["message"]
        assert "`tapeline catalog forget-missing`" in alert["fix"]
        d.stop()
        d.start()  # a restart does not decide either
        assert len(d.json("points", "g")) == 3 and len(d.json("alerts")) == 1

        assert d.run("catalog", "forget-missing").stdout.strip() == \
            "group g: forgot 2 recovery points missing from the store"
        assert [p["id"] for p in d.json("points", "g")] == [points[2]["id"]]
        assert d.json("alerts") == [] and not d.json("status")["needs_attention"]
        assert d.json("catalog", "forget-missing") == {"forgotten": {}}
    finally:
        d.stop()


# -- SIGTERM during a sync ---------------------------------------------------------------------------------------


def _held(hold, job_id: int, step: str):
    """The FIFO a job held at `step` waits on (appliance/ops/jobs.py, TAPELINE_TEST_HOLD), once the job is there."""
    return _poll(lambda: (fifo := hold / f"job-{job_id}-{step}").exists() and fifo, interval=0.01)


def _release(fifo) -> None:
    with open(fifo, "wb"):
        pass


def test_a_sync_stopped_by_sigterm_is_interrupted_alerted_and_runs_again_at_the_next_start(tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "running").touch()
    d = make_daemon(tmp_path, None, env={"TAPELINE_TEST_HOLD": str(hold)}).start()
    try:
        d.run("group", "create", "g", "--source", str(_source(tmp_path)))
        job_id = d.json("sync", "g")["job"]
        fifo = _held(hold, job_id, "running")  # the job runs, held before it reads anything
        d.proc.send_signal(15)
        _poll(lambda: f"asked the running jobs to end: {job_id}" in d.log.read_text())  # its cancel is set
        (hold / "running").unlink()  # the next start's jobs run through
        _release(fifo)
        assert d.proc.wait(60) == 0
        d.start()
        job = d.json("job", str(job_id))
        assert (job["state"], job["reason"]) == ("failed", "interrupted because the daemon stopped"), job
        again = job["result"]["rerun_job"]
        assert job["result"]["fix"] == f"it runs again when the daemon starts (job {again})"
        # The alert said so; the sync that ran again at this start resolved it.
        assert _poll(lambda: d.json("job", str(again))["state"] in ("completed", "completed with warnings", "failed",
                                                                    "cancelled"))
        assert d.json("job", str(again))["state"] == "completed", d.log.read_text()
        alerts = d.json("alerts", "--all")
        [alert] = [a for a in alerts if f"(job {job_id})" in a["message"]]
        assert alert["message"].startswith(f"sync of group 'g' failed (job {job_id}): interrupted because the "
                                           "daemon stopped") and alert["resolved"], alerts
        status = d.json("status")
        assert status["groups"][0]["points"] >= 1 and not status["needs_attention"], status
    finally:
        d.stop()


def test_status_is_not_all_good_while_a_group_has_no_point(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    d.run("group", "create", "g", "--source", str(_source(tmp_path)))
    out = d.run("status", check=3).stdout
    assert "group 'g' has no recovery point: make one with `tapeline sync g --wait`" in out
    assert not out.rstrip().endswith("all good")
    d.run("sync", "g", "--wait")
    assert d.run("status").stdout.rstrip().endswith("all good")


# -- a full disk under the catalog --------------------------------------------------------------------------------


def _fill(directory) -> None:
    """Take every free block of the filesystem under `directory`."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_under_the_catalog_is_alerted_answered_in_json_and_recovered_without_a_restart(tmp_path):
    cat_dir = tmp_path / "catalog"
    cat_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(cat_dir)], capture_output=True,
                             text=True)
    assert mounted.returncode == 0, f"this test needs a tmpfs of its own (run as root): {mounted.stderr}"
    d = None
    try:
        catalog = cat_dir / "catalog.sqlite"
        hold = tmp_path / "hold"
        hold.mkdir()
        (hold / "running").touch()
        d = make_daemon(tmp_path, f"sqlite:///{catalog}", env={"TAPELINE_TEST_HOLD": str(hold)}).start()
        d.run("group", "create", "g", "--source", str(_source(tmp_path, 500)))
        d.run("group", "create", "h", "--source", str(_source(tmp_path, 3, "other")))
        job_id = d.json("sync", "g")["job"]
        fifo = _held(hold, job_id, "running")  # recorded running, held before it reads anything
        (hold / "running").unlink()
        # No room left in the WAL either: every write must take new space. Then the disk fills.
        probe = sqlite3.connect(catalog, isolation_level=None, timeout=30)
        assert probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        _fill(cat_dir)
        _release(fifo)

        # The job's end cannot be recorded, yet it is seen to end: --wait returns, cancel says it ended.
        waited = d.run("--json", "job", str(job_id), "--wait", check=1, timeout=60)
        assert '"state": "failed"' in waited.stdout
        assert "already ended (failed)" in d.run("cancel", str(job_id), check=1).stderr
        assert probe.execute("SELECT state FROM job WHERE id = ?", (job_id,)).fetchone()[0] != "failed"

        # Writes are answered in the JSON error shape, 503, naming where to free space.
        with _http(d) as http:
            resp = http.post("/v1/groups/h/sync")
            body = resp.json()
            assert resp.status_code == 503 and body["type"] == "Unavailable" and body["exit_code"] == 1, body
            assert body["error"].startswith("the catalog cannot be written: no space left")
            assert body["fix"].startswith(f"free space under {cat_dir}")
        err = d.run("group", "create", "x", "--source", str(tmp_path / "src"), check=1).stderr
        assert err.startswith("tapeline: the catalog cannot be written") and f"free space under {cat_dir}" in err

        # status is not "all good": the alert names the cause and the fix.
        status = d.json("status", check=1)
        assert status["needs_attention"]
        assert any(a["message"].startswith("the catalog cannot be written") and
                   a["fix"].startswith(f"free space under {cat_dir}") for a in status["alerts"])
        assert job_id not in status["jobs"]["running"]

        # Space comes back: the job's end is recorded, writes work again, no restart.
        (cat_dir / "filler").unlink()
        _poll(lambda: probe.execute("SELECT state FROM job WHERE id = ?", (job_id,)).fetchone()[0] == "failed",
              timeout=30)
        assert d.json("sync", "h", "--wait")["state"] == "completed"
        alerts = d.json("alerts")
        assert not any(a["message"].startswith("the catalog cannot be written") for a in alerts)
        assert any(a["message"].startswith(f"the catalog could not be written for want of space under {cat_dir}")
                   for a in alerts)
        assert any(f"(job {job_id})" in a["message"] for a in alerts)  # the failed job's own alert, recorded late
        assert d.proc.poll() is None
        probe.close()
    finally:
        try:
            if d is not None:
                d.stop()
        finally:
            subprocess.run(["umount", "-l", str(cat_dir)])
