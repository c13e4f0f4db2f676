"""Shared fixtures: a clean environment for every test, and a PostgreSQL server for the catalog tests.

PostgreSQL: `TAPELINE_TEST_PG_URL` (set by .ci/run) names a running server; when it is unset and the PostgreSQL
binaries exist, the session starts its own throw-away cluster with scripts/start-postgres and stops it at the end.
Each test that asks for a PostgreSQL catalog gets a database of its own (created and dropped around it), so tests do
not see each other's rows. Without a server the `postgres` tests fail with the fix (`./dev test` installs
PostgreSQL; they are deselected with `-m "not postgres"`): a skip would pass a run that checked half the catalog.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No TAPELINE_* from the developer's shell, and never the machine's /etc/tapeline: only what a test sets."""
    for key in list(os.environ):
        if key.startswith("TAPELINE_") and key != "TAPELINE_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setattr("appliance.config.DEFAULT_CONFIG_FILE", tmp_path / "no-such-tapeline.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server():
    """The URL of a PostgreSQL server's `postgres` database."""
    url = os.environ.get("TAPELINE_TEST_PG_URL")
    if url:
        yield url
        return
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.fail("PostgreSQL is not installed: run `./dev test` (it installs it), set TAPELINE_TEST_PG_URL, "
                    'or leave these tests out with -m "not postgres"', pytrace=False)
    # Under /tmp, not pytest's tmp dir: the cluster runs as `postgres`, which needs 0755 parents.
    base = Path(tempfile.mkdtemp(prefix="tapeline-pg-"))
    base.chmod(0o755)
    script = ROOT / "scripts" / "start-postgres"
    run = subprocess.run(["bash", str(script), str(base / "pg"), str(_free_port())], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"scripts/start-postgres failed: {run.stderr.strip()}")
    try:
        yield run.stdout.strip()
    finally:
        subprocess.run(["bash", str(script), "--stop", str(base / "pg")], capture_output=True)
        subprocess.run(["rm", "-rf", str(base)])


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty PostgreSQL database for one test."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_server.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path):
    """A catalog URL on each supported database: a SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("pg_url")
