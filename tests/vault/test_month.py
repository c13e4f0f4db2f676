"""Issue 9's "Done when" as one run (tests/vault/month_harness.py): a month of daily tape jobs, exports and imports
through two mail slots exactly as the pick lists say, one cartridge lost by the courier; then the vault inventory,
the discrepancies, the forecast and the DR plan must agree with where every cartridge really is."""

from __future__ import annotations

import re

import pytest

from tests.vault.month_harness import DAYS, MAILSLOTS, run_month

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # a month of tape jobs: minutes


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    return run_month(tmp_path_factory.mktemp("month"))


def test_every_export_ejected_exactly_what_the_pick_list_said_and_the_days_catalog_backup(month):
    r = month.record
    assert len(r.exported) == DAYS
    for day, picked in r.pick_lists.items():
        assert r.catalog_backups[day], day  # each batch carries the catalog out (the DR plan's first tape)
        assert sorted(r.exported[day]) == sorted(set(picked) | set(r.catalog_backups[day])), day
    assert max(len(p) for p in r.pick_lists.values()) > MAILSLOTS and r.waits >= 1  # batches on Mondays


def test_the_vault_inventory_lists_what_the_vault_really_holds(month):
    r = month.record
    listed = {row["barcode"] for row in month.final["vault-inventory"]}
    assert listed == r.where("vault")
    assert r.lost not in listed


def test_the_lost_cartridge_is_a_discrepancy_and_nothing_else_is(month):
    rows = month.final["discrepancies"]
    assert [(row["barcode"], row["discrepancy"]) for row in rows] == [(month.record.lost, "in transit too long")]


def test_the_catalog_and_the_library_agree_on_every_cartridge(month):
    r = month.record
    media = {c["barcode"]: c for c in month.final["media"] if c["state"] != "cleaning"}
    assert month.final["library"] == r.where("library")
    for barcode, place in r.place.items():
        c = media[barcode]
        expected = {"library": ("mountable",), "vault": ("vault", "vault-retrieve"), "courier": ("courier",),
                    "lost": ("courier",), "returning": ("courier-retrieve",)}[place]
        assert c["rotation"] in expected, (barcode, place, c["rotation"], c["where"])
    assert r.returned, "returns came back within the month"


def test_the_forecast_runs_the_daily_schedule_and_scratch_lasts(month):
    forecast = month.final["forecast"]
    assert forecast["scratch_runs_out"] == {"daily": None}  # 38 cartridges, sets kept 7 days, returns coming back
    days = [d["pools"][0] for d in forecast["days"]]
    assert len(days) == 14 and all(d["pool"] == "daily" and d["written"] == 1 and not d["short"] for d in days)
    assert any(d["back"] for d in days) and any(d["sent"] for d in days)


def test_the_dr_plan_says_where_each_cartridge_it_names_really_is(month):
    plan = month.final["plan"]
    media = {c["barcode"]: c for c in month.final["media"]}
    named = re.findall(r"\b([A-Z0-9]{6}L\d) \(([^,)]+)", plan)
    assert len(named) >= 2  # the catalog backup's tape and the newest set's
    for barcode, place in named:
        assert place == media[barcode]["where"], (barcode, place, media[barcode]["where"])
    assert "tapeline media rebuild --library vtl --wait" in plan
