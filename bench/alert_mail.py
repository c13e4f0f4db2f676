"""A failed job to its alert and its mail in the operator's mailbox (issue 8: under 5 s), in one run.

    .venv/bin/python bench/alert_mail.py [--runs 5] [--work DIR]

A real daemon (`tapeline serve`, SQLite catalog, `[mail]` pointing at an aiosmtpd server on loopback, plain SMTP,
`jobs.retries = 0` so the job fails at once instead of being retried as a transient failure) protects a group per
run; its source is removed, then `tapeline sync GROUP --wait` runs as an operator (or the schedule) would. Timed
from that command's launch to the moment the SMTP server has received the mail of the job's alert, with the parts:
until the job was recorded failed (`finished`), until its alert was raised, and from the alert to the mail (the
notifier's poll, its one-second wait for a burst to end, and the SMTP exchange).

The reference, from the same run: the same mail sent straight to the same server with smtplib (what a mail costs
with no alerting at all), so the ratio is the price of noticing the failure and batching.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "appliance"))
from mail_harness import MailServer  # noqa: E402 (the tests' loopback SMTP server)

TAPELINE = str(Path(sys.executable).with_name("tapeline"))
GOAL = 5.0


def tapeline(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([TAPELINE, "--data", str(data), "--json", *args], capture_output=True, text=True,
                          env={**os.environ, "TAPELINE_DATA": ""})
    if check and proc.returncode != 0:
        raise SystemExit(f"tapeline {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", type=Path, help="a directory to work in (default: a temporary one, removed)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="alert-mail-"))
    server = MailServer().start()
    data = work / "tapeline"
    data.mkdir(parents=True)
    config = work / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "tapeline-bench-none"\n'
                      '[defaults]\npoints = []\n[log]\nlevel = "warning"\n[jobs]\nretries = 0\n'
                      f'[mail]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
                      'sender = "tapeline@example.com"\nrecipients = ["ops@example.com"]\nsummary = ""\n')
    log = open(work / "daemon.log", "ab")
    daemon = subprocess.Popen([TAPELINE, "serve", "--config", str(config)], stdout=log, stderr=log,
                              env={**os.environ, "TAPELINE_DATA": ""})
    rows = []
    try:
        deadline = time.monotonic() + 60
        while tapeline(data, "status", check=False).returncode != 0:  # (a new daemon has no alert)
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start: see {work / 'daemon.log'}")
            time.sleep(0.1)
        for i in range(args.runs):
            src = work / f"src{i}"
            src.mkdir()
            (src / "a.txt").write_text("a\n")
            tapeline(data, "group", "create", f"g{i}", "--source", str(src))
            tapeline(data, "sync", f"g{i}", "--wait")
            shutil.rmtree(src)
            time.sleep(1.5)  # the previous run's mail and the catalog's checkpoint are over
            launched = time.time()
            job = json.loads(tapeline(data, "sync", f"g{i}", "--wait", check=False).stdout)
            server.wait(i + 1, timeout=60)
            received = server.times[i]
            alert = next(a for a in json.loads(tapeline(data, "alerts", check=False).stdout)
                         if a["group_name"] == f"g{i}")
            rows.append({"total": received - launched,
                         "job": datetime.fromisoformat(job["finished"]).timestamp() - launched,
                         "alert": datetime.fromisoformat(alert["time"]).timestamp() - launched,
                         "mail": received - datetime.fromisoformat(alert["time"]).timestamp()})
            assert job["state"] == "failed" and f"g{i}" in server.received[i][2]["Subject"], (job, server.received[i])
        msg = server.received[0][2]
        direct = []
        for _ in range(args.runs):
            started = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", server.port) as smtp:
                smtp.send_message(msg, from_addr="tapeline@example.com", to_addrs=["ops@example.com"])
            direct.append(time.perf_counter() - started)
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
        server.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    worst = max(r["total"] for r in rows)
    ref = statistics.median(direct)
    print(f"{'':42} {'median':>8} {'worst':>8}")
    print(f"{'failed job -> its mail received (ours)':42} {med['total']:8.2f} {worst:8.2f}  s   goal < {GOAL:.0f} s")
    print(f"{'  launch -> job recorded failed':42} {med['job']:8.2f}")
    print(f"{'  launch -> alert raised':42} {med['alert']:8.2f}")
    print(f"{'  alert -> mail received':42} {med['mail']:8.2f}")
    print(f"{'the same mail sent straight (smtplib)':42} {ref:8.4f}           s   ratio {med['total'] / ref:.0f}x")
    print(json.dumps({"runs": rows, "direct_s": direct, "median_total_s": med["total"], "worst_total_s": worst,
                      "goal_s": GOAL, "met": worst < GOAL}))


if __name__ == "__main__":
    main()
