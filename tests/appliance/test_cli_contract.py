"""The CLI contract: exit codes (0 ok, 1 failed, 2 usage, 3 warnings), --json documents, one-line errors with the fix,
the socket's permissions, a daemon killed mid-job, and `tapeline up`'s demo group."""

from __future__ import annotations

import grp
import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from appliance.api.server import bind_socket
from appliance.errors import Conflict
from daemon_harness import TAPELINE, Daemon


def tapeline(*args, data: Path, check: int | None = None):
    proc = subprocess.run([TAPELINE, "--data", str(data), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TAPELINE_DATA": ""})
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def test_no_daemon_is_one_line_naming_the_socket_and_how_to_start_it(tmp_path):
    proc = tapeline("status", data=tmp_path, check=1)
    sock = tmp_path / "run" / "tapeline.sock"
    assert proc.stderr == (f"tapeline: cannot reach the Tapeline daemon at {sock}: start it with "
                           f"`tapeline up --data {tmp_path}`\n")
    doc = json.loads(tapeline("--json", "jobs", data=tmp_path, check=1).stdout)
    assert doc["exit_code"] == 1 and doc["fix"] == f"start it with `tapeline up --data {tmp_path}`"
    # Without --data the client looks for the service: it says how to reach a development daemon instead.
    (tmp_path / "empty.toml").write_text("")
    service = subprocess.run([TAPELINE, "--config", str(tmp_path / "empty.toml"), "status"], capture_output=True,
                             text=True, env={**os.environ, "TAPELINE_DATA": ""})
    assert service.returncode == 1 and service.stderr.count("\n") == 1
    assert service.stderr.startswith("tapeline: cannot reach the Tapeline daemon at /run/tapeline/tapeline.sock: "
                                      "start it with `systemctl start tapeline`; for a development daemon")
    assert "--data DIR or TAPELINE_DATA=DIR" in service.stderr


def test_bad_usage_exits_2(tmp_path):
    missing = tapeline("sync", data=tmp_path, check=2).stderr.splitlines()
    assert missing[0] == "tapeline: Missing argument 'NAME': see `tapeline sync --help`"  # what a script reads
    assert missing[1].startswith("Usage: tapeline sync")  # and click's usage, for a person
    assert tapeline("frobnicate", data=tmp_path, check=2).stderr == (
        "tapeline: no such command 'frobnicate': `tapeline --help` lists them\n")
    assert tapeline("restor", data=tmp_path, check=2).stderr == (
        "tapeline: no such command 'restor': did you mean 'restore'? (`tapeline --help` lists them)\n")
    assert tapeline("restore", "g", "--to", "x", "--pont", "3", data=tmp_path, check=2).stderr.startswith(
        "tapeline: no such option '--pont': did you mean '--point'? (`tapeline restore --help` lists them)\n")
    for args in (["--json", "bogus"], ["sync", "--json"], ["jobs", "--limit", "x", "--json"]):
        proc = tapeline(*args, data=tmp_path, check=2)
        doc = json.loads(proc.stdout)  # one JSON document, even for a usage error
        assert set(doc) == {"error", "fix", "exit_code", "type"} and doc["exit_code"] == 2, doc
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[defaults]\nsync = "often"\n')
    proc = subprocess.run([TAPELINE, "--config", str(cfg), "status"], capture_output=True, text=True,
                          env={**os.environ, "TAPELINE_DATA": ""})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "defaults.sync 'often'" in proc.stderr


def test_bare_tapeline_and_a_bare_group_print_their_help():
    for args, first in (([], "Usage: tapeline [OPTIONS] COMMAND [ARGS]..."),
                        (["group"], "Usage: tapeline group [OPTIONS] COMMAND [ARGS]...")):
        proc = subprocess.run([TAPELINE, *args], capture_output=True, text=True, env={**os.environ, "TAPELINE_DATA": ""})
        assert (proc.returncode, proc.stderr) == (0, "")
        lines = proc.stdout.splitlines()
        assert lines[0] == first and sum(line.startswith("Usage:") for line in lines) == 1
        commands = lines[lines.index("Commands:") + 1:]
        assert len(commands) >= 7 and not any(line.endswith("...") for line in commands), commands


def test_exit_codes_and_json_against_a_daemon(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    # Usage errors found by the daemon are exit 2 too, with the fix.
    bad = d.run("group", "create", "g", "--source", str(src), "--sync", "often", check=2)
    assert bad.stderr.strip() == "tapeline: --sync 'often' is not a duration: write it as 15m, 1h, 12d (s, m, h, d, w)"
    missing = d.run("group", "create", "g", "--source", str(tmp_path / "nope"), check=2)
    assert "is not a directory: create it, mount it, or fix the path" in missing.stderr
    created = d.json("group", "create", "g", "--source", str(src))
    assert created["name"] == "g" and created["sync_seconds"] == 900
    assert d.run("group", "create", "g", "--source", str(src), check=1).stderr.startswith(
        "tapeline: protection group 'g' already exists: choose another name")
    nf = d.run("--json", "group", "show", "nope", check=1)
    assert json.loads(nf.stdout) == {"error": "protection group 'nope' does not exist",
                                     "fix": "list groups with `tapeline group list`", "exit_code": 1,
                                     "type": "NotFound"}
    assert [g["name"] for g in d.json("group", "list")] == ["g"]
    assert d.json("group", "pause", "g")["paused"] is True
    assert d.json("group", "resume", "g")["paused"] is False
    assert d.json("group", "change", "g", "--keep", "3d", "--points", "09:30")["point_times"] == ["09:30"]

    # (Exit 3, a job that ended with warnings, is in test_end_to_end: a restore onto an existing file.)
    job = d.json("sync", "g", "--wait")
    assert job["state"] == "completed" and job["result"]["point"]["files"] == 1
    queued = d.json("sync", "g")
    assert set(queued) == {"job", "coalesced"}
    assert d.json("job", str(queued["job"]), "--wait")["state"] == "completed"
    assert d.json("prune", "g", "--wait")["result"]["prune"]["state"] == "completed"
    assert d.run("job", "999", check=1).stderr.startswith("tapeline: job 999 does not exist")
    assert d.run("cancel", str(queued["job"]), check=1).stderr.startswith(
        f"tapeline: job {queued['job']} already ended (completed)")
    assert d.run("restore", "g", "--to", str(tmp_path / "r"), "--point", "1", "--at", "2026-01-01", check=2)
    assert "no recovery point 424242" in d.run("restore", "g", "--to", str(tmp_path / "r"), "--point", "424242",
                                               check=1).stderr
    assert d.run("status", check=0).stdout.rstrip().endswith("all good")
    assert d.json("group", "delete", "g")["name"] == "g"
    assert d.json("alerts") == []


def test_a_failed_sync_exits_1_and_status_asks_for_a_person(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(20):
        (src / "sub" / f"f{i}").write_text(str(i))
    d.run("group", "create", "g", "--source", str(src))
    d.run("sync", "g", "--wait")
    for f in (src / "sub").iterdir():  # the source now looks unmounted: empty where it was full
        f.unlink()
    (src / "sub").rmdir()
    failed = d.run("sync", "g", "--wait", check=1)
    last = failed.stderr.splitlines()[-1]  # (lines before it are progress, when the sync took long enough)
    assert last.startswith("tapeline: job 2 failed: source ") and "mounted" in last
    status = d.run("status", check=1)
    assert "needs attention" in status.stdout
    [alert] = d.json("alerts")
    assert alert["group_name"] == "g" and alert["fix"]
    d.run("alerts", "ack", str(alert["id"]))
    d.run("status", check=0)
    # The files really were deleted: the operator says so, and the sync records them deleted.
    assert "--accept-deletions" in last
    before = d.json("points", "g")[-1]["files"]
    d.run("sync", "g", "--accept-deletions", "--wait")
    assert (before, d.json("points", "g")[-1]["files"]) == (20, 0)


def test_socket_is_for_root_and_the_operators_group_only(tmp_path, caplog):
    lonely = bind_socket(tmp_path / "a" / "s.sock", "no-such-group-here")
    try:
        st = os.stat(tmp_path / "a" / "s.sock")
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert "does not exist" in caplog.text and "groupadd no-such-group-here" in caplog.text
        # A second daemon on a live socket is refused; a stale socket file is replaced.
        with pytest.raises(Conflict, match="already running"):
            bind_socket(tmp_path / "a" / "s.sock", "users")
    finally:
        lonely.close()
    again = bind_socket(tmp_path / "a" / "s.sock", grp.getgrgid(os.getgid()).gr_name)
    try:
        st = os.stat(tmp_path / "a" / "s.sock")
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid()
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(tmp_path / "a" / "s.sock"))
        client.close()
    finally:
        again.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the socket to another group needs root")
def test_the_daemon_gives_its_socket_to_the_operators_group(tmp_path):
    data = tmp_path / "data"
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "users"\n')
    d = Daemon(data, cfg, ["serve", "--config", str(cfg)]).start()
    try:
        st = os.stat(d.socket)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == grp.getgrnam("users").gr_gid
    finally:
        assert d.stop() == 0
    assert not d.socket.exists()  # removed on a clean stop


def test_a_killed_daemons_running_job_is_marked_failed_on_restart(tmp_path):
    from daemon_harness import make_daemon
    d = make_daemon(tmp_path, None).start()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    d.run("group", "create", "g", "--source", str(src))
    d.kill()  # kill -9: nothing is cleaned up
    # What a kill in the middle of a sync leaves in the catalog: a job in state running.
    engine = create_engine(f"sqlite:///{d.data / 'catalog.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("insert into job (id, kind, group_id, group_name, state, params, progress_done, "
                          "progress_message, created, started, warnings, result, requested_by) values "
                          "(41, 'sync', 1, 'g', 'running', '{}', 10, 'reading f', '2026-01-01 08:00:00', "
                          "'2026-01-01 08:00:01', '[]', '{}', 'schedule')"))
    engine.dispose()
    d.start()  # the stale socket file is replaced
    try:
        job = d.json("job", "41")
        assert (job["state"], job["reason"]) == ("failed", "daemon stopped while running; rerun it")
        assert "job 41" in d.json("alerts")[0]["message"]
        assert d.json("sync", "g", "--wait")["state"] == "completed"
        assert d.json("alerts") == []  # the next good sync of the group resolves the alert
    finally:
        assert d.stop() == 0


@pytest.mark.slow
def test_kill_9_during_a_real_sync_then_restart(tmp_path):
    """Killed once the sync is reading; the daemon holds the job after its point (TAPELINE_TEST_HOLD), so the kill
    lands while the job runs whatever the machine's speed: mid-read, or with its point made but the job not ended."""
    from daemon_harness import make_daemon
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "point").touch()
    d = make_daemon(tmp_path, None, env={"TAPELINE_TEST_HOLD": str(hold)}).start()
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        for _ in range(48):
            f.write(os.urandom(8 << 20))
    d.run("group", "create", "g", "--source", str(src))
    job_id = d.json("sync", "g")["job"]
    deadline = time.monotonic() + 60
    while d.json("job", str(job_id))["progress_done"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    (hold / "point").unlink()
    d.start()
    try:
        job = d.json("job", str(job_id))
        assert (job["state"], job["reason"]) == ("failed", "daemon stopped while running; rerun it")
        again = d.json("sync", "g", "--wait")
        assert again["state"] == "completed"
        restored = tmp_path / "r"
        d.run("restore", "g", "--to", str(restored), "--wait")
        assert (restored / str(src).lstrip("/") / "big").read_bytes() == (src / "big").read_bytes()
    finally:
        assert d.stop() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_creates_the_demo_group_and_syncs_it(tmp_path):
    data = tmp_path / "data"
    cfg = tmp_path / "vtl.toml"  # not the default port 7101: another daemon may serve its library there
    cfg.write_text(f'[vtl]\nlisten = "127.0.0.1:{free_port()}"\n')
    d = Daemon(data, None, ["up", "--data", str(data), "--config", str(cfg)]).start()
    try:
        deadline = time.monotonic() + 30
        while not d.json("points", "demo"):
            assert time.monotonic() < deadline, d.log.read_text()
            time.sleep(0.1)
        [g] = d.json("group", "list")
        assert g["name"] == "demo" and g["sources"][0]["path"] == str(data / "demo-source")
        assert [v["current"] for v in d.json("versions", str(data / "demo-source" / "README.txt"))] == [True]
        assert {e["id"].split(":")[0] for e in d.client().schedule()} == {"sync", "point"}
    finally:
        assert d.stop(signal.SIGINT) == 0  # Ctrl-C stops cleanly
    d.start()  # a second start does not make the demo group again once it was deleted
    try:
        purged = d.json("group", "delete", "demo", "--purge", "--wait")
        assert purged["kind"] == "purge" and purged["result"]["removed_points"] >= 1
    finally:
        d.stop(signal.SIGINT)
    d.start()
    try:
        assert d.json("group", "list") == []
        assert d.json("catalog", "rebuild")["groups"] == []  # purged: nothing in the store brings it back
    finally:
        d.stop(signal.SIGINT)
    log = d.log.read_text()
    assert "Traceback" not in log
    assert "operators' group" not in log  # a development daemon's socket is for its user only: no group to ask for


def held(hold: Path, job_id: int, step: str) -> Path:
    """The FIFO a job held at `step` waits on (see appliance/ops/jobs.py, HOLD_ENV), once the job is there."""
    fifo = hold / f"job-{job_id}-{step}"
    deadline = time.monotonic() + 60
    while not fifo.exists():
        assert time.monotonic() < deadline, f"job {job_id} never reached {step}"
        time.sleep(0.01)
    return fifo


@pytest.mark.parametrize("step", ["running", "point"])
def test_cancel_a_running_sync_from_the_cli(tmp_path, step):
    """The daemon holds the sync at a step (while it has read nothing yet / just after its point was recorded),
    the CLI cancels it there, then the sync goes on and meets the cancel: no race with the machine's speed."""
    from daemon_harness import make_daemon
    hold = tmp_path / "hold"
    hold.mkdir()
    d = make_daemon(tmp_path, None, env={"TAPELINE_TEST_HOLD": str(hold)}).start()
    try:
        src = tmp_path / "src"
        src.mkdir()
        (src / "small").write_text("kept")
        d.run("group", "create", "g", "--source", str(src))
        d.run("point", "g", "--wait")
        (src / "new").write_text("changed since the point")
        (hold / step).touch()
        job_id = d.json("sync", "g")["job"]
        fifo = held(hold, job_id, step)
        assert d.json("job", str(job_id))["state"] == "running"
        assert d.run("cancel", str(job_id)).stdout == f"job {job_id}: cancel requested\n"
        (hold / step).unlink()
        with open(fifo, "wb"):  # lets the job go on
            pass
        ended = d.run("job", str(job_id), "--wait", check=None)
        job = d.json("job", str(job_id))
        kinds = [p["kind"] for p in d.json("points", "g")]
        if step == "running":  # cancelled while reading: nothing half-made is recorded
            assert (ended.returncode, job["state"], job["reason"], kinds) == (1, "cancelled", "cancelled by request",
                                                                             ["point"])
        else:  # after the point was made: it stays, the check and prune after it are skipped
            assert (ended.returncode, job["state"], kinds) == (3, "completed with warnings", ["point", "sync"])
            assert any("check and prune skipped" in w for w in job["warnings"]), job["warnings"]
        assert d.json("sync", "g", "--wait")["state"] == "completed"
    finally:
        assert d.stop() == 0


def test_versions_of_an_unknown_path_and_a_restore_of_a_path_not_in_the_point_are_refused(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("a")
    d.run("group", "create", "qa", "--source", str(src))
    point = d.json("point", "qa", "--wait")["result"]["point"]["id"]
    missing = d.run("versions", "/no/such/path", check=1)
    assert missing.stdout == "" and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("tapeline: no versions of /no/such/path: ") and "tapeline sync" in missing.stderr
    assert d.json("versions", "/no/such/path", check=1)["type"] == "NotFound"

    jobs_before = len(d.json("jobs"))
    refused = d.run("restore", "qa", "--point", str(point), str(src / "nope.txt"), "--to", str(tmp_path / "o"),
                    "--wait", check=1)
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(f"tapeline: {src / 'nope.txt'} is not in recovery point {point} of group 'qa': ")
    assert f"`tapeline versions {src / 'nope.txt'}`" in refused.stderr
    assert len(d.json("jobs")) == jobs_before  # nothing queued
    # What the point holds is accepted: a file, a directory, the source; a parent of the source is not.
    d.run("restore", "qa", str(tmp_path), "--to", str(tmp_path / "o"), check=1)
    for path in (src / "sub" / "a.txt", src / "sub", src):
        d.run("restore", "qa", "--point", str(point), str(path), "--to", str(tmp_path / "o" / path.name), "--wait")
