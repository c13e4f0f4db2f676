"""Tape figures with the timing model on (issue 7), on an accelerated clock, ours and the peer's from the same run:

    .venv/bin/python bench/tape_timing.py [--gib 2] [--clock-factor 100] [--work DIR]

A virtual LTO-9 library (`tapeline-vtl init --generation LTO-9 --clock-factor F`) served by `tapeline-vtl serve`, and
a real daemon (`tapeline serve`) that has it as library `lib`. The model's times run F times faster than real time
(an LTO-9 cartridge's first load, 20 minutes, would make a real-time run impractical); the library keeps the
simulated seconds it ran in `DIR/clock` (simulators/vtl/clock.py), read before and after each command.

Modelled seconds of a command = its real seconds - S/F + S, where S is the simulated seconds the library ran during
it: each model wait counted at its full modelled length, the host's own time as measured. An upper bound (a model
wait the host overlapped with its own work is counted twice).

- D2D2T write of a ~GIB GiB recovery point (random data: what zstd leaves of most data) to a new cartridge, pool
  --no-verify: `tapeline tape backup --wait`, against the model's best case for the peer (`tar | zstd -T0 -3 | dd
  bs=256k of=/dev/nst0`): first load + load + max(the peer's pipeline measured into a file, its bytes at the
  drive's native rate).
- The same write again at 1x (the library restarted on a real-time clock, the cartridge's first load behind it):
  whether the drive waited for data, and the job's warning when the data came slower than the drive's lowest
  speed-matching rate, against load + max(the peer's pipeline, its bytes at the native rate).
- One 1 MiB file halfway through the set, the cartridge back in its slot first: `tapeline tape restore PATH --wait`
  (its `first_byte_seconds`, and the whole command), against `tapeline-mtx load` + `tapeline-mt fsf N` through the
  same served library (measured, on the same clock) + `tapeline-vtl cat DIR BARCODE N | zstd -dc | tar -x
  --occurrence PATH` (the bytes `dd` would read; its streaming counted as max(measured, the bytes before the file's
  end at the native rate)).
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
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from store_sync import Daemon, timed  # noqa: E402 (bench/ is not a package)
from tape_write import serve, served_library  # noqa: E402

from simulators.vtl.clock import recorded_seconds  # noqa: E402
from simulators.vtl.library import edit_state  # noqa: E402
from simulators.vtl.personality import DRIVES  # noqa: E402

PY = sys.executable
VTL = str(Path(PY).with_name("tapeline-vtl"))
MT = str(Path(PY).with_name("tapeline-mt"))
MTX = str(Path(PY).with_name("tapeline-mtx"))
LTO9 = DRIVES["LTO-9"]
BIG = 64 << 20


def make_data(root: Path, gib: float) -> tuple[Path, int]:
    """Random files of 64 MiB, one per directory, and a 1 MiB file halfway (in the order the set holds them)."""
    count = max(2, int(gib * (1 << 30) / BIG))
    for i in range(count):
        d = root / f"d{i:03}"
        d.mkdir(parents=True)
        with open(d / "big.bin", "wb") as f:
            for _ in range(BIG >> 22):
                f.write(os.urandom(4 << 20))
    one = root / f"d{count // 2:03}" / "one.bin"
    one.write_bytes(os.urandom(1 << 20))
    return one, count * BIG + (1 << 20)


def modelled(real: float, simulated: float, factor: float) -> float:
    return real - simulated / factor + simulated


def retry(cmd: list[str], seconds: float = 60) -> None:
    """A command on a drive still becoming ready (its load modelled): repeated, as a script around mt would."""
    deadline = time.monotonic() + seconds
    while subprocess.run(cmd, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            subprocess.run(cmd, check=True)
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--clock-factor", type=float, default=100.0)
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/tapeline-bench/timing-work"))
    args = parser.parse_args()
    factor = args.clock_factor
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    data = args.work / "data"
    one, nbytes = make_data(data, args.gib)
    vtl = served_library(args.work, factor)
    lib = vtl.directory
    changer, drive0 = vtl.client_url, vtl.drive_url(0)
    daemon = Daemon(args.work)
    try:
        def cli(*a: str) -> None:
            subprocess.run(daemon.cli(*a), check=True, capture_output=True)

        def put_back(barcode: str) -> None:
            """The cartridge back in its slot (the jobs leave it in the drive, as backup software does, and so
            does the peer's `mtx load`)."""
            retry(daemon.cli("library", "inventory", "lib"))
            if daemon.run("media", "show", barcode)[1]["location"] == "drive":
                subprocess.run([MTX, "-f", changer, "unload"], check=True, capture_output=True)
                cli("library", "inventory", "lib")

        cli("library", "add", "lib", changer, drive0, vtl.drive_url(1))
        cli("pool", "create", "fast", "--library", "lib", "--no-verify")
        cli("group", "create", "bench", "--source", str(data))
        daemon.run("point", "bench", "--wait")

        s0 = recorded_seconds(lib)
        write_s, job = daemon.run("tape", "backup", "bench", "--pool", "fast", "--wait")
        write_sim = recorded_seconds(lib) - s0
        tape = job["result"]["tape"]
        peer_file = args.work / "peer.tar.zst"
        peer_s = timed(f"tar -cf - -C / {str(data).lstrip('/')} 2>/dev/null | zstd -T0 -3 -q | "
                       f"dd bs=256k of={peer_file} status=none", shell=True, executable="/bin/bash")
        peer_bytes = peer_file.stat().st_size
        peer_file.unlink()
        rate = LTO9.native_rate * 1e6
        ours_write = modelled(write_s, write_sim, factor)
        peer_write = LTO9.first_load_s + LTO9.load_s + max(peer_s, peer_bytes / rate)

        [written] = daemon.run("tape", "sets", "bench")[1]
        barcode, tape_file = written["cartridges"][0]["barcode"], written["cartridges"][0]["tape_file"]
        put_back(barcode)
        s1 = recorded_seconds(lib)
        restore_s, restored = daemon.run("tape", "restore", "bench", str(one), "--to", str(args.work / "ours"),
                                         "--wait")
        restore_sim = recorded_seconds(lib) - s1
        r = restored["result"]["restore"]
        if (args.work / "ours" / str(one).lstrip("/")).read_bytes() != one.read_bytes():
            raise SystemExit("ours restored the file wrong")
        ours_first = modelled(r["first_byte_seconds"], restore_sim, factor)
        ours_restore = modelled(restore_s, restore_sim, factor)

        put_back(barcode)
        slot = daemon.run("media", "show", barcode)[1]["location_number"]
        s2 = recorded_seconds(lib)
        started = time.perf_counter()
        subprocess.run([MTX, "-f", changer, "load", str(slot), "0"], check=True, capture_output=True)
        retry([MT, "-f", drive0, "fsf", str(tape_file)])
        position_s = time.perf_counter() - started
        position_sim = recorded_seconds(lib) - s2
        out = args.work / "peer"
        out.mkdir()
        member = str(one).lstrip("/")
        stream_s = timed(f"{VTL} cat {lib} {barcode} {tape_file} | zstd -dc | tar -x --occurrence -C {out} "
                         f"{member} 2>/dev/null; test -f {out / member}", shell=True, executable="/bin/bash")
        if (out / member).read_bytes() != one.read_bytes():
            raise SystemExit("the peer restored the file wrong")
        before = sum(p.stat().st_size for p in data.rglob("*") if p.is_file() and str(p) <= str(one))
        peer_stream_model = tape["tape_bytes"] * before / nbytes / rate
        peer_restore = modelled(position_s, position_sim, factor) + max(stream_s, peer_stream_model)

        # The same cartridge (its first load behind it) at 1x: the library restarted on a real-time clock, a
        # second full set appended; the drive's waits and the job's speed-floor warning are then a real drive's.
        put_back(barcode)
        vtl.stop()
        with edit_state(lib) as state:
            state.clock_factor = 1.0
        vtl = serve(lib)
        retry(daemon.cli("library", "inventory", "lib"))  # the first command after the restart finds it gone
        if daemon.run("media", "show", barcode)[1]["location"] != "slot":
            raise SystemExit(f"{barcode} is not in its slot before the 1x write")
        s3 = recorded_seconds(lib)
        real_s, real_job = daemon.run("tape", "backup", "bench", "--pool", "fast", "--wait")
        real_sim = recorded_seconds(lib) - s3
        real_tape = real_job["result"]["tape"]
        peer_real = LTO9.load_s + max(peer_s, peer_bytes / rate)

        print(f"LTO-9 timing model on, clock {factor:g}x real time; modelled seconds = real - S/{factor:g} + S "
              f"(S: simulated seconds the library ran during the command)")
        print(f"{'':44} {'Tapeline':>10} {'peer':>10} {'ratio':>7}")
        print(f"{'D2D2T write, whole command (modelled s)':44} {ours_write:10.1f} {peer_write:10.1f} "
              f"{ours_write / peer_write:7.3f}")
        print(f"  {nbytes / 2**30:.2f} GiB point, tape {tape['tape_bytes'] / 1e6:.0f} MB; ours: real {write_s:.2f} s, "
              f"S {write_sim:.1f} s (first load {LTO9.first_load_s:.0f} + load {LTO9.load_s:.0f} + stream), "
              f"job write {tape['seconds']} s = {tape['mb_s']} MB/s real; peer (best case): first load + load + "
              f"max(its pipeline {peer_s:.2f} s real, {peer_bytes / 1e6:.0f} MB at {LTO9.native_rate} MB/s)")
        first = LTO9.first_load_s
        print(f"{'  the same, a cartridge loaded before (no first load)':44} {ours_write - first:10.1f} "
              f"{peer_write - first:10.1f} {(ours_write - first) / (peer_write - first):7.3f}")
        print(f"  drive waited for data {tape['drive_waits']} times ({tape['drive_wait_seconds']} s real; on a "
              f"{factor:g}x clock the drive streams {LTO9.native_rate * factor / 1000:g} GB/s: this says nothing of "
              f"a real drive: the 1x run below does); job warnings: "
              f"{job.get('warnings') or 'none'}")
        print(f"{'one 1 MiB file: time to first byte (mod. s)':44} {ours_first:10.1f} {'':>10}")
        print(f"{'one 1 MiB file: whole command (modelled s)':44} {ours_restore:10.1f} {peer_restore:10.1f} "
              f"{ours_restore / peer_restore:7.3f}")
        print(f"  ours: {r['bytes_read_from_tape'] / 2**20:.1f} MiB read from tape, real {restore_s:.2f} s (first "
              f"byte {r['first_byte_seconds']} s into the job), S {restore_sim:.1f} s (load, locate, frames); peer: "
              f"mtx load + mt fsf {tape_file} real {position_s:.2f} s, S {position_sim:.1f} s; then cat | zstd -dc | "
              f"tar -x --occurrence real {stream_s:.2f} s, model {peer_stream_model:.1f} s for the "
              f"{tape['tape_bytes'] * before / nbytes / 1e6:.0f} MB before the file's end")
        print(f"{'D2D2T write at 1x, first load behind it (s)':44} {real_s:10.1f} {peer_real:10.1f} "
              f"{real_s / peer_real:7.3f}")
        print(f"  ours: S {real_sim:.1f} s, job write {real_tape['seconds']} s = {real_tape['mb_s']} MB/s, the drive "
              f"waited for data {real_tape['drive_waits']} times ({real_tape['drive_wait_seconds']} s); job "
              f"warnings: {real_job.get('warnings') or 'none'}; peer (best case): load + max(its pipeline, "
              f"its bytes at {LTO9.native_rate} MB/s)")
        print(json.dumps({"clock_factor": factor, "real_time_write_s": real_s, "real_time_job": real_job,
                          "real_time_simulated_s": real_sim, "peer_real_time_modelled_s": peer_real,
                          "bytes": nbytes, "tape": tape, "write_real_s": write_s,
                          "write_simulated_s": write_sim, "ours_write_modelled_s": ours_write,
                          "peer_real_s": peer_s, "peer_bytes": peer_bytes, "peer_write_modelled_s": peer_write,
                          "restore": r, "restore_real_s": restore_s, "restore_simulated_s": restore_sim,
                          "ours_first_byte_modelled_s": ours_first, "ours_restore_modelled_s": ours_restore,
                          "peer_position_real_s": position_s, "peer_position_simulated_s": position_sim,
                          "peer_stream_real_s": stream_s, "peer_stream_model_s": peer_stream_model,
                          "peer_restore_modelled_s": peer_restore}))
    finally:
        daemon.stop()
        vtl.stop()
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
