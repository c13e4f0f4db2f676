"""Alerts' life: open, resolved when the condition clears (with the time it did), acknowledged by an operator;
the object each concerns; kept for jobs.keep_history once closed. On a real catalog, and what an operator reads
from the real `tapeline alerts` against a real daemon."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.models import utcnow
from appliance.ops import alerts
from appliance.text import text_time


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield cat
    cat.close()


def test_a_resolved_alert_leaves_the_open_ones_with_the_time_it_resolved_and_comes_back_as_a_new_one(catalog):
    first = alerts.raise_alert(catalog, "error", "sync of group 'g' failed (job 1): source missing", "mount it",
                               "g", 1, same_as="sync of group 'g' failed")
    assert alerts.raise_alert(catalog, "error", "sync of group 'g' failed (job 2): source missing", "mount it",
                              "g", 2, same_as="sync of group 'g' failed") == first  # the same outage
    before = utcnow()
    alerts.resolve(catalog, "g", "sync of group 'g' failed")
    assert alerts.list_alerts(catalog) == []
    [closed] = alerts.list_alerts(catalog, include_closed=True)
    assert closed.id == first and not closed.acknowledged and before <= closed.resolved <= utcnow()
    assert (closed.object_kind, closed.object_name, closed.job_id) == ("group", "g", 2)
    again = alerts.raise_alert(catalog, "error", "sync of group 'g' failed (job 3): source missing", "mount it",
                               "g", 3, same_as="sync of group 'g' failed")
    assert again != first and [a.id for a in alerts.list_alerts(catalog)] == [again]


def test_an_alert_names_the_object_it_concerns(catalog):
    alerts.raise_alert(catalog, "error", "notification mail cannot be sent: refused", "check mail.host",
                       about=("mail server", "smtp.example.com:587"))
    alerts.raise_alert(catalog, "warning", "group 'docs' has a slow source", "look", "docs")
    alerts.raise_alert(catalog, "warning", "the system clock jumped", "check")
    assert sorted((a.object_kind, a.object_name) for a in alerts.list_alerts(catalog)
                  if a.object_kind) == [("group", "docs"), ("mail server", "smtp.example.com:587")]
    # each with the group_name and params its submitter gives it (media/admin.py, vault/mailslot_jobs.py)
    inventory = SimpleNamespace(id=7, group_id=None, group_name="library vtl",
                                params={"library": "vtl", "detailed": True})
    assert alerts.job_object(inventory) == ("library", "vtl")
    erase = SimpleNamespace(id=8, group_id=None, group_name="cartridge A00001L8", params={"barcode": "A00001L8"})
    assert alerts.job_object(erase) == ("cartridge", "A00001L8")
    label = SimpleNamespace(id=10, group_id=None, group_name="pool weekly",
                            params={"barcodes": ["A00001L8", "A00002L8"], "pool": "weekly", "force": False})
    assert alerts.job_object(label) == ("pool", "weekly")
    export = SimpleNamespace(id=11, group_id=None, group_name=None, params={"pool": "weekly", "case": "C1"})
    assert alerts.job_object(export) == ("pool", "weekly")
    vault_import = SimpleNamespace(id=12, group_id=None, group_name=None,
                                   params={"library": "vtl", "accept": ["A00001L8"], "operator": "ann"})
    assert alerts.job_object(vault_import) == ("library", "vtl")
    assert alerts.job_object(SimpleNamespace(id=9, group_id=3, group_name="docs", params={})) == ("group", "docs")


def test_closed_alerts_are_kept_for_the_history_period_then_dropped(catalog):
    old_resolved = alerts.raise_alert(catalog, "error", "a", "fix")
    old_acked = alerts.raise_alert(catalog, "warning", "b", "fix")
    old_open = alerts.raise_alert(catalog, "warning", "c", "fix")
    recent = alerts.raise_alert(catalog, "error", "d", "fix")
    newest = alerts.raise_alert(catalog, "error", "e", "fix")
    alerts.resolve_message(catalog, ("a", "d", "e"))
    alerts.acknowledge(catalog, old_acked)
    day = 86400
    later = utcnow() + timedelta(days=10)
    assert alerts.forget_old(catalog, 30 * day, now=later) == 0  # all younger than the period
    assert alerts.forget_old(catalog, 5 * day, now=later) == 3
    kept = {a.id for a in alerts.list_alerts(catalog, include_closed=True)}
    # Open ones stay whatever their age; the newest stays so that the next alert's id is never one used before.
    assert kept == {old_open, newest} and {old_resolved, old_acked, recent}.isdisjoint(kept)


def test_the_operator_sees_the_object_then_the_alert_resolved_by_the_next_good_sync(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    d.run("group", "create", "g", "--source", str(src), "--sync", "7d", "--points", "")
    d.run("sync", "g", "--wait")
    src.rename(tmp_path / "away")  # unmounted
    d.run("sync", "g", "--wait", check=1)
    [alert] = d.json("alerts")
    assert (alert["object_kind"], alert["object_name"], alert["resolved"]) == ("group", "g", None)
    listed = d.run("alerts").stdout
    assert "OBJECT" in listed.splitlines()[0] and "group g" in listed and "STATE" not in listed
    (tmp_path / "away").rename(src)
    d.run("sync", "g", "--wait")
    assert d.json("alerts") == [] and d.run("alerts").stdout == "no open alerts\n"
    [closed] = d.json("alerts", "--all")
    assert closed["id"] == alert["id"] and closed["resolved"] and not closed["acknowledged"]
    everything = d.run("alerts", "--all").stdout
    assert "STATE" in everything.splitlines()[0]
    assert f"resolved {text_time(closed['resolved'])}" in everything
    d.run("status", check=0)


def test_the_alerts_of_a_catalog_made_before_resolved_and_objects_stay_open_and_resolve(tmp_path):
    import sqlite3
    from pathlib import Path

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript((Path(__file__).parent / "fixtures" / "catalog-schema1.sql").read_text())
    old.execute("insert into alert (severity, group_name, message, fix, time, acknowledged) values "
                "('error', 'g', 'sync of group ''g'' failed (job 3): gone', 'mount it', '2026-01-01 00:00:00', 0)")
    old.commit()
    old.close()
    cat = open_catalog(f"sqlite:///{path}")
    try:
        [alert] = alerts.list_alerts(cat)
        assert (alert.resolved, alert.object_kind, alert.object_name) == (None, None, None)
        alerts.resolve(cat, "g", "sync of group 'g' failed")
        assert alerts.list_alerts(cat) == [] and alerts.list_alerts(cat, include_closed=True)[0].resolved
    finally:
        cat.close()
