"""Tape figures as a user meets them (issue 7), ours and the peer's from the same run, whole commands:

    .venv/bin/python bench/tape_write.py [--data DIR] [--work DIR]     # the ~1.5 GB dataset (bench/dataset.py)

A virtual LTO-9 library (`tapeline-vtl init --generation LTO-9`, timing model off: the write path alone) served by
`tapeline-vtl serve`, and a real daemon (`tapeline serve`) that has it as library `lib`. Timed:
- D2D2T: `tapeline tape backup bench --pool fast --wait` (pool --no-verify) of a recovery point of the dataset,
  against `tar -cf - DATA | zstd -T0 -3 | dd bs=256k of=FILE` of the same tree; throughput = the point's bytes over
  the whole command's time. Goal: ratio >= 0.9 and never under 177 MB/s (IBM's lowest LTO-9 speed-matching rate).
- The verify pass, separately: `tapeline media verify BARCODE --wait`.
- One 1 MiB file from the set (bench/dataset.py's large/one-mib.bin): `tapeline tape restore ... PATH --wait`:
  bytes read from tape (goal: at most 2 frames); bench/tape_timing.py gives its modelled time to first byte.
- `tapeline media rebuild --library lib --wait`: bytes read against bytes stored on the cartridge.
The timing model's figures (whether the drive waits for data, the warning when the data comes slower than the drive's
lowest speed-matching rate, time to first byte) are bench/tape_timing.py's: an LTO-9 cartridge's first load takes 20
modelled minutes, which that bench runs on an accelerated clock.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dataset import ONE_MIB  # noqa: E402 (bench/ is not a package)
from store_sync import Daemon, process_cpu, timed_cpu  # noqa: E402

from appliance.embedded_vtl import EmbeddedLibrary  # noqa: E402

PY = sys.executable
VTL = str(Path(PY).with_name("tapeline-vtl"))
FLOOR_MB_S = 177.0
GOAL = 0.9


def served_library(work: Path, clock_factor: float | None = None) -> EmbeddedLibrary:
    """A new LTO-9 library in `work`/vtl served by `tapeline-vtl serve` (the server `tapeline up` runs), once it
    answers."""
    lib = work / "vtl"
    subprocess.run([VTL, "init", str(lib), "--generation", "LTO-9", "--drives", "2", "--slots", "10",
                    *(["--clock-factor", str(clock_factor)] if clock_factor else [])],
                   check=True, capture_output=True)
    return serve(lib)


def serve(lib: Path) -> EmbeddedLibrary:
    """`tapeline-vtl serve` of an existing library, once it answers an INQUIRY; its stderr (and why it did not
    start) goes to vtl.log beside it."""
    said = logging.getLogger("tapeline.vtl")
    if not said.handlers:
        said.addHandler(logging.FileHandler(lib.parent / "vtl.log"))
        said.setLevel(logging.INFO)
    served = EmbeddedLibrary(lib, f"127.0.0.1:{7300 + os.getpid() % 500}", tool=VTL)
    if not served.start():
        raise SystemExit(f"the library in {lib} did not start: see {lib.parent / 'vtl.log'}")
    return served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/var/tmp/tapeline-bench/data"))
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/tapeline-bench/tape-work"))
    args = parser.parse_args()
    subprocess.run([PY, str(HERE / "dataset.py"), str(args.data)], check=True)  # builds or completes it
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    vtl = served_library(args.work)
    daemon = Daemon(args.work)
    try:
        run = daemon.run
        subprocess.run(daemon.cli("library", "add", "lib", vtl.client_url, vtl.drive_url(0), vtl.drive_url(1)),
                       check=True, capture_output=True)
        subprocess.run(daemon.cli("pool", "create", "fast", "--library", "lib", "--no-verify"), check=True,
                       capture_output=True)
        subprocess.run(daemon.cli("group", "create", "bench", "--source", str(args.data)), check=True,
                       capture_output=True)
        _, point = run("point", "bench", "--wait")
        nbytes = point["result"]["point"]["bytes"]
        subprocess.run(["tar", "-cf", "/dev/null", str(args.data)], check=True, capture_output=True)  # warm cache

        vtl_cpu = process_cpu(vtl.process.pid)
        ours_s, job = run("tape", "backup", "bench", "--pool", "fast", "--wait")
        ours_cpu, vtl_cpu = daemon.cpu, process_cpu(vtl.process.pid) - vtl_cpu
        tape = job["result"]["tape"]
        peer_file = args.work / "peer.tar.zst"
        peer_s, peer_cpu = timed_cpu(f"tar -cf - -C / {str(args.data).lstrip('/')} 2>/dev/null | zstd -T0 -3 -q | "
                       f"dd bs=256k of={peer_file} status=none", shell=True, executable="/bin/bash")
        ours_mb_s, peer_mb_s = nbytes / ours_s / 1e6, nbytes / peer_s / 1e6
        barcode = tape["cartridges"][0]
        verify_s, verify = run("media", "verify", barcode, "--wait")

        one = args.data / ONE_MIB
        restore_s, restored = run("tape", "restore", "bench", str(one), "--to", str(args.work / "one"), "--wait")
        r = restored["result"]["restore"]
        rebuild_s, rebuilt = run("media", "rebuild", "--library", "lib", "--wait")
        rb = rebuilt["result"]["rebuild"]

        print(f"{'':34} {'Tapeline':>12} {'peer':>12} {'ratio':>7}  goal")
        print(f"{'D2D2T write (MB/s, whole command)':34} {ours_mb_s:12.1f} {peer_mb_s:12.1f} "
              f"{ours_mb_s / peer_mb_s:7.2f}  >= {GOAL} and >= {FLOOR_MB_S:.0f} MB/s")
        print(f"  {nbytes / 1e9:.2f} GB point; command {ours_s:.2f} s (write {tape['seconds']} s in the job), "
              f"peer {peer_s:.2f} s; tape {tape['tape_bytes'] / 1e6:.0f} MB, peer file "
              f"{peer_file.stat().st_size / 1e6:.0f} MB; drive waited {tape['drive_waits']} times "
              f"({tape['drive_wait_seconds']} s)")
        print(f"  CPU seconds (user + system): ours {ours_cpu:.2f} (daemon and client) + {vtl_cpu:.2f} (the simulated "
              f"library, which a real drive would not cost), peer {peer_cpu:.2f} (tar, zstd, dd): ratio "
              f"{ours_cpu / peer_cpu:.2f}; load average {os.getloadavg()[0]:.1f}")
        print(f"verify pass: {verify_s:.2f} s, {verify['result']['verify']['bytes_read'] / 1e6:.0f} MB read "
              f"({verify['result']['verify']['bytes_read'] / verify_s / 1e6:.0f} MB/s)")
        print(f"one 1 MiB file: {r['bytes_read_from_tape'] / 2**20:.1f} MiB read from tape (goal: at most 2 frames, "
              f"8 MiB), command {restore_s:.2f} s")
        print(f"media rebuild: {rb['bytes_read'] / 2**20:.1f} MiB read of {rb['bytes_on_tape'] / 2**20:.0f} MiB on "
              f"tape ({rb['bytes_read'] / rb['bytes_on_tape']:.4f}), command {rebuild_s:.2f} s")
        print(json.dumps({"ours_s": ours_s, "peer_s": peer_s, "bytes": nbytes, "ours_mb_s": ours_mb_s,
                          "peer_mb_s": peer_mb_s, "ratio": ours_mb_s / peer_mb_s, "ours_cpu_s": ours_cpu,
                          "vtl_cpu_s": vtl_cpu, "peer_cpu_s": peer_cpu, "load": os.getloadavg(), "tape": tape,
                          "verify_s": verify_s, "one_file_read": r["bytes_read_from_tape"], "rebuild": rb}))
    finally:
        daemon.stop()
        vtl.stop()


if __name__ == "__main__":
    main()
