"""The forecast says what the appliance will do: the forecast of a site, then the same days played on its real catalog
through the code the jobs and commands run (the tape backup's pool and tape-set calls, `pools.expire`, the export's
catalog backup, close and offsite-ready list, `vault receive`, `vault recall`, `vault sent-back`, the import's move
and the verify's check), with the forecast's assumptions (export and recall at the end of each day, a day with the
courier each way, nothing fails); each day's figures must be the forecast's."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from appliance.catalog import tape_sets
from appliance.catalog.media import find_cartridge, get_pool
from appliance.catalog.models import Cartridge, Pool, ProtectionGroup
from appliance.catalog.moves import move
from appliance.catalog.tape_sets import DR_GROUP
from appliance.media import pools
from appliance.vault import checks, export, policy, rotation
from appliance.vault.forecast import forecast
from tests.vault.test_forecast import NOW, nightly_site

GB = 10**9


def write(cat, pool_name: str, group: str, when: datetime, nbytes: int) -> bool:
    """One backup as the tape job records it (one cartridge holds it here); False when no cartridge is free."""
    pool = get_pool(cat, pool_name)
    ms = pools.media_set_for_write(cat, pool, when)
    cart = pools.next_cartridge(cat, pool, ms, now=when)
    if cart is None:
        return False
    cart = pools.join_media_set(cat, cart.barcode, ms, when)
    with cat.reader() as s:
        group_id = s.exec(select(ProtectionGroup.id).where(ProtectionGroup.name == group)).first()
    set_id = tape_sets.create_set(cat, str(uuid.uuid4()), ms.id, group_id, group, None, None, "full", None, when)
    tape_sets.add_part(cat, set_id, 1, cart.barcode, cart.next_file, cart.next_file + 1, 0, nbytes // 262144)
    pools.record_written(cat, cart.barcode, cart.next_file + 2, nbytes, when)
    ms = pools.stamp_set(cat, ms.id, when)
    tape_sets.finish_set(cat, set_id, "ok", 1, nbytes, ms.expires, when if pool.verify else None)
    return True


def figures(cat, pool_name: str) -> tuple[int, int, int]:
    """(cartridges of the pool in the library holding data, scratch it may write, in a vault or on the way)."""
    pool = get_pool(cat, pool_name)
    with cat.reader() as s:
        def count(*where) -> int:
            return s.exec(select(func.count()).select_from(Cartridge).where(*where)).one()
        return (count(Cartridge.pool_id == pool.id, Cartridge.location_kind == "slot",
                      Cartridge.state.in_(("allocated", "full", "expired"))),
                count((Cartridge.pool_id == pool.id) | (Cartridge.pool_id == None),  # noqa: E711
                      Cartridge.library_id == pool.library_id, Cartridge.location_kind == "slot",
                      Cartridge.state.in_(("scratch", "blank")), Cartridge.write_protected == False),  # noqa: E712
                count(Cartridge.pool_id == pool.id,
                      Cartridge.rotation.in_(("courier", "vault", "vaultretrieve", "courierretrieve"))))


def play(cat, start: datetime, days: int, pool_name: str, group: str, event: str, nbytes: int) -> list[tuple]:
    """The days on the real catalog; per day (written, sent, back, in library, scratch, offsite)."""
    out = []
    sent: list[str] = []  # handed to the courier yesterday
    recalled: list[str] = []  # recalled yesterday: the courier takes them back today
    returning: list[str] = []  # taken back yesterday: into the library today
    fires = start
    for i in range(days):
        end = start + timedelta(days=i + 1)
        back = []
        if sent:
            rotation.receive(cat, sent, "iron", end, "courier")
        for barcode in returning:  # `vault import`: out of the cycle, into a slot; a sampled one is read back
            with cat.session() as s:
                cart = find_cartridge(s, barcode)
                pending = policy.check_pending(cart)
                move(s, cart, "mountable", end, operator="ann", place=("slot", cart.id), skip=True)
                cart.case_id = None  # out of its case, back in the library
            if pending:
                checks.record_check(cat, barcode, end - timedelta(seconds=1), None)
            back.append(barcode)
        if recalled:
            rotation.sent_back(cat, recalled, end, "courier")
        written = 0
        while (fires := pools.next_event(event, fires)) <= end:
            written += write(cat, pool_name, group, fires, nbytes)
        fires -= timedelta(seconds=1)
        pools.expire(cat, end)
        pool = get_pool(cat, pool_name)
        open_set = export._open_set(cat, pool)  # the export's _prepare, then its list
        news = open_set is not None and policy.closes_for_export(pool) and export._holds_sets(cat, open_set)
        if news or policy.offsite_ready(cat, end, pool_name):
            write(cat, pool_name, DR_GROUP, end, 0)
            open_set = export._open_set(cat, pool)
            if policy.closes_for_export(pool) and open_set is not None:
                policy.close_for_export(cat, open_set, end)
        sent = [c.barcode for c in policy.offsite_ready(cat, end)]
        for barcode in sent:  # the export's hand-over: in one case per pool and export
            export._to_courier(cat, barcode, None, pool.vault_id, f"{pool_name}-{end:%Y%m%d}-{i}", i + 1, end)
        returning, recalled = recalled, [r["barcode"] for r in rotation.recall(cat, end, "ann")["recalled"]]
        out.append((written, sorted(sent), sorted(back), *figures(cat, pool_name)))
    return out


@pytest.mark.parametrize("allocation, policy_values", [
    ("always", {"check_sample": 1, "check_every_seconds": 5 * 86400}),
    ("daily", {"gfs": {"daily": 3 * 86400, "weekly": 10 * 86400}}),
], ids=["a-set-per-job-with-sampled-checks", "a-set-a-day-with-gfs"])
def test_each_day_of_the_forecast_is_what_the_appliance_then_does(catalog_url, allocation, policy_values):
    cat = nightly_site(catalog_url, 24)
    try:
        with cat.session() as s:
            pool = s.exec(select(Pool)).one()
            pool.allocation = allocation
            for key, value in policy_values.items():
                setattr(pool, key, value)
            s.add(pool)
        f = forecast(cat, NOW, weeks=3)
        said = [(d.written, sorted(d.sent), sorted(d.back), d.in_library, d.scratch, d.offsite)
                for d in (pools_of_day[0] for _, pools_of_day in f.days)]
        done = play(cat, NOW.astimezone(), 21, "nightly", "files", "01:00", 40 * GB)
    finally:
        cat.close()
    assert sum(d[0] for d in done) == 21 and any(d[1] for d in done) and any(d[2] for d in done)
    for day, (forecast_day, real_day) in enumerate(zip(said, done)):
        assert forecast_day == real_day, f"day {day}"
