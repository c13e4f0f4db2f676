"""The catalog engine: SQLite in WAL mode by default, PostgreSQL (psycopg) by URL.

Invariants:
- SQLite connections run `journal_mode=WAL`, `synchronous=NORMAL`, `foreign_keys=ON` and a busy timeout, and never
  checkpoint the WAL as they commit: a Catalog's own thread does (`_Checkpointer`), so a big transaction's commit
  does not wait for its pages to be copied into the database file and fsynced (~0.1 s for a first sync's point of
  100k files, on the job's path before this). Writing
  transactions (`session()`, `engine`) start with `BEGIN IMMEDIATE`: the daemon's threads then queue for the write
  lock instead of failing when a read transaction tries to become a write one after another thread committed
  (SQLITE_BUSY_SNAPSHOT). Read-only work (`reader()`, `read_engine`) uses a plain deferred BEGIN, so under WAL it
  never waits for a writer: the CLI sees progress while a big sync records its file versions.
- `Catalog.session()` commits when the block ends normally and rolls back on an exception; objects stay usable after
  the commit (expire_on_commit=False), so callers may return them.
- The schema is created on open and stamped in `schema_version`; a catalog from a newer Tapeline is refused, one from
  an older Tapeline gets the tables and columns added since (each added column nullable or with a server default,
  with its foreign key and indexes); the columns are looked for only when the stored schema is older.
- A write that fails for want of space (SQLite's "database or disk is full", PostgreSQL's disk_full) raises
  Unavailable naming where to free space, from any engine user (ORM, Core, the scheduler's job store), and leaves
  `Catalog.unwritable` set until `check_writable()` finds a write possible again (the daemon's watchdog calls it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import AddConstraint, CreateColumn
from sqlmodel import Session, SQLModel

from appliance.catalog.models import CLOSED_INDEX, OLD_UNTIL_INDEX, SCHEMA_VERSION, FileVersion, SchemaVersion
from appliance.errors import TapelineError, Unavailable

log = logging.getLogger("tapeline.catalog")

SQLITE_BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_DELAY_S = 0.5  # after a commit, before the checkpoint: the commits of one job step share one


class _Checkpointer:
    """Copies the WAL into the database file on a thread of its own, CHECKPOINT_DELAY_S after a connection of the
    engine is given back (its transaction is over), through a connection of its own (PASSIVE: it never waits for a
    reader or a writer, and what a reader still needs is left for the next one). The last one runs on stop."""

    def __init__(self, engine: Engine, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stop = threading.Event()
        event.listen(engine, "checkin", lambda _dbapi, _record: self._wake.set())
        self._thread = threading.Thread(target=self._run, name="catalog-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            while not self._stop.is_set():
                self._wake.wait()
                self._stop.wait(CHECKPOINT_DELAY_S)
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # a full disk: the writers alert it; the next commit tries again
                    log.debug("catalog checkpoint: %s", exc)
        except sqlite3.Error as exc:
            log.warning("catalog checkpoints stopped: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()


def _private(path: Path) -> None:
    """The catalog names every protected file: readable by its owner only. SQLite gives its -wal and -shm files the
    database file's mode, so creating that one 0600 is enough; an older catalog's files are narrowed."""
    os.close(os.open(path, os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            st = f.stat()
            if st.st_mode & 0o077 and st.st_uid == os.getuid():
                f.chmod(0o600)
        except FileNotFoundError:
            pass


def make_engine(url: str, immediate: bool = True) -> Engine:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _private(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA wal_autocheckpoint=0")  # Catalog's checkpointer does it, off the committing thread
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _disk_full(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if getattr(exc, "sqlstate", None) == "53100":  # PostgreSQL's disk_full
        return True
    return "database or disk is full" in str(exc) or "No space left on device" in str(exc)


class Catalog:
    def __init__(self, engine: Engine, read_engine: Engine | None = None):
        self.engine = engine
        self.read_engine = read_engine or engine
        self.unwritable: Unavailable | None = None  # set while writes fail for want of space
        for eng in {engine, self.read_engine}:
            event.listen(eng, "handle_error", self._on_error)
        path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._checkpointer = _Checkpointer(engine, path) if path and path != ":memory:" else None

    @property
    def shown(self) -> str:
        """The catalog's URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def where(self) -> str:
        """Where the catalog's space comes from, for an operator to free."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            return str(Path(url.database or ".").resolve().parent)
        return f"the data directory of the PostgreSQL server at {url.host or 'localhost'}:{url.port or 5432}"

    def _on_error(self, context) -> None:
        if _disk_full(context.original_exception):
            err = Unavailable(f"the catalog cannot be written: no space left ({context.original_exception})".strip(),
                              f"free space under {self.where}; Tapeline resumes by itself, nothing needs a restart")
            if self.unwritable is None:
                log.error("catalog: %s: %s", err.message, err.fix)
            self.unwritable = err
            raise err from context.original_exception

    def check_writable(self) -> bool:
        """Try a write that changes nothing; clears `unwritable` when it succeeds."""
        try:
            with self.engine.begin() as conn:
                conn.execute(text("UPDATE schema_version SET version = version WHERE id = 1"))
        except Unavailable:
            return False
        self.unwritable = None
        return True

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
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _upgrade_indexes(engine: Engine) -> None:
    """A catalog made before the partial index on closed versions gets it, and loses the full one it replaces
    (create_all adds no index to a table that exists). Either index serves the same queries: no schema bump."""
    with engine.begin() as conn:
        next(i for i in FileVersion.__table__.indexes if i.name == CLOSED_INDEX).create(conn, checkfirst=True)
        conn.execute(text(f"DROP INDEX IF EXISTS {OLD_UNTIL_INDEX}"))


def _add_columns(engine: Engine) -> None:
    """A catalog made by an older Tapeline gets the columns added since (create_all adds tables, never columns), with
    what create_all gives a column in a new table: its foreign key and its indexes. Every column added after schema
    1 is nullable or has a server default, so the old rows take it as they are. Run only when the stored schema is
    older than SCHEMA_VERSION (open_catalog): it inspects every table."""
    with engine.begin() as conn:
        have = inspect(conn)
        for table in SQLModel.metadata.sorted_tables:
            if not have.has_table(table.name):
                continue
            present = {c["name"] for c in have.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                if not column.nullable and column.server_default is None:
                    raise TapelineError(f"the catalog lacks {table.name}.{column.name}, which has no default to add "
                                        "it with", "report this as a bug in Tapeline")
                ddl = str(CreateColumn(column).compile(dialect=engine.dialect))
                if engine.dialect.name == "sqlite":  # SQLite adds a constraint only inside the column's definition
                    for fk in column.foreign_keys:
                        target = fk.column
                        ddl += f" REFERENCES {target.table.name} ({target.name})"
                        if fk.ondelete:
                            ddl += f" ON DELETE {fk.ondelete}"
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
                if engine.dialect.name != "sqlite":
                    for fk in column.foreign_keys:
                        conn.execute(AddConstraint(fk.constraint))
                for index in table.indexes:
                    if column in index.columns.values():
                        index.create(conn, checkfirst=True)
                log.info("catalog: added column %s.%s", table.name, column.name)


def open_catalog(url: str) -> Catalog:
    """Open (and create or upgrade-check) the catalog at `url`. Raises TapelineError naming the fix."""
    engine = make_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            found = (conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar()
                     if inspect(conn).has_table("schema_version") else None)
            if found is not None and found > SCHEMA_VERSION:
                raise TapelineError(f"the catalog at {shown} has schema {found}, newer than this Tapeline "
                                    f"({SCHEMA_VERSION})", "upgrade Tapeline, or rebuild a fresh catalog with "
                                    "`tapeline catalog rebuild`")
        SQLModel.metadata.create_all(engine)
        if found is not None and found < SCHEMA_VERSION:
            _add_columns(engine)
        _upgrade_indexes(engine)
        with Session(engine) as session:
            row = session.get(SchemaVersion, 1)
            if row is None:
                session.add(SchemaVersion(id=1, version=SCHEMA_VERSION))
            elif row.version < SCHEMA_VERSION:
                log.info("catalog: schema %d upgraded to %d", row.version, SCHEMA_VERSION)
                row.version = SCHEMA_VERSION
                session.add(row)
            session.commit()
    except OperationalError as exc:
        engine.dispose()
        raise TapelineError(f"cannot open the catalog at {shown} ({exc.orig})",
                            "check catalog.url in the configuration and that the database is running") from exc
    return Catalog(engine, make_engine(url, immediate=False) if engine.dialect.name == "sqlite" else None)
