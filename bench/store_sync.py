"""What a user waits for, against restic, on the same data, warm cache, in one run: whole commands.

    .venv/bin/python bench/store_sync.py [--data DIR] [--work DIR]     # the ~1.5 GB dataset (bench/dataset.py)
    .venv/bin/python bench/store_sync.py --files 1000000               # peak memory of a 1M-file sync (engine)
    .venv/bin/python bench/store_sync.py --restores 3                  # the whole restore row only, 3 times each

`--restores N` reuses what a full run left under --work (the daemon's data and restic's repository) and times
only the two restores, restic's then ours, N times, each into a directory of its own (none is deleted before the
last run: see "Deleted inodes" below), with the load average before each pair.

A real daemon (`tapeline serve` on its own data directory, socket and SQLite catalog under --work) serves the
timed commands, each a whole `tapeline` process: `tapeline sync bench --wait` (the sync, the consistency check of
the new point, the catalog writes and the prune, then the wait's answer) against `restic backup`, for the first
sync, nothing changed and 1% of the small files changed; `tapeline restore bench --point ID --to DIR --wait`
against `restic restore latest --target DIR`. Before every timed run the machine settles (1.5 s, for the daemon's
catalog checkpoint after a job) and dirty pages are written back (os.sync), so no run pays for the previous one's
writes; the page cache stays warm for both (the data is read once by tar
first). The 1% change is deterministic and undone by the next run: every 100th small file (sorted) gets a marker
line appended, or loses it when it has it.

Besides the table, one JSON line holds every figure; `lag` is how long after the job's recorded end the
`--wait` process exited (the job's `finished` time against the wall clock at exit); `start_ms` from the command's
launch to its job's creation (the client's start-up and request), `queued_ms` until a worker took it; `job_s` the
job's own time (started to finished) and `sync_s`, `catalog_s`, `check_s`, `prune_s` its steps; `cpu_s` the CPU
seconds the command cost (the daemon's with its worker processes, and the client's, user + system) beside `restic_cpu_s`: on a machine others
load, wall times stretch unevenly (restic's many threads get a bigger share) while CPU seconds stay comparable.
Deleted inodes: on an ext4 without a journal (this machine's), creating a file skips, one by one, the free inodes
deleted in the last minute (five while their inode table block is dirty), so a restore right after a big delete
(the previous run's trees, another process's) costs both restores several CPU seconds that are no work of theirs:
the old work directory is deleted and written back first, which leaves that scan to the inodes a restore's own
creations dirty meanwhile. A restore row whose CPU seconds jump (restic's ~18 s here to 59 s in one run) paid it.
Goals (issue 6): initial <= 0.5x restic; nothing changed <= 0.25x; 1% changed <= 0.3x; whole restore <= 0.5x;
store size <= restic's repository.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
TAPELINE = str(Path(PY).with_name("tapeline"))
GROUP = "bench"
MARKER = b"\n# changed by bench/store_sync.py\n"
GOALS = {"initial sync": 0.5, "nothing changed": 0.25, "1% changed": 0.3, "whole restore": 0.5, "store size": 1.0}


class Daemon:
    """`tapeline serve` on a private data directory (no TCP port: the API is a Unix socket under it)."""

    def __init__(self, work: Path) -> None:
        self.data = work / "tapeline"
        self.data.mkdir(parents=True, exist_ok=True)
        self.config = work / "tapeline.toml"
        self.config.write_text(f'data_dir = "{self.data}"\n[api]\nsocket = "{self.data}/run/tapeline.sock"\n'
                               'group = "tapeline-bench-none"\n[log]\nlevel = "warning"\n')
        self.log = open(work / "daemon.log", "ab")
        self.proc = subprocess.Popen([TAPELINE, "serve", "--config", str(self.config)], stdout=self.log,
                                     stderr=self.log, env={**os.environ, "TAPELINE_DATA": ""})
        deadline = time.monotonic() + 60
        while subprocess.run(self.cli("status"), capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start: see {work / 'daemon.log'}")
            time.sleep(0.1)

    def cli(self, *args: str) -> list[str]:
        return [TAPELINE, "--data", str(self.data), *args]

    def run(self, *args: str) -> tuple[float, dict]:
        """One timed `tapeline --json ARGS` process; returns its wall time and what it printed, with `lag`.
        `self.cpu` is then the CPU seconds it cost: the daemon's and the client process's."""
        settle()
        daemon_cpu, client_cpu = process_cpu(self.proc.pid), children_cpu()
        started, launched = time.perf_counter(), time.time()
        proc = subprocess.run(self.cli("--json", *args), capture_output=True, text=True, env=self._env())
        took = time.perf_counter() - started
        ended = time.time()
        self.cpu = process_cpu(self.proc.pid) - daemon_cpu + children_cpu() - client_cpu
        if proc.returncode not in (0, 3):
            raise SystemExit(f"tapeline {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
        answer = json.loads(proc.stdout)
        if isinstance(answer, dict) and answer.get("finished"):
            answer["lag"] = ended - datetime.fromisoformat(answer["finished"]).timestamp()
            answer["until_queued"] = datetime.fromisoformat(answer["created"]).timestamp() - launched
        return took, answer

    def _env(self) -> dict:
        return {**os.environ, "TAPELINE_DATA": ""}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def settle() -> None:
    """The previous run's work is over before the next one starts: the daemon's catalog checkpoint (half a second
    after a job's last commit) and its dirty pages, written back before, not during, the next run."""
    time.sleep(1.5)
    os.sync()


def timed(cmd: list[str] | str, **kw) -> float:
    return timed_cpu(cmd, **kw)[0]


def timed_cpu(cmd: list[str] | str, **kw) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, of the command and every process it waited for)."""
    settle()
    cpu = children_cpu()
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - started, children_cpu() - cpu


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, its threads included, and the children it
    has waited for (a restore's worker processes)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return sum(int(n) for n in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*"))


def change_one_percent(data: Path) -> int:
    """Every 100th small regular file (sorted): append the marker, or take it off when it is there."""
    n = 0
    for i, p in enumerate(sorted((data / "small" if (data / "small").is_dir() else data).rglob("*"))):
        if i % 100 or p.is_symlink() or not p.is_file():
            continue
        with open(p, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - len(MARKER)))
            if size >= len(MARKER) and f.read() == MARKER:
                f.truncate(size - len(MARKER))
            else:
                f.write(MARKER)
        n += 1
    return n


def job_figures(answer: dict) -> dict:
    """The job's own times from its record: started -> finished, and the sync step inside it."""
    out = {}
    if answer.get("started") and answer.get("finished"):
        out["job_s"] = round(datetime.fromisoformat(answer["finished"]).timestamp()
                             - datetime.fromisoformat(answer["started"]).timestamp(), 3)
    steps = (answer.get("result") or {}).get("steps_s")
    if steps:
        out.update({f"{step}_s": took for step, took in steps.items()})
    if "lag" in answer:
        out["lag_ms"] = round(answer["lag"] * 1000, 1)
        out["start_ms"] = round(answer["until_queued"] * 1000, 1)  # from the command's launch to its job's creation
        out["queued_ms"] = round((datetime.fromisoformat(answer["started"]).timestamp()
                                  - datetime.fromisoformat(answer["created"]).timestamp()) * 1000, 1)
    return out


