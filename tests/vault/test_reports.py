"""The offsite rotation reports over a real catalog (SQLite and PostgreSQL) of a site in mid-rotation
(report_site.py): what each list says, as the operator, the courier and the vault read it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from types import SimpleNamespace

import pytest

from appliance.catalog.engine import open_catalog
from appliance.errors import NotFound, UsageError
from appliance.ops.reports import build, render
from tests.vault.report_site import DAY, NOW, make_site


@pytest.fixture
def site(catalog_url):
    cat = open_catalog(catalog_url)
    make_site(cat)
    yield SimpleNamespace(catalog=cat)
    cat.close()


def table(report, n: int = 0) -> list[dict]:
    t = report.tables[n]
    return [dict(zip([c.name for c in t.columns], row)) for row in t.rows]


def test_the_library_pick_list_says_what_to_eject_and_from_which_slot(site):
    report = build(site, "pick-list-library", now=NOW)
    assert [(r["barcode"], r["from"], r["to vault"]) for r in table(report)] == [
        ("A00001L9", "slot 1", "iron"), ("A00002L9", "slot 2", "iron")]
    assert [r["barcode"] for r in table(report, 1)] == ["D00001L9"]  # already in the mail slot, for the courier
    text = render(report, "text")
    assert "2 cartridges to send offsite today" in text and "tapeline vault export --wait" in text


def test_the_library_pick_list_shows_what_the_courier_brings_back(site):
    from appliance.catalog.media import find_cartridge
    from appliance.catalog.moves import move

    assert table(build(site, "pick-list-library", now=NOW), 2) == []
    with site.catalog.session() as s:  # recalled C00001L9: `vault sent-back`
        move(s, find_cartridge(s, "C00001L9"), "courierretrieve", NOW, operator="ann")
    report = build(site, "pick-list-library", now=NOW)
    assert report.tables[2].title == "On the way back from the vault, to put into the library"
    assert [(r["barcode"], r["where"]) for r in table(report, 2)] == [("C00001L9", "in transit")]
    assert ("1 cartridge is on the way back from the vault: when the courier brings it, put it into the mail slots "
            "and run `tapeline vault import --wait`") in render(report, "text")


def test_the_library_pick_list_shows_the_open_set_the_export_closes_and_sends(site):
    from sqlmodel import select

    from appliance.catalog.models import MediaSet
    with site.catalog.session() as s:  # m1 still open: its `continue` pool appends to it until an export closes it
        m1 = s.exec(select(MediaSet).where(MediaSet.uuid == "m1")).one()
        m1.closed = None
        s.add(m1)
    report = build(site, "pick-list-library", now=NOW)
    assert [r["barcode"] for r in table(report)] == ["A00001L9", "A00002L9"]


def test_the_vault_pick_list_is_by_case_and_names_what_is_due_but_not_recalled(site):
    report = build(site, "pick-list-vault", now=NOW)
    assert [(r["vault"], r["case"], r["barcode"]) for r in table(report)] == [("iron", "C7", "C00001L9")]
    assert table(report)[0]["recalled"] == NOW - 10 * DAY
    assert [r["barcode"] for r in table(report, 1)] == ["B00001L9"]
    assert "run `tapeline vault recall`" in render(report, "text") and report.needs_attention


def test_the_vault_inventory_is_what_the_vault_must_hold_with_each_case_returning_with_its_latest(site):
    report = build(site, "vault-inventory", now=NOW)
    rows = table(report)
    assert [r["barcode"] for r in rows] == ["B00001L9", "B00002L9", "C00001L9", "E00001L9"]
    assert [r["case"] for r in rows] == ["-", "C7", "C7", "C7"]  # B00001L9 travels loose
    assert {r["returns"] for r in rows[1:]} == {NOW + 5 * DAY}  # B00002L9's, the case's latest
    assert rows[0]["arrived"] == NOW - 29 * DAY
    assert "vault iron must hold 4 cartridges; 2 more on the way" in render(report, "text")


def test_discrepancies_name_each_cartridge_out_of_place_with_its_fix(site):
    report = build(site, "discrepancies", now=NOW)
    found = {(r["barcode"], r["discrepancy"]) for r in table(report)}
    assert found == {("E00001L9", "present, expected elsewhere"), ("F00001L9", "expected in the library, missing"),
                     ("D00002L9", "in transit too long"), ("C00001L9", "overdue return"),
                     ("B00001L9", "overdue return")}
    by = {r["barcode"]: r for r in table(report)}
    assert by["E00001L9"]["found"] == "slot 5" and by["E00001L9"]["since"] == NOW - 2 * DAY
    assert "tapeline vault receive D00002L9 --vault iron" in by["D00002L9"]["fix"]
    assert report.needs_attention
    assert "D00001L9" not in found  # waiting in the mail slot for the courier is where it should be


def test_media_status_counts_each_pool_and_the_last_read_back_check(site):
    from appliance.vault.checks import record_check
    record_check(site.catalog, "A00001L9", NOW - 9 * DAY, None)
    record_check(site.catalog, "B00002L9", NOW - 3 * DAY, None)
    report = build(site, "media-status", days=10, now=NOW)
    pools = {r["pool"]: r for r in table(report)}
    assert (pools["offsite"]["cartridges"], pools["offsite"]["scratch"], pools["offsite"]["offsite"]) == (8, 0, 6)
    assert pools["offsite"]["expiring in 10 days"] == 4  # media set M0b's
    assert (pools["offsite"]["last read-back check"], pools["offsite"]["checked"]) == (NOW - 3 * DAY,
                                                                                      "B00002L9: ok")
    assert (pools["local"]["scratch"], pools["local"]["errors"], pools["local"]["checked"]) == (2, 1, "never")
    assert [r["barcode"] for r in table(report, 1)] == ["G00001L9"]
    assert "no scratch cartridge left in pool offsite" in render(report, "text")


def test_restore_needs_names_the_full_and_its_incrementals_and_where_they_are(site):
    report = build(site, "restore-needs", now=NOW, group="files")
    assert [(r["kind"], r["barcode"], r["where"]) for r in table(report)] == [
        ("full", "A00001L9", "slot 1"), ("incremental", "A00002L9", "slot 2")]
    assert not report.needs_attention
    older = build(site, "restore-needs", now=NOW, group="files", at=NOW - 20 * DAY)
    assert [(r["barcode"], r["where"], r["case"]) for r in table(older)] == [("B00002L9", "vault iron", "C7")]
    assert older.needs_attention and "1 not in the library (B00002L9)" in render(older, "text")


def test_restore_needs_without_a_group_or_a_set_says_what_to_give(site):
    with pytest.raises(UsageError, match="needs a group") as err:
        build(site, "restore-needs", now=NOW)
    assert "GROUP --at TIME" in err.value.fix
    with pytest.raises(NotFound, match="no tape set made at or before"):
        build(site, "restore-needs", now=NOW, group="files", at=NOW - 100 * DAY)
    with pytest.raises(UsageError, match="takes no group"):
        build(site, "media-status", now=NOW, group="files")


def test_the_distribution_list_says_what_travels_where(site):
    report = build(site, "distribution", days=7, now=NOW)
    rows = {r["barcode"]: (r["to"], r["from"], r["rotation"]) for r in table(report)}
    assert rows == {"D00001L9": ("vault iron", "on site", "courier"), "D00002L9": ("vault iron", "on site", "courier")}
    month = build(site, "distribution", days=31, now=NOW)
    assert {r["barcode"] for r in table(month)} == {"B00001L9", "B00002L9", "C00001L9", "E00001L9", "D00001L9",
                                                    "D00002L9"}


def test_a_vault_list_exports_as_the_tab_and_tilde_im_file(site):
    text = render(build(site, "vault-inventory", now=NOW), "im")
    lines = text.splitlines()
    assert lines[0] == "StartHeaderText~D~iron~tapeline-vtl~EndHeaderText"
    assert lines[-1] == "StartFooterText~D~iron~tapeline-vtl-4~EndFooterText"
    back = (NOW - DAY).astimezone().strftime("%m%d%Y")
    assert lines[1] == f"B00001L9\t{back}" and len(lines) == 6 and text.endswith("\n")
    with pytest.raises(UsageError, match="not a vault list") as err:
        render(build(site, "media-status", now=NOW), "im")
    assert "vault-inventory" in err.value.fix


def test_the_csv_of_a_pick_list_keeps_raw_values(site):
    rows = list(csv.DictReader(io.StringIO(render(build(site, "pick-list-library", now=NOW), "csv"))))
    assert rows[0]["barcode"] == "A00001L9" and rows[0]["returns"] == (NOW + 28 * DAY).isoformat()
    html = render(build(site, "discrepancies", now=NOW), "html")
    assert "<td>E00001L9</td>" in html and "http" not in html.replace("<!DOCTYPE html>", "")


def test_an_empty_site_says_so_rather_than_nothing(catalog_url):
    cat = open_catalog(catalog_url)
    try:
        app = SimpleNamespace(catalog=cat)
        assert "nothing to send offsite today" in render(build(app, "pick-list-library", now=NOW), "text")
        assert "every cartridge is where the catalog expects it" in render(build(app, "discrepancies", now=NOW),
                                                                          "text")
        assert render(build(app, "vault-inventory", now=NOW), "im") == ""
        assert not build(app, "media-status", now=NOW + timedelta(days=1)).needs_attention
    finally:
        cat.close()
