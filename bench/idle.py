"""The daemon left alone with 20 groups on schedule: its CPU and resident memory over a few minutes.

    .venv/bin/python bench/idle.py [--groups 20] [--seconds 300] [--work DIR]

A real daemon (`tapeline serve` on its own data directory, socket and SQLite catalog under --work) gets --groups
groups, each over a small source of its own (20 files) with the default schedule (a sync every 15 minutes, five
recovery points a day); each group's first sync is run and waited for, then the daemon is left alone and sampled
every second from /proc: CPU (user + system ticks of the whole process) and resident memory (VmRSS). Whatever the
schedule runs in that window (a sync every 15 minutes per group) counts: that is what idle means for an appliance.

Goals (issue 8): under 1% of a core and under 150 MB resident over 5 minutes. There is no peer to run beside it (a
backup daemon that is idle is measured against these targets, not against another program), so the figures are
printed beside the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
TAPELINE = str(Path(PY).with_name("tapeline"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the whole line)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tapeline-idle-"))
    data = work / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    config = work / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "tapeline-none"\n'
                      '[log]\nlevel = "warning"\n')
    env = {**os.environ, "TAPELINE_DATA": ""}
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen([TAPELINE, "serve", "--config", str(config)], stdout=log, stderr=log, env=env)

    def cli(*a: str) -> str:
        return subprocess.run([TAPELINE, "--data", str(data), *a], check=True, capture_output=True, text=True,
                              env=env).stdout

    try:
        deadline = time.monotonic() + 60
        while subprocess.run([TAPELINE, "--data", str(data), "status"], capture_output=True, env=env).returncode \
                not in (0, 3):
            assert daemon.poll() is None and time.monotonic() < deadline, (work / "daemon.log").read_text()
            time.sleep(0.2)
        for i in range(args.groups):
            src = work / "sources" / f"g{i:02}"
            src.mkdir(parents=True, exist_ok=True)
            for f in range(20):
                (src / f"f{f:02}.txt").write_text(f"group {i} file {f}\n" * 50)
            cli("group", "create", f"g{i:02}", "--source", str(src))
            cli("sync", f"g{i:02}", "--wait")
        time.sleep(2)  # the last job's catalog checkpoint
        start_ticks, start = cpu_ticks(daemon.pid), time.monotonic()
        rss = []
        while time.monotonic() - start < args.seconds:
            time.sleep(1)
            rss.append(rss_mb(daemon.pid))
        cpu = (cpu_ticks(daemon.pid) - start_ticks) / TICKS / (time.monotonic() - start) * 100
        jobs = json.loads(cli("--json", "jobs", "--limit", "1000"))
        scheduled = sum(j["requested_by"] == "schedule" for j in jobs)
    finally:
        daemon.terminate()
        daemon.wait(30)
    print(f"idle daemon, {args.groups} groups on schedule, {args.seconds} s: CPU {cpu:.2f}% of a core (target < 1%), "
          f"RSS {rss[-1]:.0f} MB at the end, {max(rss):.0f} MB at most (target < 150 MB); {scheduled} scheduled "
          f"job(s) ran meanwhile")
    print(json.dumps({"groups": args.groups, "seconds": args.seconds, "cpu_percent": round(cpu, 3),
                      "rss_mb_end": round(rss[-1], 1), "rss_mb_max": round(max(rss), 1), "scheduled_jobs": scheduled}))


if __name__ == "__main__":
    main()
