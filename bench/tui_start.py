"""`tapeline tui` from its launch to its first screen with the daemon's data (issue 10: under 1 s), in one run.

    .venv/bin/python bench/tui_start.py [--runs 7] [--work DIR]

A real daemon (`tapeline serve`, SQLite catalog) protects one group and has synced it once. Each run launches
`tapeline tui --data DIR` as an operator would, in a pseudo-terminal of 120x40, and reads what it draws until the
group's name shows in the jobs table (the poller's first answer, drawn): that is the time reported. The whole
process is timed: the `tapeline` command's start, its exec of `python -m tui`, Textual's import and first frame,
the API calls.

From the same run, for comparison: the CLI's view of the same health, `tapeline status` and `tapeline jobs`, each
timed from launch to exit (what an operator types instead of opening the console); `tapeline-tui --data DIR`, the
console without the CLI that execs it; and a Textual app that draws one word and calls nothing (how much of the
console's start is Textual's own).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

TAPELINE = str(Path(sys.executable).with_name("tapeline"))
GOAL = 1.0
MARK = "benchgroup"
BARE_APP = ("from textual.app import App\nfrom textual.widgets import Static\n"
            "class A(App):\n    def compose(self):\n        yield Static('benchgroup')\nA().run()\n")


def env() -> dict[str, str]:
    return {**os.environ, "TAPELINE_DATA": "", "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}


def until_drawn(argv: list[str], mark: str, timeout: float = 30.0) -> float:
    """Seconds from launching `argv` in a 120x40 pty until `mark` appears in what it writes; the process is ended."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env(), start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        while True:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                raise SystemExit(f"{' '.join(argv)}: {mark!r} not drawn in {timeout}s; it wrote: {seen[-500:]!r}")
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the process ended
                    raise SystemExit(f"{' '.join(argv)} ended before drawing {mark!r}: {seen[-500:]!r}") from None
                seen += chunk
                if mark.encode() in seen:
                    return time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)


def command_time(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env())
    took = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--work", type=Path, help="a directory to work in (default: a temporary one, removed)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tui-start-"))
    data = work / "tapeline"
    (work / "src").mkdir(parents=True, exist_ok=True)
    (work / "src" / "file.txt").write_text("protected\n")
    data.mkdir(exist_ok=True)
    config = work / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "tapeline-bench-none"\n'
                      '[defaults]\npoints = []\n[log]\nlevel = "warning"\n')
    daemon = subprocess.Popen([TAPELINE, "serve", "--config", str(config)], env=env(),
                              stdout=subprocess.DEVNULL, stderr=open(work / "daemon.log", "ab"))
    cli = [TAPELINE, "--data", str(data)]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*cli, "status"], capture_output=True, env=env()).returncode not in (0, 3):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start: {(work / 'daemon.log').read_text()}")
            time.sleep(0.1)
        subprocess.run([*cli, "group", "create", MARK, "--source", str(work / "src")], check=True,
                       capture_output=True, env=env())
        subprocess.run([*cli, "sync", MARK, "--wait"], check=True, capture_output=True, env=env())

        ours, direct, status, jobs, bare = [], [], [], [], []
        console = [str(Path(sys.executable).with_name("tapeline-tui")), "--data", str(data)]
        until_drawn([*cli, "tui"], MARK)  # one start to warm the page cache, as every later start is
        for _ in range(args.runs):
            ours.append(until_drawn([*cli, "tui"], MARK))
            direct.append(until_drawn(console, MARK))
            status.append(command_time([*cli, "status"]))
            jobs.append(command_time([*cli, "jobs"]))
            bare.append(until_drawn([sys.executable, "-c", BARE_APP], MARK))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    print(f"runs: {args.runs} (medians; min..max)")
    for label, times in (("tapeline tui, launch to the first screen with data", ours),
                         ("tapeline-tui (the console's own script, no CLI before it)", direct),
                         ("tapeline status (the CLI, launch to exit)", status),
                         ("tapeline jobs (the CLI, launch to exit)", jobs),
                         ("a Textual app drawing one word (no daemon)", bare)):
        print(f"  {label:<58} {med(times):6.3f} s  ({min(times):.3f}..{max(times):.3f})")
    print(f"ratio: tui / (status + jobs) = {med(ours) / (med(status) + med(jobs)):.2f}; "
          f"tui / bare Textual = {med(ours) / med(bare):.2f}")
    print(f"goal: under {GOAL:.1f} s: {'met' if med(ours) < GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
