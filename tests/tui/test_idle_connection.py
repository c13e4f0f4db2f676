"""The console keeps one connection to the daemon per worker thread, and Textual reuses its worker threads: a call
after the connection sat idle longer than the daemon keeps it open (uvicorn closes it after 5 s) must still be
answered, not shown as "cannot reach the daemon"."""

from __future__ import annotations

import time

from tui.daemon import Daemon

IDLE = 6.0  # seconds: past uvicorn's keep-alive (5 s), so the daemon has closed the connection


def test_a_call_after_the_daemon_closed_the_idle_connection_is_answered(daemon):
    console = Daemon(daemon.socket)
    assert console.groups() == []
    time.sleep(IDLE)  # the daemon closes the idle connection meanwhile
    assert console.status()["groups"] == []
