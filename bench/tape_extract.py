"""The tape restore's writer against GNU tar, on the same pax stream, in one run: whole commands.

    .venv/bin/python bench/tape_extract.py [--files 10000] [--runs 3] [--work DIR]

A tree of small files (0-16 KiB, 100 per directory; deterministic) is archived once by GNU tar
(`tar --format=pax -cf`). Then, in alternation, each timed as the whole process a user would start:
- ours: a Python process that reads the stream with tarfile's streaming mode (as the tape reader does) and feeds
  each member to `appliance.media.extract.Extractor`, whose close makes everything durable (syncfs);
- the same process reading the stream only (no Extractor): how much of ours is tarfile's parsing, which the
  tape reader (appliance/media/archive.py read_members) shares;
- GNU tar: `tar --xattrs --xattrs-include=* --acls -xpf STREAM -C DIR`, and the same followed by `sync -f DIR`
  (what ours does at its end, so both are on disk when they finish).
Before each run the target is removed and dirty pages written back (os.sync), so no run pays for another's writes;
the stream stays in the page cache for both. The medians of --runs are printed with the ratio, and one JSON line.
Goal (issue 7, tape restore): ours <= 2x `tar -x`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 2.0
OURS = """
import sys, tarfile
from pathlib import Path
from appliance.media.extract import Extractor
ex = Extractor(Path(sys.argv[2]), overwrite=False)
with open(sys.argv[1], "rb") as f, tarfile.open(fileobj=f, mode="r|") as tf:
    for info in tf:
        ex.write(info, tf.extractfile(info) if info.isreg() else None)
result = ex.close()
if result.warnings or not result.files:
    sys.exit(f"{result.files} files, warnings: {result.warnings[:3]}")
"""
READ_ONLY = """
import sys, tarfile
import appliance.media.extract
with open(sys.argv[1], "rb") as f, tarfile.open(fileobj=f, mode="r|") as tf:
    for info in tf:
        if info.isreg():
            tf.extractfile(info).read(info.size)
"""


def make_tree(root: Path, files: int) -> int:
    rng = random.Random(7)
    size = 0
    for n in range(files):
        d = root / f"d{n // 100:04}"
        if n % 100 == 0:
            d.mkdir(parents=True)
        data = rng.randbytes(rng.randrange(0, 16 << 10))
        (d / f"f{n:06}.dat").write_bytes(data)
        size += len(data)
    return size


def timed(cmd: list[str], target: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the command and its children)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode})")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="a scratch directory (default: a new one in /tmp)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tape-extract-", dir=args.work))
    try:
        size = make_tree(work / "src", args.files)
        stream = work / "stream.tar"
        subprocess.run(["tar", "--format=pax", "-cf", str(stream), "-C", str(work / "src"), "."], check=True)
        target = work / "out"
        commands = {
            "ours": [sys.executable, "-c", OURS, str(stream), str(target)],
            "ours, read only": [sys.executable, "-c", READ_ONLY, str(stream)],
            "tar -x": ["tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", str(stream), "-C", str(target)],
            "tar -x; sync -f": ["sh", "-c", 'tar --xattrs --xattrs-include="*" --acls -xpf "$0" -C "$1" && '
                                'sync -f "$1"', str(stream), str(target)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                wall, used = timed(cmd, target)
                times[name].append(wall)
                cpu[name].append(used)
        median = {name: statistics.median(t) for name, t in times.items()}
        median_cpu = {name: statistics.median(t) for name, t in cpu.items()}
        ratio = median["ours"] / median["tar -x"]
        fs = subprocess.run(["stat", "-f", "-c", "%T", str(work)], capture_output=True, text=True).stdout.strip()
        print(f"{args.files} files, {size / 1e6:.1f} MB, stream {stream.stat().st_size / 1e6:.1f} MB, target on "
              f"{fs}, median of {args.runs} runs (wall; CPU = user + system)")
        for name, seconds in median.items():
            print(f"  {name:<17} {seconds:7.3f} s  {args.files / seconds:9.0f} files/s  CPU {median_cpu[name]:6.3f} s")
        print(f"  ours / tar -x: {ratio:.2f} (goal <= {GOAL}); ours / (tar -x; sync -f): "
              f"{median['ours'] / median['tar -x; sync -f']:.2f}; CPU ours / tar -x: "
              f"{median_cpu['ours'] / median_cpu['tar -x']:.1f}")
        print(json.dumps({"files": args.files, "bytes": size, "filesystem": fs, "runs": times, "cpu": cpu,
                          "median": median, "median_cpu": median_cpu, "ratio": ratio, "goal": GOAL}))
        return 0 if ratio <= GOAL else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
