"""GFS tiers and `pool set` (vault/policy.py, media/pools.py) on SQLite and PostgreSQL: a set's tier decided when
it is created, its retention taken from the tier, and shortening a written set only on the operator's word."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.media import get_pool
from appliance.catalog.tape_sets import DR_GROUP
from appliance.errors import Conflict, NotFound, UsageError
from appliance.media import pools
from appliance.vault.dryrun import dry_run
from appliance.vault.policy import PolicyChange, parse_gfs, parse_recall, set_policy
from tests.vault.site import DAY, Site

# Noon UTC, so that the local calendar (the tiers follow it) has the same dates in any zone within 11 hours.
FRI = datetime(2026, 2, 27, 12, 0, tzinfo=timezone.utc)  # 2026-03-01 is a Sunday, 03-02 a Monday


@pytest.fixture
def site(catalog_url):
    cat = open_catalog(catalog_url)
    yield Site(cat, cartridges=20)
    cat.close()


def test_gfs_spelling():
    assert parse_gfs("daily=7d,weekly=5w,monthly=12m,yearly=7y") == {
        "daily": 7 * DAY, "weekly": 35 * DAY, "monthly": 12 * 31 * DAY, "yearly": 7 * 366 * DAY}
    assert parse_gfs("none") == {}
    with pytest.raises(UsageError, match="'hourly=1d' is not TIER=DURATION"):
        parse_gfs("hourly=1d")
    with pytest.raises(UsageError, match="names tier daily twice"):
        parse_gfs("daily=1d,daily=2d")
    with pytest.raises(UsageError, match="is not a calendar event"):
        parse_recall("sometimes")


def test_each_new_set_takes_its_tier_and_the_tiers_retention(site):
    site.pool("gfs", retention_days=3, allocation="always")
    set_policy(site.catalog, "gfs", PolicyChange(gfs=parse_gfs("daily=7d,weekly=5w,monthly=12m,yearly=7y")), FRI)
    times = [FRI + timedelta(days=d) for d in (0, 1, 2, 3)] + [datetime(2027, 1, 4, 12, tzinfo=timezone.utc)]
    tiers = []
    for when in times:
        media_set = site.media_set_of(site.write("gfs", when)[0])
        tiers.append((media_set.tier, media_set.retention_seconds // DAY))
    # first ever: yearly; Saturday, same week: daily; Sunday 1 March: a new month; Monday: a new ISO week; 2027
    assert tiers == [("yearly", 2562), ("daily", 7), ("monthly", 372), ("weekly", 35), ("yearly", 2562)]


def test_the_catalog_backup_an_export_writes_is_no_generation_of_the_pools_data(site):
    """With `always` allocation each export's catalog backup is a media set of its own: the first backup of a new
    week after it still starts the week (weekly), not a second set of the export's week (daily)."""
    site.pool("gfs", retention_days=3, allocation="always")
    set_policy(site.catalog, "gfs", PolicyChange(gfs=parse_gfs("daily=7d,weekly=5w,monthly=12m,yearly=7y")), FRI)
    site.write("gfs", FRI)  # yearly: the first ever
    site.write("gfs", FRI + timedelta(days=3))  # Monday 2 March: monthly
    monday = FRI + timedelta(days=10)  # 9 March, a new ISO week
    catalog_backup = site.media_set_of(site.write("gfs", monday, group=DR_GROUP)[0])
    first_of_week = site.media_set_of(site.write("gfs", monday + timedelta(hours=1))[0])
    assert catalog_backup.id != first_of_week.id
    assert (first_of_week.tier, first_of_week.retention_seconds // DAY) == ("weekly", 35)


def test_shortening_a_written_sets_retention_needs_the_operators_word(site):
    site.pool("gfs", retention_days=3, allocation="always")
    set_policy(site.catalog, "gfs", PolicyChange(gfs=parse_gfs("daily=7d,yearly=7y")), FRI)
    barcodes = site.write("gfs", FRI)  # yearly
    with pytest.raises(Conflict, match="frees 1 media set") as err:
        set_policy(site.catalog, "gfs", PolicyChange(gfs=parse_gfs("daily=7d,yearly=1y")), FRI)
    assert "tapeline vault dry-run gfs" in err.value.fix and "--confirm" in err.value.fix
    assert get_pool(site.catalog, "gfs").gfs["yearly"] == 7 * 366 * DAY  # nothing changed
    # longer: at once, no word needed
    pool, changed = set_policy(site.catalog, "gfs", PolicyChange(gfs=parse_gfs("daily=7d,yearly=10y")), FRI)
    assert site.media_set_of(barcodes[0]).retention_seconds == 10 * 366 * DAY and changed == []
    set_policy(site.catalog, "gfs", PolicyChange(gfs=parse_gfs("daily=7d,yearly=1y")), FRI, confirm=True)
    assert site.media_set_of(barcodes[0]).expires == FRI + timedelta(days=366)


def test_pool_set_names_the_vault_and_checks_it_exists(site):
    site.pool("weekly", vault=False)
    pool, _ = set_policy(site.catalog, "weekly", PolicyChange(vault="ironvault", offsite_copies=2,
                                                               recall="Fri 10:00"), FRI)
    assert (pool.vault_id, pool.offsite_copies, pool.recall) == (site.vault.id, 2, "Fri 10:00")
    with pytest.raises(NotFound, match="vault 'nowhere' does not exist"):
        set_policy(site.catalog, "weekly", PolicyChange(vault="nowhere"), FRI)
    with pytest.raises(UsageError, match="needs a period"):
        set_policy(site.catalog, "weekly", PolicyChange(check_sample=2), FRI)
    pool, _ = set_policy(site.catalog, "weekly", PolicyChange(vault=""), FRI)
    assert pool.vault_id is None


def test_pool_set_without_a_retention_or_tiers_leaves_written_sets_alone(site):
    site.pool("weekly", retention_days=30, vault=False)
    barcodes = site.write("weekly", FRI)
    # `pool change --retention 7d` without --apply-to-written: for new sets only
    pools.change_retention(site.catalog, get_pool(site.catalog, "weekly"), 7 * DAY, False, False, FRI)
    change = PolicyChange(vault="ironvault")
    assert dry_run(site.catalog, "weekly", change, FRI)["media_sets"] == []
    pool, changed = set_policy(site.catalog, "weekly", change, FRI)  # no --confirm asked
    assert pool.vault_id == site.vault.id and changed == []
    assert site.media_set_of(barcodes[0]).expires == FRI + timedelta(days=30)
    assert pool.retention_seconds == 7 * DAY
