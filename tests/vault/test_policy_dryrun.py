"""The retention dry run (vault/dryrun.py) on SQLite and PostgreSQL: what a shorter retention would free and
recall, which points would then exist nowhere else, and that nothing changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.models import ProtectionGroup, RecoveryPoint
from appliance.vault.dryrun import dry_run
from appliance.vault.policy import PolicyChange, due_back, parse_gfs
from tests.vault.site import DAY, Site

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def site(catalog_url):
    cat = open_catalog(catalog_url)
    yield Site(cat)
    cat.close()


def _replica_keeps(site, snapshot):
    with site.catalog.session() as s:
        group = ProtectionGroup(name="docs", sync_seconds=900, point_times="08:00", keep_seconds=30 * DAY)
        s.add(group)
        s.flush()
        s.add(RecoveryPoint(snapshot_id=snapshot, group_id=group.id, kind="point", time=T0))


def test_a_shorter_retention_frees_and_recalls_and_names_the_points_only_those_tapes_hold(site):
    site.pool("weekly", retention_days=30)
    old = site.write("weekly", T0, snapshot="snap-old", point=1)
    older_in_replica = site.write("weekly", T0 + timedelta(days=1), snapshot="snap-kept", point=2)
    new = site.write("weekly", T0 + timedelta(days=10), snapshot="snap-new", point=3)
    _replica_keeps(site, "snap-kept")
    site.send(old + older_in_replica + new, T0 + timedelta(days=10, hours=1))
    now = T0 + timedelta(days=12)
    answer = dry_run(site.catalog, "weekly", PolicyChange(retention_seconds=7 * DAY, retention_given=True), now)
    assert [c["barcode"] for c in answer["free"]] == old + older_in_replica
    assert [c["barcode"] for c in answer["recall"]] == old + older_in_replica
    assert [c["barcode"] for c in answer["keep"]] == new
    assert [(p["group"], p["snapshot"], p["cartridges"]) for p in answer["lost_points"]] == [("docs", "snap-old", old)]
    assert len(answer["media_sets"]) == 3
    # a dry run: nothing changed
    assert due_back(site.catalog, now) == []
    assert site.media_set_of(old[0]).retention_seconds == 30 * DAY


def test_a_change_that_frees_nothing_says_so(site):
    site.pool("weekly", retention_days=30)
    site.write("weekly", T0)
    answer = dry_run(site.catalog, "weekly", PolicyChange(gfs=parse_gfs("daily=7d")), T0 + timedelta(days=1))
    # the set has no tier (written before GFS): its retention stays
    assert (answer["free"], answer["recall"], answer["media_sets"], answer["lost_points"]) == ([], [], [], [])


def test_naming_a_vault_shows_what_would_be_sent(site):
    site.pool("local", retention_days=30, vault=False)
    written = site.write("local", T0)
    answer = dry_run(site.catalog, "local", PolicyChange(vault="ironvault"), T0 + timedelta(hours=1))
    assert [c["barcode"] for c in answer["send"]] == written
