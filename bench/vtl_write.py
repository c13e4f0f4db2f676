"""Benchmark the virtual tape library: WRITE throughput (local and stream) against dd, and a 1,000-slot inventory through the
driver (`drivers.changer.MediaChanger.inventory`).

    .venv/bin/python bench/vtl_write.py [--mib 1024] [--rounds 5] [--dir /tmp/vtl-bench] [--slots 1000]

Goals (issues 2 and 6): local:// (`TapeDrive.write` over the in-process transport, timing model off) >= 0.7x
`dd bs=256k` of the same bytes to a file on the same filesystem, in the same run; stream+socket:// over loopback
>= 400 MB/s; inventory of 1,000 slots <= 50 ms. Every run writes the same zero-filled 256 KiB blocks (what dd reads
from /dev/zero), so the comparison is fair.

Both contenders write into the page cache; the disk's writeback is what makes single runs noisy (a run that starts
while the previous one's dirty pages are still being flushed is slowed by it, 5x here). So each run starts with no
dirty pages (sync, untimed), dd and local:// alternate, and the best and the median of each are printed. The default
size stays below the kernel's background writeback threshold on a machine of a few GiB of memory, so the figure
measures the write path, not the disk; give `--mib` above it to measure the disk as well (both then wait for it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from drivers.changer import MediaChanger
from drivers.scsi import smc, spc, ssc
from drivers.tape import TapeDrive
from drivers.transport.base import GOOD
from drivers.transport.stream import StreamTransport
from simulators.vtl.local import LocalTransport

BLOCK = 256 * 1024


def init(directory: Path, slots: int, capacity: int) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "simulators.vtl.cli", "init", str(directory), "--slots", str(slots),
                    "--drives", "2", "--capacity", str(capacity)], check=True, stdout=subprocess.DEVNULL)


def load(changer, drive, first_slot: int = 1000, drive_address: int = 500) -> None:
    r = changer.execute(smc.MOVE_MEDIUM.encode(source=first_slot, destination=drive_address))
    assert r.status == GOOD, r
    for _ in range(3):  # clears the unit attention of the medium change
        if drive.execute(spc.TEST_UNIT_READY.encode()).status == GOOD:
            return
    raise SystemExit("drive did not become ready")


def write_blocks(drive, count: int) -> float:
    """The raw WRITE(6) loop on a transport (the stream transport's figure)."""
    block = bytes(BLOCK)
    cdb = ssc.WRITE_6.encode(fixed=0, length=BLOCK)
    start = time.perf_counter()
    for _ in range(count):
        r = drive.execute(cdb, block)
        if r.status != GOOD:
            raise SystemExit(f"WRITE failed: {r}")
    return time.perf_counter() - start


def write_tape(drive, count: int) -> float:
    """What the tape writer does: `TapeDrive.write` of whole blocks (variable-block mode)."""
    tape = TapeDrive(drive, label="bench drive")
    block = bytes(BLOCK)
    start = time.perf_counter()
    for _ in range(count):
        tape.write(block)
    return time.perf_counter() - start


def dd(path: Path, count: int) -> float:
    start = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", f"bs={BLOCK}", f"count={count}"], check=True,
                   stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(directory: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "simulators.vtl.cli", "serve", str(directory), "--listen",
                             f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("tapeline-vtl serve did not start")


def inventory(transport, slots: int, runs: int = 20) -> float:
    """Best of `runs` inventories through the driver (`MediaChanger.inventory`: one RES per element type)."""
    changer = MediaChanger(transport, label="bench library")
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        found = changer.inventory(barcodes=True)
        best = min(best, time.perf_counter() - start)
        assert len(found.slots) == slots and sum(1 for e in found.slots if e.barcode) > slots // 2
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="data to write per run, MiB (default 1024)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/vtl-bench"))
    parser.add_argument("--slots", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating dd / local runs (default 5)")
    args = parser.parse_args()
    count = args.mib * 1024 * 1024 // BLOCK
    size = count * BLOCK
    args.dir.mkdir(parents=True, exist_ok=True)
    lib = args.dir / "lib"

    dd(args.dir / "dd.out", count)  # warm-up: the first large write of a run pays for page-cache reclaim
    dd_runs, local_runs = [], []
    for _ in range(args.rounds):
        os.sync()
        dd_runs.append(dd(args.dir / "dd.out", count))
        init(lib, 24, size * 2)
        changer, drive = LocalTransport(f"local://{lib}/changer"), LocalTransport(f"local://{lib}/drive0")
        load(changer, drive)
        os.sync()
        local_runs.append(write_tape(drive, count))
        drive.close()
        changer.close()
        shutil.rmtree(lib)
    dd_s, local_s = min(dd_runs), min(local_runs)
    dd_m, local_m = statistics.median(dd_runs), statistics.median(local_runs)
    print(f"dd bs=256k            {size / dd_s / 1e6:8.0f} MB/s best, {size / dd_m / 1e6:.0f} median  "
          f"({args.mib} MiB; runs: " + ", ".join(f"{size / t / 1e6:.0f}" for t in dd_runs) + ")")
    print(f"local:// WRITE 256k   {size / local_s / 1e6:8.0f} MB/s best, {size / local_m / 1e6:.0f} median  (runs: "
          + ", ".join(f"{size / t / 1e6:.0f}" for t in local_runs) + ")")
    print(f"local:// / dd         {dd_s / local_s:8.2f} best to best, {dd_m / local_m:.2f} median to median  "
          "(goal >= 0.7)")

    init(lib, 24, size * 2)
    os.sync()
    proc, port = serve(lib)
    try:
        changer = StreamTransport(f"stream+socket://127.0.0.1:{port}/changer")
        drive = StreamTransport(f"stream+socket://127.0.0.1:{port}/drive0")
        load(changer, drive)
        stream_s = write_blocks(drive, count)
        drive.close()
        changer.close()
    finally:
        proc.terminate()
        proc.wait()
    print(f"stream+socket WRITE   {size / stream_s / 1e6:8.0f} MB/s  (goal >= 400)")

    init(lib, args.slots, 10**9)
    changer = LocalTransport(f"local://{lib}/changer")
    best = inventory(changer, args.slots)
    changer.close()
    print(f"inventory {args.slots} slots (MediaChanger, local)         {best * 1000:6.1f} ms  (goal <= 50)")
    proc, port = serve(lib)
    try:
        changer = StreamTransport(f"stream+socket://127.0.0.1:{port}/changer")
        best = inventory(changer, args.slots)
        changer.close()
    finally:
        proc.terminate()
        proc.wait()
    print(f"inventory {args.slots} slots (MediaChanger, stream+socket) {best * 1000:6.1f} ms  (goal <= 50)")
    shutil.rmtree(lib, ignore_errors=True)


if __name__ == "__main__":
    main()
