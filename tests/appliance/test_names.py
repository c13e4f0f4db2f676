"""File names that are not valid UTF-8, end to end through a real daemon: restored from the CLI and from the API,
their progress and warnings stored readable (`\\xff`), and the daemon's workers alive afterwards."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from daemon_harness import TAPELINE

ODD = b"name-\xff\xfe.txt"


def _odd_source(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain.txt").write_bytes(b"plain\n")
    odd = os.fsdecode(bytes(src) + b"/" + ODD)
    Path(odd).write_bytes(b"odd bytes in the name\n" * 1000)
    return src, odd


def test_restore_a_file_whose_name_is_not_utf8_from_the_cli(daemon, tmp_path):
    src, odd = _odd_source(tmp_path)
    daemon.run("group", "create", "qa", "--source", str(src))
    point = daemon.json("point", "qa", "--wait")["result"]["point"]["id"]
    out = tmp_path / "rx"
    # argv holds the raw bytes, as a shell passes "$(printf '...\xff\xfe...')"
    proc = subprocess.run([TAPELINE, "--data", str(daemon.data), "restore", "qa", "--point", str(point),
                           os.fsencode(odd), "--to", str(out), "--wait"], capture_output=True, timeout=60,
                          env={**os.environ, "TAPELINE_DATA": ""})
    assert proc.returncode == 0, proc.stderr
    assert Path(os.fsdecode(bytes(out) + bytes(src) + b"/" + ODD)).read_bytes() == b"odd bytes in the name\n" * 1000
    # Again: the file exists, so the job warns, naming it readably; the warning and the job are stored.
    again = subprocess.run([TAPELINE, "--data", str(daemon.data), "restore", "qa", "--point", str(point),
                            os.fsencode(odd), "--to", str(out), "--wait"], capture_output=True, timeout=60,
                           env={**os.environ, "TAPELINE_DATA": ""})
    assert again.returncode == 3, again.stderr
    assert rb"name-\xff\xfe.txt: exists, not replaced" in again.stdout
    # Every worker is still there: two groups' jobs run side by side and nothing is stuck "running".
    daemon.run("sync", "qa", "--wait")
    assert daemon.json("jobs", "--state", "running") == []


def test_restore_a_file_whose_name_is_not_utf8_from_the_api(daemon, tmp_path):
    src, odd = _odd_source(tmp_path)
    out = tmp_path / "rx"
    with daemon.client() as api:
        api.create_group("qa", [str(src)])
        first = api.point("qa")["job"]
        deadline = time.monotonic() + 60
        while api.job(first)["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = api.restore("qa", str(out), paths=[odd])
        while (job := api.job(answer["job"]))["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job["state"] == "completed", job
        assert job["progress_message"].endswith(r"name-\xff\xfe.txt"), job
    assert Path(os.fsdecode(bytes(out) + bytes(src) + b"/" + ODD)).exists()
