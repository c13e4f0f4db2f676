"""The catalog on SQLite and PostgreSQL: groups, points, the file-version index (an unchanged sync writes no version
row), pruning, and the schema stamp."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, inspect, text

from appliance.catalog import engine as engine_mod
from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import (SourceInput, change_group, create_group, delete_group, get_group,
                                      list_groups)
from appliance.catalog.points import IndexChange, drop_points, list_points, record_point, versions
from appliance.errors import Conflict, NotFound, UsageError

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def catalog(catalog_url):
    cat = open_catalog(catalog_url)
    yield cat
    cat.close()


def make_group(catalog, name="files", sources=("/srv/files",)):
    return create_group(catalog, name, [SourceInput(p) for p in sources], 900, ("08:00", "20:00"), 12 * 86400)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with cat.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    cat.close()


def test_group_create_show_change_delete(catalog):
    g = make_group(catalog, sources=("/srv/files", "/home/"))
    assert [s.path for s in g.sources] == ["/srv/files", "/home"]
    assert g.point_times == ("08:00", "20:00") and g.sync_seconds == 900 and not g.paused
    assert get_group(catalog, "files") == g
    with pytest.raises(Conflict, match="already exists"):
        make_group(catalog)
    changed = change_group(catalog, "files", sync_seconds=60, paused=True, remove_sources=["/home"],
                           add_sources=[SourceInput("/etc", exclude=("*.bak",))])
    assert changed.sync_seconds == 60 and changed.paused
    assert {s.path: s.exclude for s in changed.sources} == {"/srv/files": (), "/etc": ("*.bak",)}
    assert [x.name for x in list_groups(catalog)] == ["files"]
    delete_group(catalog, "files")
    with pytest.raises(NotFound, match="tapeline group list"):
        get_group(catalog, "files")


@pytest.mark.parametrize("name,sources,match", [
    ("bad name", ["/srv"], "not allowed"),
    ("ok", [], "at least one source"),
    ("ok", ["relative/dir"], "not an absolute path"),
    ("ok", ["/srv", "/srv/a"], "inside source /srv"),
])
def test_group_refuses_bad_input_naming_the_fix(catalog, name, sources, match):
    with pytest.raises(UsageError, match=match) as info:
        make_group(catalog, name, sources)
    assert info.value.fix


def _count_version_writes(catalog):
    seen = []

    @event.listens_for(catalog.engine, "before_cursor_execute")
    def _spy(conn, cursor, statement, params, context, executemany):
        s = statement.lower()
        if "file_version" in s and (s.startswith("insert") or s.startswith("update") or s.startswith("delete")):
            seen.append(statement)

    return seen


def _version_rows(catalog) -> int:
    with catalog.engine.connect() as conn:
        return conn.execute(text("select count(*) from file_version")).scalar()


def test_version_index_follows_changes_and_an_unchanged_sync_writes_no_version_row(catalog):
    g = make_group(catalog)
    src = "/srv/files"
    p1 = record_point(catalog, g.id, "s1", "sync", T0, 3, 30, [
        IndexChange(src, b"", "added", "dir"), IndexChange(src, b"a.txt", "added", size=10, mtime_ns=1),
        IndexChange(src, b"b.txt", "added", size=20, mtime_ns=1)])
    writes = _count_version_writes(catalog)  # UPDATEs and INSERTs (PostgreSQL inserts by COPY: counted as rows)
    rows = _version_rows(catalog)
    p2 = record_point(catalog, g.id, "s2", "sync", T0 + timedelta(minutes=15), 3, 30, [])
    assert writes == [] and _version_rows(catalog) == rows  # nothing changed: no file_version row written
    p3 = record_point(catalog, g.id, "s3", "point", T0 + timedelta(minutes=30), 2, 11, [
        IndexChange(src, b"a.txt", "changed", size=11, mtime_ns=2), IndexChange(src, b"b.txt", "deleted")])
    assert writes[0].startswith("UPDATE")  # one executemany closing a.txt and b.txt
    assert _version_rows(catalog) == rows + 1  # and the new a.txt

    a = versions(catalog, "/srv/files/a.txt")
    assert [(v.size, v.first_point.id, v.last_point.id, v.points, v.current) for v in a] == [
        (10, p1, p2, 2, False), (11, p3, p3, 1, True)]
    b = versions(catalog, "/srv/files/b.txt")
    assert [(v.first_point.snapshot_id, v.last_point.snapshot_id, v.current) for v in b] == [("s1", "s2", False)]
    assert [v.kind for v in versions(catalog, "/srv/files/")] == ["dir"]
    assert versions(catalog, "/srv/other") == []

    # Prune the two oldest points: b.txt's only version goes, a.txt keeps its newest version.
    assert drop_points(catalog, g.id, ["s1", "s2"]) == 2
    assert versions(catalog, "/srv/files/b.txt") == []
    assert [v.size for v in versions(catalog, "/srv/files/a.txt")] == [11]
    assert [p.snapshot_id for p in list_points(catalog, g.id, g.name)] == ["s3"]


def test_non_utf8_names_survive_the_index(catalog):
    g = make_group(catalog)
    name = b"caf\xe9.txt"
    record_point(catalog, g.id, "s1", "sync", T0, 1, 1, [IndexChange("/srv/files", name, "added", size=1)])
    import os
    [v] = versions(catalog, "/srv/files/" + os.fsdecode(name))
    assert os.fsencode(v.path).endswith(name)


def test_bulk_index_of_many_files(catalog):
    # (how fast is bench/store_sync.py's business: a time limit here would fail on a loaded machine)
    g = make_group(catalog)
    n = 50_000
    record_point(catalog, g.id, "s1", "sync", T0, n, n, (IndexChange("/srv/files", b"d/f%06d" % i, "added", size=i)
                                                         for i in range(n)))
    with catalog.engine.connect() as conn:
        assert conn.execute(text("select count(*) from file_version")).scalar() == n
    assert [v.size for v in versions(catalog, "/srv/files/d/f049999")] == [49_999]


def test_deleting_a_group_removes_its_index(catalog):
    g = make_group(catalog)
    record_point(catalog, g.id, "s1", "sync", T0, 1, 1, [IndexChange("/srv/files", b"x", "added")])
    delete_group(catalog, "files")
    assert versions(catalog, "/srv/files/x") == []
    with catalog.engine.connect() as conn:
        assert conn.execute(text("select count(*) from recovery_point")).scalar() == 0


def test_a_catalog_from_a_newer_tapeline_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    cat = open_catalog(url)
    with cat.engine.begin() as conn:
        conn.execute(text("update schema_version set version = 999"))
    cat.close()
    from appliance.errors import TapelineError
    with pytest.raises(TapelineError, match="newer than this Tapeline"):
        open_catalog(url)


def test_reads_do_not_wait_for_a_long_write_on_sqlite(tmp_path):
    import threading
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    make_group(cat)
    done = threading.Event()
    with cat.engine.begin() as conn:  # a big sync recording its versions holds the write lock
        conn.execute(text("update protection_group set paused = 1"))
        reader = threading.Thread(target=lambda: (list_groups(cat), versions(cat, "/srv/files/x"), done.set()))
        reader.start()
        # the writer holds its lock until this block ends: a read that waited for it would never be done here
        assert done.wait(60), "a read waited for the writer"
        assert list_groups(cat)[0].paused is False  # it sees the last committed state
    reader.join()
    cat.close()


def _until_indexes(catalog) -> set[str]:
    return {i["name"] for i in inspect(catalog.engine).get_indexes("file_version")
            if i["column_names"] == ["until_point"]}


def test_a_catalog_with_the_old_full_until_index_gets_the_partial_one_and_still_prunes(catalog_url):
    old = open_catalog(catalog_url)
    g = make_group(old)
    src = "/srv/files"
    record_point(old, g.id, "s1", "sync", T0, 2, 2, [IndexChange(src, b"a", "added", size=1),
                                                     IndexChange(src, b"b", "added", size=1)])
    record_point(old, g.id, "s2", "sync", T0 + timedelta(minutes=15), 1, 1, [IndexChange(src, b"b", "deleted")])
    with old.engine.begin() as conn:  # as a catalog made before: every row's until_point indexed, NULLs too
        conn.execute(text("DROP INDEX ix_file_version_closed"))
        conn.execute(text("CREATE INDEX ix_file_version_until_point ON file_version (until_point)"))
    old.close()

    catalog = open_catalog(catalog_url)
    assert _until_indexes(catalog) == {"ix_file_version_closed"}
    assert drop_points(catalog, g.id, ["s1"]) == 1
    assert versions(catalog, "/srv/files/b") == [] and [v.size for v in versions(catalog, "/srv/files/a")] == [1]
    catalog.close()


def test_a_big_commit_leaves_the_wal_checkpoint_to_the_catalogs_own_thread(tmp_path, monkeypatch):
    # A first sync's point must not wait for its pages to be copied into the database file: the commit leaves them
    # in the WAL, and the catalog's checkpointer copies them afterwards (on close at the latest).
    path = tmp_path / "c.sqlite"
    monkeypatch.setattr(engine_mod, "CHECKPOINT_DELAY_S", 3600)
    catalog = open_catalog(f"sqlite:///{path}")
    g = make_group(catalog)
    before = path.stat().st_size
    n = 50_000
    record_point(catalog, g.id, "s1", "sync", T0, n, n, (IndexChange("/srv/files", b"d/f%06d" % i, "added", size=i)
                                                         for i in range(n)))
    assert path.stat().st_size == before  # all of it still in the WAL
    catalog.close()
    assert path.stat().st_size > before + n * 20

    monkeypatch.setattr(engine_mod, "CHECKPOINT_DELAY_S", 0)
    catalog = open_catalog(f"sqlite:///{path}")
    before = path.stat().st_size
    record_point(catalog, g.id, "s2", "sync", T0 + timedelta(minutes=1), n, n,
                 (IndexChange("/srv/files", b"e/f%06d" % i, "added", size=i) for i in range(n)))
    for _ in range(600):  # the checkpointer runs soon after the commit (polled: a loaded machine may be slow)
        if path.stat().st_size > before + n * 20:
            break
        time.sleep(0.05)
    assert path.stat().st_size > before + n * 20
    catalog.close()


def test_a_catalog_from_schema_1_is_upgraded_and_keeps_its_rows(tmp_path):
    """An operator upgrading Tapeline keeps the catalog: the tables and columns of offsite rotation are added, the
    old cartridges and pools read with the defaults, and the stamp says 2."""
    import sqlite3
    from pathlib import Path

    from appliance.catalog.models import SCHEMA_VERSION, Cartridge, Pool
    from sqlmodel import select

    path = tmp_path / "c.sqlite"
    old = sqlite3.connect(path)
    old.executescript((Path(__file__).parent / "fixtures" / "catalog-schema1.sql").read_text())
    old.execute("insert into library (name, changer_url, drive_urls, created) values ('vtl', 'local:///x', '[]', "
                "'2026-01-01 00:00:00')")
    old.execute("insert into pool (name, library_id, retention_seconds, allocation, verify, reuse_delay_seconds, "
                "created) values ('weekly', 1, 86400, 'continue', 1, 0, '2026-01-01 00:00:00')")
    old.execute("insert into cartridge (barcode, library_id, state, write_protected, bytes_written, mounts, "
                "read_errors, write_errors, location_kind, cleaning_uses, next_file, first_seen) values "
                "('A00001L9', 1, 'scratch', 0, 0, 0, 0, 0, 'slot', 0, 0, '2026-01-01 00:00:00')")
    old.commit()
    old.close()

    cat = open_catalog(f"sqlite:///{path}")
    with cat.reader() as s:
        cart = s.exec(select(Cartridge)).one()
        pool = s.exec(select(Pool)).one()
        assert (cart.barcode, cart.rotation, cart.vault_id, cart.case_id) == ("A00001L9", "mountable", None, None)
        assert (pool.vault_id, pool.offsite_copies, pool.recall, pool.gfs) == (None, 1, "expired", {})
        assert s.exec(text("select version from schema_version")).one()[0] == SCHEMA_VERSION == 2
        assert {"vault", "media_case", "cartridge_move"} <= set(inspect(cat.engine).get_table_names())
    _has_rotation_indexes_and_keys(cat)
    cat.close()
    open_catalog(f"sqlite:///{path}").close()  # a second open finds nothing to add


def _has_rotation_indexes_and_keys(cat) -> None:
    """What create_all gives the added columns in a new catalog: their indexes and foreign keys."""
    have = inspect(cat.engine)
    indexes = {i["name"]: i["column_names"] for i in have.get_indexes("cartridge")}
    assert indexes["ix_cartridge_vault_id"] == ["vault_id"] and indexes["ix_cartridge_case_id"] == ["case_id"]
    keys = {(tuple(k["constrained_columns"]), k["referred_table"]) for k in have.get_foreign_keys("cartridge")}
    assert {(("vault_id",), "vault"), (("case_id",), "media_case")} <= keys


def test_a_current_catalog_is_not_searched_for_missing_columns(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    open_catalog(url).close()

    def searched(_engine):
        raise AssertionError("the columns of a current catalog were inspected")
    monkeypatch.setattr(engine_mod, "_add_columns", searched)
    open_catalog(url).close()


@pytest.mark.postgres
def test_a_postgresql_catalog_without_the_rotation_columns_gets_them(pg_url):
    cat = open_catalog(pg_url)
    with cat.engine.begin() as conn:
        for column in ("rotation", "vault_id", "case_id"):
            conn.execute(text(f"alter table cartridge drop column {column}"))
        conn.execute(text("insert into library (name, changer_url, drive_urls, created) values "
                          "('vtl', 'local:///x', '[]', now())"))
        conn.execute(text("insert into cartridge (barcode, library_id, state, write_protected, bytes_written, "
                          "mounts, read_errors, write_errors, location_kind, cleaning_uses, next_file, first_seen) "
                          "values ('A00001L9', 1, 'scratch', false, 0, 0, 0, 0, 'slot', 0, 0, now())"))
        conn.execute(text("update schema_version set version = 1"))
    cat.close()
    cat = open_catalog(pg_url)
    with cat.engine.connect() as conn:
        assert conn.execute(text("select barcode, rotation from cartridge")).one() == ("A00001L9", "mountable")
        assert conn.execute(text("select version from schema_version")).scalar() == 2
    _has_rotation_indexes_and_keys(cat)
    cat.close()
