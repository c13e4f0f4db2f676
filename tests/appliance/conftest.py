"""Fixtures over the daemon harness: a running `tapeline serve` on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from daemon_harness import make_daemon, stop_clean


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def daemon(request, tmp_path):
    """A running `tapeline serve` on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    d = make_daemon(tmp_path, url).start()
    yield d
    stop_clean(d)


@pytest.fixture
def sqlite_daemon(tmp_path):
    d = make_daemon(tmp_path, None).start()
    yield d
    d.stop()
