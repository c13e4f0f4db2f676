"""The console's tests run against a real daemon (`tapeline serve` on a tmp data directory, SQLite catalog)."""

from __future__ import annotations

import pytest

from tests.appliance.daemon_harness import make_daemon


@pytest.fixture
def daemon(tmp_path):
    d = make_daemon(tmp_path, None).start()
    yield d
    code = d.stop()
    text = d.log.read_text()
    assert code == 0, f"daemon exited {code}:\n{text}"
    assert "Traceback" not in text, text
