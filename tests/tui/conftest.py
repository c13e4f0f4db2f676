"""The console's tests run against a real daemon (`tapeline serve` on a tmp data directory, SQLite catalog), or
`tapeline up` with its embedded simulator where a library is needed."""

from __future__ import annotations

import signal
import socket

import pytest

from tests.appliance.daemon_harness import Daemon, make_daemon


@pytest.fixture
def daemon(tmp_path):
    d = make_daemon(tmp_path, None).start()
    yield d
    code = d.stop()
    text = d.log.read_text()
    assert code == 0, f"daemon exited {code}:\n{text}"
    assert "Traceback" not in text, text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def up(tmp_path):
    """`tapeline up`: the daemon, its embedded simulator registered as library `vtl`, and the `demo` group."""
    data = tmp_path / "data"
    config = tmp_path / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "tapeline-none"\n'
                      f'[defaults]\npoints = []\n[vtl]\nlisten = "127.0.0.1:{_free_port()}"\n')
    d = Daemon(data, config, ["--config", str(config), "up"]).start()
    yield d
    assert d.stop(signal.SIGINT) == 0
    assert "Traceback" not in d.log.read_text()
