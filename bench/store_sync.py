"""Replica store figures against restic and tar|zstd, on the same data, warm cache, in one run.

    .venv/bin/python bench/store_sync.py [--data DIR] [--work DIR]     # the ~1.5 GB dataset (bench/dataset.py)
    .venv/bin/python bench/store_sync.py --files 1000000               # peak memory of a 1M-file sync

Each of our operations runs in a child process (`--one OP`) so its peak RSS is its own (getrusage of the
child). Before every timed run, dirty pages are written back (os.sync), so no run pays for the previous one's
writes; the page cache stays warm (the data is read once by tar first). Goals (issue 3): initial <= 0.5x restic's first backup; nothing changed <= 0.25x; 1% changed <= 0.3x;
whole restore <= 1.0x restic restore; store size <= restic repo; 1M-file sync peak RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable


def one(op: str, store: Path, data: Path, out: Path | None) -> None:
    """Child side: run one operation and print its figures as JSON."""
    sys.path.insert(0, str(ROOT))
    from appliance.protect.files import GroupSpec, SourceSpec, restore, sync
    from appliance.store import Store

    s = Store.open(store, create=True)
    started = time.perf_counter()
    if op == "sync":
        r = sync(s, GroupSpec("bench", (SourceSpec(str(data)),)))
        assert r.state != "failed", r.reason
        extra = {"files_changed": r.stats.files_changed, "new_bytes": r.stats.new_bytes, "warnings": len(r.warnings)}
    else:
        r = restore(s, s.snapshots("bench")[-1].id, None, out)
        assert r.state != "failed", r.reason
        extra = {"files": r.files, "warnings": r.warnings[:3]}
    took = time.perf_counter() - started
    s.close()
    print(json.dumps({"seconds": took, **extra}))


def ours(op: str, store: Path, data: Path, out: Path | None = None) -> dict:
    import tempfile
    os.sync()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen([PY, __file__, "--one", op, "--store", str(store), "--data", str(data),
                                  "--out", str(out or "")], stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read()
    if child.returncode:
        raise SystemExit(f"{op} failed: {text[-2000:]}")
    fig = json.loads(text.strip().splitlines()[-1])
    fig["peak_rss_mb"] = usage.ru_maxrss / 1024
    return fig


def timed(cmd: list[str] | str, **kw) -> float:
    os.sync()  # the previous run's dirty pages are written back before, not during, this one
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - started


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*"))


def change_one_percent(data: Path) -> int:
    n = 0
    for i, p in enumerate(sorted((data / "small").rglob("*"))):
        if i % 100 == 0 and p.is_file() and not p.is_symlink():
            with open(p, "ab") as f:
                f.write(b"\nchanged by the benchmark %d\n" % time.time_ns())
            n += 1
    return n


def line(name: str, mine: float, peer: float, goal: float, unit: str = "s") -> str:
    ratio = mine / peer if peer else float("inf")
    ok = "ok" if ratio <= goal else "MISSED"
    return (f"{name:<22} ours {mine:9.2f} {unit}   restic {peer:9.2f} {unit}   ratio {ratio:5.2f}  "
            f"goal <= {goal:4.2f}  {ok}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("/var/tmp/tapeline-bench/data"))
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/tapeline-bench/work"))
    ap.add_argument("--files", type=int)
    ap.add_argument("--one")
    ap.add_argument("--store", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.one:
        one(args.one, args.store, args.data, args.out if str(args.out) not in ("", ".") else None)
        return 0
    if args.files:
        data = args.data.with_name(f"tiny-{args.files}")
        subprocess.run([PY, HERE / "dataset.py", data, "--files", str(args.files)], check=True)
        store = args.work / "tiny-store"
        shutil.rmtree(store, ignore_errors=True)
        first = ours("sync", store, data)
        again = ours("sync", store, data)
        print(f"{args.files} files: initial sync {first['seconds']:.1f} s, peak RSS {first['peak_rss_mb']:.0f} MB; "
              f"nothing changed {again['seconds']:.1f} s (goal: peak < 500 MB)")
        return 0

    subprocess.run([PY, HERE / "dataset.py", args.data], check=True)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(args.work / "restic-cache")}
    repo, store = args.work / "restic-repo", args.work / "store"
    timed("tar -cf - . | cat > /dev/null", shell=True, cwd=args.data)  # warm the page cache
    tar = timed(f"tar -cf - . | zstd -q -T0 -3 > {args.work / 'data.tar.zst'}", shell=True, cwd=args.data)
    subprocess.run(["restic", "-r", repo, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    rb = ["restic", "-r", str(repo), "backup", "--quiet", str(args.data)]
    r_init = timed(rb, env=env)
    o_init = ours("sync", store, args.data)
    r_same = timed(rb, env=env)
    o_same = ours("sync", store, args.data)
    changed = change_one_percent(args.data)
    r_one = timed(rb, env=env)
    o_one = ours("sync", store, args.data)
    r_rest = timed(["restic", "-r", str(repo), "restore", "latest", "--target", str(args.work / "r-restic")], env=env)
    o_rest = ours("restore", store, args.data, args.work / "r-ours")
    r_size, o_size = du(repo), du(store)
    print(f"dataset {args.data}: {changed} files changed for the 1% run; restic "
          f"{subprocess.run(['restic', 'version'], capture_output=True, text=True).stdout.strip()}")
    print(line("initial sync", o_init["seconds"], r_init, 0.5), f"(tar|zstd -T0 -3: {tar:.2f} s)")
    print(line("nothing changed", o_same["seconds"], r_same, 0.25))
    print(line("1% changed", o_one["seconds"], r_one, 0.3))
    print(line("whole restore", o_rest["seconds"], r_rest, 1.0))
    print(line("store size", o_size / 2**20, r_size / 2**20, 1.0, "MiB"),
          f"(tar.zst {du(args.work / 'data.tar.zst') / 2**20:.0f} MiB)")
    print(f"peak RSS of our initial sync: {o_init['peak_rss_mb']:.0f} MB; restore warnings: {o_rest['warnings']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
