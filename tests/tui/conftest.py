"""The console's tests run against a real daemon (`tapeline serve` on a tmp data directory, SQLite catalog), or
`tapeline up` with its embedded simulator where a library is needed."""

from __future__ import annotations


import pytest

from tests.appliance.daemon_harness import make_daemon, start_up, stop_clean, stop_up


@pytest.fixture
def daemon(tmp_path):
    d = make_daemon(tmp_path, None).start()
    yield d
    stop_clean(d)


@pytest.fixture
def up(tmp_path):
    """`tapeline up`: the daemon, its embedded simulator registered as library `vtl`, and the `demo` group."""
    d = start_up(tmp_path)
    yield d
    stop_up(d)