def cpu_figures(ours: float, peer: float) -> dict:
    """CPU seconds of both (a loaded machine stretches wall times unevenly; these stay comparable)."""
    return {"cpu_s": round(ours, 2), "restic_cpu_s": round(peer, 2), "cpu_ratio": round(ours / peer, 2) if peer else None}


def line(name: str, mine: float, peer: float, unit: str = "s", note: str = "") -> str:
    goal = GOALS[name]
    ratio = mine / peer if peer else float("inf")
    return (f"{name:<16} ours {mine:8.2f} {unit:<3}  restic {peer:8.2f} {unit:<3}  ratio {ratio:5.2f}  "
            f"goal <= {goal:4.2f}  {'ok' if ratio <= goal else 'MISSED'}  {note}").rstrip()


def memory(args) -> int:
    """Peak RSS of the engine's sync of N tiny files (issue 3's figure): a child process each, its own getrusage."""
    data = args.data.with_name(f"tiny-{args.files}")
    subprocess.run([PY, HERE / "dataset.py", data, "--files", str(args.files)], check=True)
    store = args.work / "tiny-store"
    shutil.rmtree(store, ignore_errors=True)
    code = ("import sys,time,json; sys.path.insert(0, %r)\n"
            "from appliance.protect.files import GroupSpec, SourceSpec, sync\nfrom appliance.store import Store\n"
            "s = Store.open(%r, create=True); t = time.perf_counter()\n"
            "r = sync(s, GroupSpec('bench', (SourceSpec(%r),))); assert r.state != 'failed', r.reason\n"
            "print(time.perf_counter() - t)") % (str(ROOT), str(store), str(data))
    for label in ("initial sync", "nothing changed"):
        child = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{label} failed")
        print(f"{args.files} files, {label}: {float(out):.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB "
              f"(goal: < 500 MB)")
    return 0


