"""The tape format's write side against `tar -c | zstd -T0 -3 | dd bs=256k`, on the same tree, in one run.

    .venv/bin/python bench/tape_archive.py [--tree DIR] [--runs 3] [--work DIR]

The tree is bench/dataset.py's (~100k real small files, random, text and sparse files; built in --work unless --tree
names one). Each, timed as the whole process a user would start, in alternation:
- ours: a Python process that archives the tree as a D2T set (`members_from_tree` -> `ArchiveWriter` ->
  `SetStream`: pax headers, zstd frames, fixed 256 KiB blocks with the header block and padding) and writes the
  blocks to a file, as the tape writer hands them to the drive;
- peer: `tar -cf - TREE | zstd -T0 -3 | dd bs=256k iflag=fullblock of=FILE`.
The tree is read once before the runs so both find it in the page cache. Medians of --runs are printed with the
throughput ratio (peer time / ours), and one JSON line. Goal (issue 7, D2D2T write path): ratio >= 0.9. This
measures the format alone (no drive, no catalog); bench/tape_*.py by the tape jobs time the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.9
OURS = """
import sys
from datetime import datetime, timezone
from appliance.media.archive import ArchiveWriter, members_from_tree
from appliance.media.format import SetHeader, SetStream
header = SetHeader("bench", "bench", None, None, datetime.now(timezone.utc), "direct", 1, 2, "bench", "bench")
writer, stream, warnings = ArchiveWriter(), SetStream(header, 0), []
with open(sys.argv[2], "wb", buffering=0) as out:
    out.write(stream.header_block())
    for member in members_from_tree(sys.argv[1], warnings.append):
        for frame in writer.add(member):
            out.write(stream.add(frame))
    for frame in writer.close(end=True):
        out.write(stream.add(frame))
    out.write(stream.finish())
if warnings:
    sys.exit(f"warnings: {warnings[:3]}")
"""
PEER = 'tar -cf - "$0" 2>/dev/null | zstd -T0 -3 -q | dd bs=256k iflag=fullblock status=none of="$1"'


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def warm(root: Path) -> None:
    subprocess.run(["tar", "-cf", "/dev/null", str(root)], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(f"tar -cf - {root} 2>/dev/null | cat > /dev/null", shell=True, check=True)


def timed(cmd: list[str], output: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the command and its children)."""
    output.unlink(missing_ok=True)
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{cmd[:3]} failed ({os.waitstatus_to_exitcode(status)})")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help="the tree to archive (default: bench/dataset.py's, built in --work)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="a scratch directory (default: a new one in /tmp)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tape-archive-", dir=args.work))
    try:
        tree = args.tree
        if tree is None:
            tree = work / "data"
            subprocess.run([sys.executable, str(ROOT / "bench" / "dataset.py"), str(tree)], check=True)
        tree = tree.resolve()
        size = tree_bytes(tree)
        warm(tree)
        output = work / "set.out"
        commands = {"ours": [sys.executable, "-c", OURS, str(tree), str(output)],
                    "peer": ["sh", "-c", PEER, str(tree), str(output)]}
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        written: dict[str, int] = {}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                wall, used = timed(cmd, output)
                times[name].append(wall)
                cpu[name].append(used)
                written[name] = output.stat().st_size
        median = {name: statistics.median(t) for name, t in times.items()}
        median_cpu = {name: statistics.median(t) for name, t in cpu.items()}
        ratio = median["peer"] / median["ours"]
        print(f"{tree}: {size / 1e6:.0f} MB of file data, median of {args.runs} runs (wall; CPU = user + system)")
        for name, seconds in median.items():
            print(f"  {name:<5} {seconds:7.2f} s  {size / seconds / 1e6:6.0f} MB/s  CPU {median_cpu[name]:6.2f} s  "
                  f"wrote {written[name] / 1e6:.0f} MB")
        print(f"  throughput ours / peer: {ratio:.2f} (goal >= {GOAL})")
        print(json.dumps({"bytes": size, "runs": times, "cpu": cpu, "median": median, "median_cpu": median_cpu,
                          "written": written, "ratio": ratio, "goal": GOAL}))
        return 0 if ratio >= GOAL else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
