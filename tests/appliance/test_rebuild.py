"""The catalog rebuilt from the store alone gives the same points and file versions as the live index, on SQLite and
PostgreSQL; a daemon whose catalog was lost rebuilds it on start; `tapeline catalog rebuild` does it on request."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, create_group, get_group, list_groups
from appliance.catalog.points import list_points, record_point, versions
from appliance.catalog.rebuild import GroupDefaults, Reconciled, rebuild_from_store, reconcile
from appliance.ops.tasks import group_spec
from appliance.protect import files as protect
from appliance.store import Store

DEFAULTS = GroupDefaults(900, ("08:00", "20:00"), 12 * 86400)


def snapshot_versions(catalog, paths):
    return {p: [(v.kind, v.size, v.first_point.snapshot_id, v.last_point.snapshot_id, v.points, v.current)
                for v in versions(catalog, p)] for p in paths}


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store", create=True)
    yield s
    s.close()


def test_rebuild_matches_the_live_index(store, catalog_url, tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("one")
    (src / "d" / "b.txt").write_text("bee")
    live = open_catalog(catalog_url)
    group = create_group(live, "g", [SourceInput(str(src))], 900, ("08:00",), 86400)
    t = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    def point(minutes):
        res = protect.sync(store, group_spec(group), kind="point", now=t + timedelta(minutes=minutes))
        assert res.state == "completed", res.reason
        snap = res.snapshot
        record_point(live, group.id, snap.id, snap.kind, snap.created, snap.files, snap.bytes,
                     res.changes.brief())

    point(0)
    (src / "a.txt").write_text("two!")
    os.utime(src / "a.txt", ns=(1, 2_000_000_000))
    point(1)
    (src / "d" / "b.txt").unlink()
    (src / "c.txt").write_text("sea")
    point(2)
    writes = []

    @event.listens_for(live.engine, "before_cursor_execute")
    def spy(conn, cursor, statement, params, context, executemany):
        if "file_version" in statement and statement.split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    point(3)  # nothing changed: the live index writes no file_version row
    assert writes == []
    event.remove(live.engine, "before_cursor_execute", spy)
    paths = [str(src / n) for n in ("a.txt", "d/b.txt", "c.txt", "d")] + [str(src)]
    expected = snapshot_versions(live, paths)
    assert [len(expected[p]) for p in paths[:3]] == [2, 1, 1]

    # Another, empty catalog on the same database kind: rebuilt from the store alone.
    if catalog_url.startswith("sqlite"):
        fresh_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    else:
        from sqlalchemy import text
        with live.engine.begin() as conn:
            for table in ("file_version", "recovery_point", "source", "protection_group"):
                conn.execute(text(f"delete from {table}"))
        fresh_url = catalog_url
    fresh = open_catalog(fresh_url)
    result = rebuild_from_store(fresh, store, DEFAULTS)
    assert (result.groups, result.points, result.created_groups) == (("g",), 4, ("g",))
    rebuilt = get_group(fresh, "g")
    assert [s.path for s in rebuilt.sources] == [str(src)] and rebuilt.sync_seconds == 900
    assert snapshot_versions(fresh, paths) == expected
    assert [p.snapshot_id for p in list_points(fresh, rebuilt.id, "g")] == [s.id for s in store.snapshots("g")]
    assert reconcile(fresh, store) == Reconciled()
    fresh.close()
    live.close()


def test_reconcile_reindexes_a_group_the_catalog_fell_behind_on(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    group = create_group(cat, "g", [SourceInput(str(src))], 900, (), 86400)
    # A daemon killed after the store committed the snapshot but before the catalog recorded it.
    assert protect.sync(store, group_spec(group), kind="point").state == "completed"
    assert list_points(cat, group.id, "g") == []
    assert reconcile(cat, store) == Reconciled(reindexed=["g"])
    assert [v.size for v in versions(cat, str(src / "a"))] == [1]
    assert [g.name for g in list_groups(cat)] == ["g"]
    cat.close()


def test_a_lost_catalog_is_rebuilt_when_the_daemon_starts_and_on_request(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("v1")
    d.run("group", "create", "g", "--source", str(src), "--sync", "1h")
    d.run("point", "g", "--wait")
    (src / "a.txt").write_text("v2 longer")
    d.run("point", "g", "--wait")
    before = d.json("versions", str(src / "a.txt"))
    assert d.stop() == 0
    for f in d.data.glob("catalog.sqlite*"):
        f.unlink()
    d.start()
    after = d.json("versions", str(src / "a.txt"))
    assert [(v["size"], v["first_point"]["snapshot_id"]) for v in after] == \
        [(v["size"], v["first_point"]["snapshot_id"]) for v in before]
    assert d.json("group", "show", "g")["sources"][0]["path"] == str(src)
    out = d.json("catalog", "rebuild")
    assert (out["groups"], out["points"], out["created_groups"]) == (["g"], 2, [])
    assert [v["size"] for v in d.json("versions", str(src / "a.txt"))] == [2, 9]
