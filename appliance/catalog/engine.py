"""The catalog engine: SQLite in WAL mode by default, PostgreSQL (psycopg) by URL.

Invariants:
- SQLite connections run `journal_mode=WAL`, `synchronous=NORMAL`, `foreign_keys=ON` and a busy timeout. Writing
  transactions (`session()`, `engine`) start with `BEGIN IMMEDIATE`: the daemon's threads then queue for the write
  lock instead of failing when a read transaction tries to become a write one after another thread committed
  (SQLITE_BUSY_SNAPSHOT). Read-only work (`reader()`, `read_engine`) uses a plain deferred BEGIN, so under WAL it
  never waits for a writer: the CLI sees progress while a big sync records its file versions.
- `Catalog.session()` commits when the block ends normally and rolls back on an exception; objects stay usable after
  the commit (expire_on_commit=False), so callers may return them.
- The schema is created on open and stamped in `schema_version`; a catalog from a newer Tapeline is refused.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from appliance.catalog.models import SCHEMA_VERSION, SchemaVersion
from appliance.errors import TapelineError

log = logging.getLogger("tapeline.catalog")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, immediate: bool = True) -> Engine:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Catalog:
    def __init__(self, engine: Engine, read_engine: Engine | None = None):
        self.engine = engine
        self.read_engine = read_engine or engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session for reading only (nothing is committed)."""
        with Session(self.read_engine) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def open_catalog(url: str) -> Catalog:
    """Open (and create or upgrade-check) the catalog at `url`. Raises TapelineError naming the fix."""
    engine = make_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        SQLModel.metadata.create_all(engine)
        with Session(engine) as session:
            row = session.get(SchemaVersion, 1)
            if row is None:
                session.add(SchemaVersion(id=1, version=SCHEMA_VERSION))
                session.commit()
            elif row.version > SCHEMA_VERSION:
                raise TapelineError(f"the catalog at {shown} has schema {row.version}, newer than this Tapeline "
                                    f"({SCHEMA_VERSION})", "upgrade Tapeline, or rebuild a fresh catalog with "
                                    "`tapeline catalog rebuild`")
    except OperationalError as exc:
        engine.dispose()
        raise TapelineError(f"cannot open the catalog at {shown} ({exc.orig})",
                            "check catalog.url in the configuration and that the database is running") from exc
    return Catalog(engine, make_engine(url, immediate=False) if engine.dialect.name == "sqlite" else None)
