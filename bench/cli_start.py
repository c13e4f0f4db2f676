"""The `tapeline` client's start-up: from its launch to its request reaching the daemon, beside restic's, in one run.

    .venv/bin/python bench/cli_start.py [--runs 20] [--work DIR]

A real daemon (`tapeline serve`, SQLite catalog, a Unix socket under --work) protects a one-file group. Each run
times, as whole processes launched one after the other (so the machine's load falls on both alike):

- `tapeline --json sync bench --wait`: `start_ms`, from the process's launch to its job's creation in the catalog
  (the job's `created` time; the same figure bench/store_sync.py prints per row): the client's imports, its
  settings, its connection and the daemon's handling of the request, before any syncing. Issue 6's goal: ~60 ms.
- `tapeline status`, launch to exit: a client asking its server one thing and printing the answer.
- the peer: `restic snapshots` against an empty local repository, launch to exit: restic's client asking its
  repository one thing (it opens the repository, derives the key from the password and lists nothing). restic has
  no daemon, so this is the nearest honest counterpart of `tapeline status`; `restic version` (a Go binary's start
  alone, no repository) is printed beside it as the floor of a process that does nothing.
- `python -c pass`: the interpreter's own start, which every `tapeline` process pays before its first import.

The package is byte-compiled first (`compileall`), as an installed one is: with PYTHONDONTWRITEBYTECODE set and no
`__pycache__` (an editable install), every run would compile every module it imports again (~40 ms here).
Medians over --runs, with the minimum beside (on a loaded machine the minimum is the figure least stretched).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TAPELINE = str(Path(sys.executable).with_name("tapeline"))
GOAL_START_MS = 60


def start_daemon(work: Path) -> tuple[subprocess.Popen, Path]:
    data = work / "tapeline"
    data.mkdir(parents=True, exist_ok=True)
    config = work / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\n'
                      'group = "tapeline-bench-none"\n[defaults]\npoints = []\n[log]\nlevel = "warning"\n')
    log = open(work / "daemon.log", "ab")
    proc = subprocess.Popen([TAPELINE, "serve", "--config", str(config)], stdout=log, stderr=log, env=env())
    deadline = time.monotonic() + 60
    while subprocess.run([TAPELINE, "--data", str(data), "status"], capture_output=True, env=env()).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not start: see {work / 'daemon.log'}")
        time.sleep(0.1)
    return proc, data


def env() -> dict[str, str]:
    return {**os.environ, "TAPELINE_DATA": ""}


def whole(argv: list[str], **kw) -> float:
    """Seconds from launch to exit of one process (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - started


def until_created(data: Path) -> float:
    """Seconds from the launch of `tapeline --json sync bench --wait` to its job's creation."""
    launched = time.time()
    proc = subprocess.run([TAPELINE, "--data", str(data), "--json", "sync", "bench", "--wait"], capture_output=True,
                          text=True, env=env())
    if proc.returncode != 0:
        raise SystemExit(f"tapeline sync exited {proc.returncode}: {proc.stderr}{proc.stdout}")
    return datetime.fromisoformat(json.loads(proc.stdout)["created"]).timestamp() - launched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", type=Path, help="a directory to work in (default: a temporary one, removed)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cli-start-"))
    work.mkdir(parents=True, exist_ok=True)
    for package in ("appliance", "drivers"):
        compileall.compile_dir(ROOT / package, quiet=1)
    daemon, data = start_daemon(work)
    try:
        src = work / "src"
        src.mkdir(exist_ok=True)
        (src / "file").write_text("one file\n")
        tapeline = [TAPELINE, "--data", str(data)]
        subprocess.run([*tapeline, "group", "create", "bench", "--source", str(src)], check=True,
                       capture_output=True, env=env())
        restic_env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(work / "restic-cache")}
        restic = ["restic", "-r", str(work / "restic-repo")]
        subprocess.run([*restic, "init"], check=True, capture_output=True, env=restic_env)
        until_created(data)  # the first sync copies the file; the timed ones find nothing changed
        times: dict[str, list[float]] = {k: [] for k in ("start", "status", "restic", "restic_version", "python")}
        for _ in range(args.runs):
            times["start"].append(until_created(data))
            times["status"].append(whole([*tapeline, "status"], env=env()))
            times["restic"].append(whole([*restic, "snapshots"], env=restic_env))
            times["restic_version"].append(whole(["restic", "version"]))
            times["python"].append(whole([sys.executable, "-c", "pass"]))
    finally:
        daemon.terminate()
        daemon.wait(60)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    ms = {k: (round(statistics.median(v) * 1000, 1), round(min(v) * 1000, 1)) for k, v in times.items()}
    print(f"launch to request  tapeline sync --wait   median {ms['start'][0]:6.1f} ms  min {ms['start'][1]:6.1f} ms  "
          f"goal <= {GOAL_START_MS} ms  {'ok' if ms['start'][0] <= GOAL_START_MS else 'MISSED'}")
    print(f"whole command      tapeline status        median {ms['status'][0]:6.1f} ms  min {ms['status'][1]:6.1f} ms")
    print(f"peer               restic snapshots       median {ms['restic'][0]:6.1f} ms  min {ms['restic'][1]:6.1f} ms  "
          f"ratio {ms['status'][0] / ms['restic'][0]:.2f}")
    print(f"floors             restic version         median {ms['restic_version'][0]:6.1f} ms; "
          f"python -c pass median {ms['python'][0]:6.1f} ms")
    print(json.dumps({"runs": args.runs, "median_ms": {k: v[0] for k, v in ms.items()},
                      "min_ms": {k: v[1] for k, v in ms.items()},
                      "ratio_status_to_restic": round(ms["status"][0] / ms["restic"][0], 3),
                      "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
