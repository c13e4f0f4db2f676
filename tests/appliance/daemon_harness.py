"""A real daemon for the end-to-end tests: `tapeline serve` in a subprocess on a tmp data directory and its own Unix
socket, with the catalog on SQLite or PostgreSQL; driven through the real `tapeline` command and the API client.

A module of its own, not conftest.py: every tests/ folder has a conftest, and `from conftest import` picks whichever
came first on sys.path."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TAPELINE = str(Path(sys.executable).with_name("tapeline"))


class Daemon:
    def __init__(self, data: Path, config_file: Path | None, args: list[str], env: dict[str, str] | None = None):
        self.data = data
        self.env = env or {}
        self.config_file = config_file
        self.args = args
        self.socket = data / "run" / "tapeline.sock"
        self.log = data.parent / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Daemon":
        self.data.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([TAPELINE, *self.args], stdout=log, stderr=log,
                                     env={**os.environ, "TAPELINE_DATA": "", **self.env})
        deadline = time.monotonic() + timeout
        from appliance.api.client import Client
        from appliance.errors import DaemonUnreachable
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with Client(self.socket, timeout=2) as c:
                    c.status()
                return self
            except DaemonUnreachable:
                if time.monotonic() > deadline:
                    raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log.read_text()}")
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def client(self):
        from appliance.api.client import Client
        return Client(self.socket)

    def run(self, *args: str, check: int | None = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        """`tapeline --data DATA ARGS...`; asserts the exit code unless check is None."""
        proc = subprocess.run([TAPELINE, "--data", str(self.data), *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "TAPELINE_DATA": ""})
        if check is not None:
            assert proc.returncode == check, (f"tapeline {' '.join(args)} exited {proc.returncode}, wanted {check}\n"
                                              f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def json(self, *args: str, check: int | None = 0):
        return json.loads(self.run("--json", *args, check=check).stdout)


def make_daemon(tmp_path: Path, catalog_url: str | None, env: dict[str, str] | None = None) -> Daemon:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "tapeline.toml"
    # No recovery point on a clock by default: one at 08:00 would come between a test's own jobs when run then.
    lines = [f'data_dir = "{data}"', "[api]", f'socket = "{data}/run/tapeline.sock"', 'group = "tapeline-none"',
             "[defaults]", "points = []", "[log]", 'level = "info"']
    if catalog_url:
        lines += ["[catalog]", f'url = "{catalog_url}"']
    config.write_text("\n".join(lines) + "\n")
    return Daemon(data, config, ["serve", "--config", str(config)], env)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def start_up(tmp_path: Path, env: dict[str, str] | None = None) -> Daemon:
    """`tapeline up`: the daemon on its embedded defaults, its simulator registered as library `vtl`, the `demo`
    group."""
    data = tmp_path / "data"
    config = tmp_path / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "tapeline-none"\n'
                      f'[defaults]\npoints = []\n[vtl]\nlisten = "127.0.0.1:{free_port()}"\n')
    return Daemon(data, config, ["--config", str(config), "up"], env=env).start()


def stop_clean(d: Daemon, sig: int = signal.SIGTERM) -> None:
    """Stop `d` as its service manager (SIGTERM) or Ctrl-C (SIGINT) would: it must exit 0 with no traceback."""
    code = d.stop(sig)
    text = d.log.read_text()
    assert code == 0, f"daemon exited {code}:\n{text}"
    assert "Traceback" not in text, text


def stop_up(d: Daemon) -> None:
    stop_clean(d, signal.SIGINT)
