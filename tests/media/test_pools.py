"""Pools: allocation of media sets (continue, always, calendar), retention stamped when written, reuse delay, and the
rule that no path picks a cartridge holding unexpired data, outside the library or write-protected. On the real
catalog (SQLite and PostgreSQL), with the clock passed in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, text

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.engine import open_catalog
from appliance.catalog.models import Cartridge
from appliance.errors import Conflict, UsageError
from appliance.media import pools

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)  # a Monday
DAY = timedelta(days=1)


@pytest.fixture
def catalog(catalog_url):
    c = open_catalog(catalog_url)
    yield c
    c.close()


def _library(catalog, name="lib"):
    return cat.add_library(catalog, name, f"local:///nowhere/{name}/changer", [(0, f"local:///nowhere/{name}/drive0",
                                                                                None)])


def _pool(catalog, lib, name="weekly", retention=30 * 86400, allocation="continue", delay=0):
    return cat.create_pool(catalog, name, lib.id, retention, allocation, None, None, True, delay)


def _cartridges(catalog, lib, *barcodes, state="scratch", pool=None, where="slot"):
    with catalog.session() as s:
        for i, b in enumerate(barcodes):
            s.add(Cartridge(barcode=b, library_id=lib.id, state=state, pool_id=pool.id if pool else None,
                            location_kind=where, location_number=i + 1))


def test_continue_appends_to_one_media_set_shared_by_every_group(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib)
    first = pools.media_set_for_write(catalog, pool, T0)
    # Two groups' jobs on different days write into the same set (co-location): it stays open, expires never.
    assert pools.media_set_for_write(catalog, pool, T0 + DAY).uuid == first.uuid
    pools.stamp_set(catalog, first.id, T0 + DAY)
    assert cat.media_set_by_id(catalog, first.id).expires is None


def test_always_opens_a_set_per_job_and_retention_runs_from_the_job(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib, allocation="always", retention=7 * 86400)
    one = pools.media_set_for_write(catalog, pool, T0)
    pools.stamp_set(catalog, one.id, T0 + timedelta(hours=1))
    two = pools.media_set_for_write(catalog, pool, T0 + DAY)
    assert two.uuid != one.uuid
    closed = cat.media_set_by_id(catalog, one.id)
    assert closed.closed == T0 + timedelta(hours=1)
    assert closed.expires == T0 + timedelta(hours=1, days=7)


def test_a_calendar_event_closes_the_set_at_the_event_even_without_a_write(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib, allocation="Sat 18:00", retention=14 * 86400)
    first = pools.media_set_for_write(catalog, pool, T0)
    assert pools.media_set_for_write(catalog, pool, T0 + 2 * DAY).uuid == first.uuid  # Wednesday: same set
    saturday = pools.next_event("Sat 18:00", T0)
    assert saturday.astimezone().strftime("%a %H:%M") == "Sat 18:00"
    closed = pools.expire(catalog, saturday + timedelta(minutes=1)).closed
    assert closed == (first.uuid,)
    ms = cat.media_set_by_id(catalog, first.id)
    assert ms.closed == saturday and ms.expires == saturday + 14 * DAY
    assert pools.media_set_for_write(catalog, pool, saturday + DAY).uuid != first.uuid


@pytest.mark.parametrize("bad", ["fortnightly", "Mon..Fro 02:00", "25:00", "Sat"])
def test_an_allocation_that_is_no_calendar_event_is_refused_naming_the_fix(bad):
    with pytest.raises(UsageError, match="--allocation") as refused:
        pools.parse_allocation(bad)
    assert "Mon" in refused.value.fix


def test_retention_forever_and_durations_parse():
    assert pools.parse_retention("forever") is None
    assert pools.parse_retention("30d") == 30 * 86400
    with pytest.raises(UsageError, match="30d, 12w or forever"):
        pools.parse_retention("a month")


def _written_set(catalog, pool, barcode, when):
    ms = pools.media_set_for_write(catalog, pool, when)
    pools.join_media_set(catalog, barcode, ms, when)
    pools.stamp_set(catalog, ms.id, when)
    return ms


def test_shortening_a_pools_retention_frees_no_written_set_without_confirmation(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib, allocation="always", retention=90 * 86400)
    _cartridges(catalog, lib, "A00001L8")
    ms = _written_set(catalog, pool, "A00001L8", T0)
    assert cat.get_cartridge(catalog, "A00001L8").expires == T0 + 90 * DAY

    # For new sets only: the written one keeps its 90 days.
    pools.change_retention(catalog, pool, 7 * 86400, apply_to_written=False, confirm=False, now=T0 + DAY)
    assert cat.media_set_by_id(catalog, ms.id).expires == T0 + 90 * DAY
    assert cat.get_pool(catalog, "weekly").retention_seconds == 7 * 86400

    # Applied to written sets: refused until confirmed, naming the set and its cartridge; nothing changes meanwhile.
    with pytest.raises(Conflict) as refused:
        pools.change_retention(catalog, pool, 1 * 86400, apply_to_written=True, confirm=False, now=T0 + DAY)
    assert ms.uuid in refused.value.message and "A00001L8" in refused.value.message
    assert "--confirm" in refused.value.fix
    assert cat.media_set_by_id(catalog, ms.id).expires == T0 + 90 * DAY
    assert cat.get_pool(catalog, "weekly").retention_seconds == 7 * 86400

    freed = pools.change_retention(catalog, pool, 1 * 86400, apply_to_written=True, confirm=True, now=T0 + DAY)
    assert [f["media_set"] for f in freed] == [ms.uuid]
    assert cat.get_cartridge(catalog, "A00001L8").expires == T0 + DAY


def test_a_write_never_shortens_the_retention_stamped_on_its_set(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib, retention=None)  # forever
    ms = pools.media_set_for_write(catalog, pool, T0)
    pools.stamp_set(catalog, ms.id, T0)
    pools.change_retention(catalog, pool, 86400, apply_to_written=False, confirm=False, now=T0)
    pools.stamp_set(catalog, ms.id, T0 + DAY)  # a later job appends under the new, shorter retention
    assert cat.media_set_by_id(catalog, ms.id).retention_seconds is None


def test_expired_cartridges_return_to_scratch_only_after_the_reuse_delay(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib, allocation="always", retention=7 * 86400, delay=3 * 86400)
    _cartridges(catalog, lib, "A00001L8")
    ms = _written_set(catalog, pool, "A00001L8", T0)
    set_id = tape_sets.create_set(catalog, "set-1", ms.id, None, "g", 1, "snap", "full", None, T0)
    tape_sets.finish_set(catalog, set_id, "ok")
    assert pools.expire(catalog, T0 + 6 * DAY) == pools.ExpireResult((), (), ())
    assert tape_sets.get_set(catalog, set_id).state == "ok"
    assert pools.expire(catalog, T0 + 8 * DAY).expired == ("A00001L8",)
    assert tape_sets.get_set(catalog, set_id).state == "expired"  # restores refuse it from now on
    cart = cat.get_cartridge(catalog, "A00001L8")
    assert cart.state == "expired" and cart.media_set_id is not None
    assert pools.expire(catalog, T0 + 10 * DAY + timedelta(seconds=1)).scratch == ("A00001L8",)
    cart = cat.get_cartridge(catalog, "A00001L8")
    assert (cart.state, cart.media_set_id, cart.pool_id) == ("scratch", None, pool.id)


def test_next_cartridge_never_takes_unexpired_data_outside_write_protected_or_busy_ones(catalog):
    lib, other = _library(catalog), _library(catalog, "other")
    pool = _pool(catalog, lib, allocation="always", retention=30 * 86400)
    second = _pool(catalog, lib, "daily")
    _cartridges(catalog, lib, "A00001L8")
    held = _written_set(catalog, pool, "A00001L8", T0)  # closed, unexpired
    _cartridges(catalog, lib, "B00001L8", where="outside")
    _cartridges(catalog, lib, "B00002L8", where="mailslot")
    _cartridges(catalog, lib, "B00003L8")
    cat.update_cartridge(catalog, "B00003L8", write_protected=True)
    _cartridges(catalog, other, "C00001L8")
    _cartridges(catalog, lib, "D00001L8", pool=second)
    ms = pools.media_set_for_write(catalog, pool, T0 + DAY)
    assert ms.id != held.id
    assert pools.next_cartridge(catalog, pool, ms, now=T0 + DAY) is None  # nothing but those: the job waits
    _cartridges(catalog, lib, "E00001L8", "E00002L8", state="blank")
    _cartridges(catalog, lib, "F00001L8")  # unassigned scratch
    _cartridges(catalog, lib, "G00001L8", pool=pool)  # the pool's own scratch
    pick = lambda busy=frozenset(): pools.next_cartridge(catalog, pool, ms, busy, T0 + DAY).barcode  # noqa: E731
    assert pick() == "G00001L8"
    assert pick(frozenset({"G00001L8"})) == "F00001L8"
    assert pick(frozenset({"G00001L8", "F00001L8"})) == "E00001L8"
    with pytest.raises(Conflict, match="unexpired data"):
        pools.join_media_set(catalog, "A00001L8", ms, T0 + DAY)


def test_the_open_sets_cartridge_is_appended_to_first(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib)
    _cartridges(catalog, lib, "A00001L8", "A00002L8")
    ms = pools.media_set_for_write(catalog, pool, T0)
    pools.join_media_set(catalog, "A00002L8", ms, T0)
    assert pools.next_cartridge(catalog, pool, ms, now=T0).barcode == "A00002L8"
    pools.cartridge_full(catalog, "A00002L8")
    nxt = pools.next_cartridge(catalog, pool, ms, now=T0)
    assert nxt.barcode == "A00001L8"
    assert pools.join_media_set(catalog, "A00001L8", ms, T0).sequence == 1


def test_a_catalog_from_before_the_media_tables_opens_and_gains_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    c = open_catalog(url)
    with c.engine.begin() as conn:
        for table in ("tape_set_part", "tape_set", "cartridge", "media_set", "pool", "drive", "library"):
            conn.execute(text(f"DROP TABLE {table}"))
    c.close()
    c = open_catalog(url)
    assert {"library", "drive", "pool", "cartridge", "media_set", "tape_set", "tape_set_part"} <= set(
        inspect(c.engine).get_table_names())
    c.close()


def test_relabelling_or_erasing_a_cartridge_forgets_its_parts_and_the_sets_left_with_none(catalog):
    lib = _library(catalog)
    pool = _pool(catalog, lib)
    _cartridges(catalog, lib, "A00001L8", "A00002L8")
    ms = pools.media_set_for_write(catalog, pool, T0)
    one = pools.join_media_set(catalog, "A00001L8", ms, T0)
    set_id = tape_sets.create_set(catalog, "set-1", ms.id, None, "docs", None, None, "full", None, T0)
    tape_sets.add_part(catalog, set_id, 0, "A00001L8", 2, 3, 0, 100)
    pools.cartridge_full(catalog, "A00001L8")
    two = pools.join_media_set(catalog, "A00002L8", ms, T0)
    tape_sets.add_part(catalog, set_id, 1, "A00002L8", 2, 3, 0, 50)
    assert two.sequence == 1
    assert [s.uuid for s in cat.sets_on(catalog, two.id)] == ["set-1"]
    assert cat.drop_parts_on(catalog, one.id) == 1  # the set keeps its other part
    assert [p["barcode"] for p in tape_sets.get_set(catalog, set_id).to_json()["cartridges"]] == ["A00002L8"]
    cat.drop_parts_on(catalog, two.id)
    assert tape_sets.list_sets(catalog) == []
