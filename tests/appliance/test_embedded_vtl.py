"""`tapeline up` runs the virtual tape library beside the daemon, reachable as any other process would reach it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from daemon_harness import Daemon

MTX = str(Path(sys.executable).with_name("tapeline-mtx"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def up_with_library(tmp_path: Path) -> tuple[Daemon, int]:
    data, port = tmp_path / "data", free_port()
    config = tmp_path / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "tapeline-none"\n'
                      f'[vtl]\nlisten = "127.0.0.1:{port}"\n')
    return Daemon(data, config, ["--config", str(config), "up"]).start(), port


def test_up_serves_a_default_library_that_mtx_scripts_can_drive(tmp_path):
    d, port = up_with_library(tmp_path)
    try:
        status = subprocess.run([MTX, "-f", f"stream+socket://127.0.0.1:{port}/changer", "status"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0] == f"  Storage Changer stream+socket://127.0.0.1:{port}/changer:2 Drives, 28 Slots ( 4 Import/Export )"
        assert any("VolumeTag=CLN" in line for line in lines)  # a cleaning cartridge, as an operator expects
    finally:
        assert d.stop(signal.SIGINT) == 0
    assert refused(port)  # the library stops with the daemon
    assert (d.data / "vtl" / "state.json").exists()  # and its cartridges stay for the next start


def test_a_killed_daemon_takes_its_library_server_with_it(tmp_path):
    d, port = up_with_library(tmp_path)
    d.kill()
    deadline = time.monotonic() + 10
    while not refused(port):
        assert time.monotonic() < deadline, "the library server outlived a kill -9 of the daemon"
        time.sleep(0.1)
