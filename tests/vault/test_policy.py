"""Rotation policies (vault/policy.py) on SQLite and PostgreSQL: what is ready to leave for the vault and what is
due back from it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.catalog.engine import open_catalog
from appliance.errors import Conflict, NotFound
from appliance.vault.policy import close_for_export, due_back, offsite_ready
from tests.vault.site import Site

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def site(catalog_url):
    cat = open_catalog(catalog_url)
    yield Site(cat)
    cat.close()


def _barcodes(carts):
    return [c.barcode for c in carts]


def test_a_closed_verified_set_is_ready_and_an_unverified_or_open_one_is_not(site):
    site.pool("weekly", allocation="always")
    site.pool("appending", allocation="continue")
    site.pool("daily", allocation="daily")
    site.pool("onsite", allocation="always", vault=False)
    sent = site.write("weekly", T0)
    site.write("weekly", T0 + timedelta(hours=1), verified=False)
    appending = site.write("appending", T0)  # its set stays open: `continue` appends to it
    daily = site.write("daily", T0)  # open until midnight
    site.write("onsite", T0)  # no vault: never leaves
    now = T0 + timedelta(hours=2)
    assert _barcodes(offsite_ready(site.catalog, now)) == sent
    assert _barcodes(offsite_ready(site.catalog, now, pool="appending")) == []
    assert _barcodes(offsite_ready(site.catalog, now, pool="daily")) == []
    # ... but the next export closes them and sends them: what the pick list shows (the other two as before)
    assert _barcodes(offsite_ready(site.catalog, now, pool="appending", closing=True)) == appending
    assert _barcodes(offsite_ready(site.catalog, now, pool="daily", closing=True)) == daily
    assert _barcodes(offsite_ready(site.catalog, now, pool="weekly", closing=True)) == sent


def test_a_set_still_being_written_is_not_ready(site):
    site.pool("weekly", allocation="continue")
    site.write("weekly", T0)
    barcodes = site.write("weekly", T0 + timedelta(hours=1), state="writing")
    media_set = site.media_set_of(barcodes[0])
    with pytest.raises(Conflict, match="being written"):
        close_for_export(site.catalog, media_set, T0 + timedelta(hours=2))
    assert offsite_ready(site.catalog, T0 + timedelta(hours=2)) == []
    assert offsite_ready(site.catalog, T0 + timedelta(hours=2), closing=True) == []  # nor will the export take it


def test_a_closed_set_whose_last_set_is_still_verifying_is_not_ready(site):
    site.pool("weekly", allocation="always")  # the job closes the set when it stamps it, then verifies
    site.write("weekly", T0, state="writing")
    assert offsite_ready(site.catalog, T0 + timedelta(hours=2)) == []
    assert offsite_ready(site.catalog, T0 + timedelta(hours=2), closing=True) == []  # nor will the export take it


def test_close_for_export_makes_an_idle_open_set_ready(site):
    site.pool("weekly", allocation="continue")
    barcodes = site.write("weekly", T0)
    assert offsite_ready(site.catalog, T0 + timedelta(hours=1)) == []
    closed = close_for_export(site.catalog, site.media_set_of(barcodes[0]), T0 + timedelta(hours=1))
    assert closed.closed == T0 + timedelta(hours=1)
    assert _barcodes(offsite_ready(site.catalog, T0 + timedelta(hours=2))) == barcodes
    # the next write opens a new set rather than appending to the one leaving
    assert site.write("weekly", T0 + timedelta(hours=3)) != barcodes


def test_cartridges_already_sent_are_not_ready_again(site):
    site.pool("weekly")
    barcodes = site.write("weekly", T0)
    site.send(barcodes, T0 + timedelta(hours=1))
    assert offsite_ready(site.catalog, T0 + timedelta(hours=6)) == []


def test_a_vaulted_cartridge_is_due_back_once_its_data_expired(site):
    site.pool("weekly", retention_days=7)
    barcodes = site.write("weekly", T0)
    site.send(barcodes, T0 + timedelta(hours=1))
    assert due_back(site.catalog, T0 + timedelta(days=6)) == []
    assert _barcodes(due_back(site.catalog, T0 + timedelta(days=7, seconds=1))) == barcodes


def test_a_recall_calendar_waits_for_the_courier_run(site):
    site.pool("weekly", retention_days=7, recall="Fri 10:00")  # T0 is a Monday: expiry Monday, then Friday
    barcodes = site.write("weekly", T0)
    site.send(barcodes, T0 + timedelta(hours=1))
    assert due_back(site.catalog, T0 + timedelta(days=8)) == []
    assert _barcodes(due_back(site.catalog, T0 + timedelta(days=11, hours=2))) == barcodes


def test_more_than_one_offsite_copy_keeps_the_newest_generations_in_the_vault(site):
    site.pool("weekly", retention_days=7, offsite_copies=2)
    first = site.write("weekly", T0)
    second = site.write("weekly", T0 + timedelta(days=7))
    third = site.write("weekly", T0 + timedelta(days=14))
    for i, barcodes in enumerate((first, second, third)):
        site.send(barcodes, T0 + timedelta(days=7 * i, hours=1))
    # at day 22 the first two expired; the two newest stay
    assert _barcodes(due_back(site.catalog, T0 + timedelta(days=22))) == first


def test_an_unknown_pool_is_named_with_the_known_ones(site):
    site.pool("weekly")
    with pytest.raises(NotFound, match="pool 'nope' does not exist") as err:
        offsite_ready(site.catalog, T0, pool="nope")
    assert "weekly" in err.value.fix
    with pytest.raises(NotFound):
        due_back(site.catalog, T0, pool="nope")