def restores(args) -> int:
    """The whole restore row alone, `args.restores` times, on the daemon data and repository of a full run."""
    repo = args.work / "restic-repo"
    if not (repo / "config").exists() or not (args.work / "tapeline").is_dir():
        raise SystemExit(f"no full run under {args.work}: run bench/store_sync.py --work {args.work} first")
    for old in args.work.glob("r-*"):
        shutil.rmtree(old)
    os.sync()
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(args.work / "restic-cache")}
    daemon = Daemon(args.work)
    rows = []
    try:
        point = daemon.run("points", GROUP)[1][-1]["id"]
        for n in range(1, args.restores + 1):
            load = os.getloadavg()[0]
            peer, peer_cpu = timed_cpu(["restic", "-r", str(repo), "restore", "latest", "--target",
                                        str(args.work / f"r-restic-{n}")], env=env)
            ours, answer = daemon.run("restore", GROUP, "--point", str(point), "--to", str(args.work / f"r-ours-{n}"),
                                      "--wait")
            detail = {**job_figures(answer), **cpu_figures(daemon.cpu, peer_cpu), "load": round(load, 1)}
            print(line("whole restore", ours, peer, note=f"({', '.join(f'{k} {v}' for k, v in detail.items())})"),
                  flush=True)
            rows.append({"ours": round(ours, 3), "restic": round(peer, 3), "ratio": round(ours / peer, 3), **detail})
    finally:
        daemon.stop()
    print(json.dumps({"whole restore": rows}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/var/tmp/tapeline-bench/data"))
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/tapeline-bench/work"))
    ap.add_argument("--files", type=int, help="measure the peak memory of a sync of this many tiny files instead")
    ap.add_argument("--restores", type=int, metavar="N",
                    help="time only the whole restore, N times, on what a full run left under --work")
    args = ap.parse_args()
    args.data, args.work = args.data.resolve(), args.work.resolve()
    for package in ("appliance", "drivers"):  # byte-compiled as installed: no row's start_ms compiles (cli_start.py)
        compileall.compile_dir(ROOT / package, quiet=1)
    if args.files:
        args.work.mkdir(parents=True, exist_ok=True)
        return memory(args)
    if args.restores:
        return restores(args)

    if not args.data.exists() or (args.data / ".dataset-complete").exists():  # a tree of your own is used as is
        subprocess.run([PY, HERE / "dataset.py", args.data], check=True)
    shutil.rmtree(args.work, ignore_errors=True)
    os.sync()  # the previous run's trees, deleted: see "Deleted inodes" above
    args.work.mkdir(parents=True)
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(args.work / "restic-cache")}
    repo = args.work / "restic-repo"
    restic = ["restic", "-r", str(repo)]
    timed("tar -cf - . | cat > /dev/null", shell=True, cwd=args.data)  # warm the page cache
    subprocess.run([*restic, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    daemon = Daemon(args.work)
    ours: dict[str, float] = {}
    peer: dict[str, float] = {}
    detail: dict[str, dict] = {}
    try:
        os.sync()
        started = time.perf_counter()
        subprocess.run(daemon.cli("group", "create", GROUP, "--source", str(args.data), "--sync", "30d",
                                  "--points", ""), check=True, stdout=subprocess.DEVNULL, env=daemon._env())
        create = time.perf_counter() - started
        backup = [*restic, "backup", "--quiet", str(args.data)]
        changed = 0
        for row in ("initial sync", "nothing changed", "1% changed"):
            if row == "1% changed":
                changed = change_one_percent(args.data)
            peer[row], peer_cpu = timed_cpu(backup, env=env)
            ours[row], answer = daemon.run("sync", GROUP, "--wait")
            detail[row] = {**job_figures(answer), **cpu_figures(daemon.cpu, peer_cpu)}
        point = daemon.run("points", GROUP)[1][-1]["id"]
        peer["whole restore"], peer_cpu = timed_cpu([*restic, "restore", "latest", "--target",
                                                     str(args.work / "r-restic")], env=env)
        ours["whole restore"], answer = daemon.run("restore", GROUP, "--point", str(point), "--to",
                                                   str(args.work / "r-ours"), "--wait")
        detail["whole restore"] = {**job_figures(answer), **cpu_figures(daemon.cpu, peer_cpu)}
    finally:
        daemon.stop()
    ours["store size"], peer["store size"] = du(daemon.data / "store") / 2**20, du(repo) / 2**20
    version = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()
    print(f"dataset {args.data}: {changed} files changed for the 1% run; {version}; load average "
          f"{os.getloadavg()[0]:.1f}; "
          f"`tapeline group create` {create:.2f} s")
    for row in GOALS:
        d = detail.get(row, {})
        note = ", ".join(f"{k} {v}" for k, v in d.items())
        print(line(row, ours[row], peer[row], "MiB" if row == "store size" else "s", f"({note})" if note else ""))
    print(json.dumps({"rows": {row: {"ours": round(ours[row], 3), "restic": round(peer[row], 3),
                                     "ratio": round(ours[row] / peer[row], 3), "goal": GOALS[row], **detail.get(row, {})}
                               for row in GOALS}, "group_create_s": round(create, 3), "changed_files": changed,
                      "restic": version}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
