"""Receive, recall and sent-back (vault/rotation.py) on SQLite and PostgreSQL: the DRM moves an operator confirms,
cases moving as one, and every discrepancy refused with an alert, moving nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.media import find_cartridge
from appliance.catalog.moves import history, move
from appliance.catalog.vaults import case_for, create_vault
from appliance.errors import Conflict
from appliance.ops.alerts import list_alerts
from appliance.vault.rotation import list_all, receive, recall, sent_back, show
from tests.vault.site import DAY, Site

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def site(catalog_url):
    cat = open_catalog(catalog_url)
    yield Site(cat)
    cat.close()


def _out(site, barcodes, case=None):
    """The export's part: the cartridges leave with the courier (in `case`)."""
    with site.catalog.session() as s:
        number = case_for(s, case, site.vault.id).id if case else None
        for barcode in barcodes:
            cart = find_cartridge(s, barcode)
            cart.case_id = number
            move(s, cart, "courier", T0, operator="tapeline", vault_id=site.vault.id)


def _rotation(site, barcode):
    with site.catalog.reader() as s:
        return find_cartridge(s, barcode).rotation


def test_a_case_is_received_as_one_and_returns_with_its_latest_cartridge(site):
    site.pool("short", retention_days=7)
    site.pool("long", retention_days=30)
    a = site.write("short", T0)
    b = site.write("long", T0)
    _out(site, a + b, case="C-0001")
    answer = receive(site.catalog, ["C-0001"], "ironvault", T0 + timedelta(hours=5), "bob")
    assert answer["received"] == sorted(a + b)
    assert answer["cases"][0]["returns"] == T0 + timedelta(days=30)
    assert {_rotation(site, x) for x in a + b} == {"vault"}
    with site.catalog.reader() as s:
        last = history(s, find_cartridge(s, a[0]).id)[-1]
    assert (last.operator, last.to_location, last.reason) == ("bob", "vault ironvault", "received in case C-0001")
    shown = show(site.catalog, "ironvault")
    assert [(c["case"], c["returns"]) for c in shown["cases"]] == [("C-0001", T0 + timedelta(days=30))]


def test_a_cartridge_never_sent_is_a_discrepancy_that_moves_nothing_and_raises_an_alert(site):
    site.pool("weekly")
    sent = site.write("weekly", T0)
    kept = site.write("weekly", T0 + timedelta(hours=1))
    _out(site, sent)
    with pytest.raises(Conflict, match=f"{kept[0]} was never sent") as err:
        receive(site.catalog, sent + kept, "ironvault", T0 + timedelta(hours=5), "bob")
    assert "--skip" in err.value.fix
    assert _rotation(site, sent[0]) == "courier"  # nothing moved, the good one neither
    assert any(f"{kept[0]} was never sent" in a.message for a in list_alerts(site.catalog))
    # the operator's word: it really is in the vault (hand-carried)
    receive(site.catalog, kept, "ironvault", T0 + timedelta(hours=6), "bob", skip=True)
    assert _rotation(site, kept[0]) == "vault"


def test_a_barcode_given_twice_or_unknown_or_sent_elsewhere_is_a_discrepancy(site):
    site.pool("weekly")
    sent = site.write("weekly", T0)
    _out(site, sent, case="C-7")
    with pytest.raises(Conflict, match=f"{sent[0]} given twice \\(itself and in case C-7\\)"):
        receive(site.catalog, [sent[0], "C-7"], "ironvault", T0, "bob")
    with pytest.raises(Conflict, match="NOSUCH is neither a cartridge nor a case"):
        receive(site.catalog, ["NOSUCH"], "ironvault", T0, "bob")
    create_vault(site.catalog, "othervault")
    with pytest.raises(Conflict, match="was sent to vault ironvault, not othervault"):
        receive(site.catalog, sent, "othervault", T0, "bob")
    assert _rotation(site, sent[0]) == "courier"


def test_recall_takes_what_is_due_and_the_courier_takes_it_back(site):
    site.pool("weekly", retention_days=7)
    old = site.write("weekly", T0)
    new = site.write("weekly", T0 + timedelta(days=5))
    _out(site, old + new)
    receive(site.catalog, old + new, "ironvault", T0 + timedelta(days=5, hours=1), "bob")
    answer = recall(site.catalog, T0 + timedelta(days=8), "ann")
    assert [r["barcode"] for r in answer["recalled"]] == old
    assert answer["recalled"][0]["reason"].startswith("due")
    assert (_rotation(site, old[0]), _rotation(site, new[0])) == ("vaultretrieve", "vault")
    with pytest.raises(Conflict, match=f"{new[0]} was not recalled"):
        sent_back(site.catalog, new, T0 + timedelta(days=9), "ann")
    assert sent_back(site.catalog, old, T0 + timedelta(days=9), "ann")["sent_back"] == old
    assert _rotation(site, old[0]) == "courierretrieve"


def test_recalling_the_only_offsite_copy_of_unexpired_points_is_refused_unless_forced(site):
    site.pool("weekly", retention_days=30)
    held = site.write("weekly", T0, group="docs")
    _out(site, held)
    receive(site.catalog, held, "ironvault", T0 + timedelta(hours=2), "bob")
    with pytest.raises(Conflict, match="only offsite copy of 1 recovery point") as err:
        recall(site.catalog, T0 + timedelta(days=3), "ann", barcodes=held)
    assert "docs" in err.value.message and "--force" in err.value.fix
    assert _rotation(site, held[0]) == "vault"
    answer = recall(site.catalog, T0 + timedelta(days=3), "ann", barcodes=held, force=True)
    assert [p["group"] for p in answer["forced_points"]] == ["docs"]
    assert _rotation(site, held[0]) == "vaultretrieve"


def test_a_sampled_check_recalls_the_least_recently_checked_and_holds_it_until_read(site):
    from appliance.vault.checks import record_check
    from appliance.vault.policy import offsite_ready
    site.pool("weekly", retention_days=60, check_sample=1, check_every_seconds=30 * DAY)
    first = site.write("weekly", T0)
    second = site.write("weekly", T0 + timedelta(days=1))
    _out(site, first + second)
    receive(site.catalog, first + second, "ironvault", T0 + timedelta(days=1, hours=2), "bob")
    record_check(site.catalog, first[0], T0 - timedelta(days=1), None)  # read once already: the other goes first
    answer = recall(site.catalog, T0 + timedelta(days=2), "ann")
    assert [(r["barcode"], r["reason"]) for r in answer["recalled"]] == [(second[0], "sampled read-back check")]
    assert recall(site.catalog, T0 + timedelta(days=3), "ann")["recalled"] == []  # next round in 30 days
    # back on site, unread: not offsite-ready; once read, it is
    with site.catalog.session() as s:
        cart = find_cartridge(s, second[0])
        for state in ("courierretrieve", "onsiteretrieve"):
            move(s, cart, state, T0 + timedelta(days=4), operator="ann")
        move(s, cart, "mountable", T0 + timedelta(days=4), operator="ann", place=("slot", 40))
    assert offsite_ready(site.catalog, T0 + timedelta(days=5)) == []
    record_check(site.catalog, second[0], T0 + timedelta(days=5), None)
    assert [c.barcode for c in offsite_ready(site.catalog, T0 + timedelta(days=5, hours=1))] == second
    shown = show(site.catalog, "ironvault")
    checked = {c["barcode"]: c["last_check_result"] for case in shown["cases"] for c in case["cartridges"]}
    assert checked[first[0]] == "ok"
    # a check that failed keeps it on site: its sets are to be written again, not sent back unreadable
    record_check(site.catalog, second[0], T0 + timedelta(days=6), "set 1a2b part 1: frame 3 hash mismatch")
    assert offsite_ready(site.catalog, T0 + timedelta(days=6, hours=1)) == []


def test_a_case_comes_back_as_one_when_its_latest_cartridge_expired(site):
    site.pool("short", retention_days=7)
    site.pool("long", retention_days=30)
    a = site.write("short", T0)
    b = site.write("long", T0)
    _out(site, a + b, case="C-0002")
    receive(site.catalog, ["C-0002"], "ironvault", T0 + timedelta(hours=5), "bob")
    assert recall(site.catalog, T0 + timedelta(days=10), "ann")["recalled"] == []  # a expired, b not: it waits
    answer = recall(site.catalog, T0 + timedelta(days=31), "ann")
    assert [(r["barcode"], r["case"]) for r in answer["recalled"]] == [(x, "C-0002") for x in sorted(a + b)]


def test_the_vault_list_counts_cartridges_without_loading_them(site):
    """`vault list` on a site whose vaults hold thousands of cartridges: counted in the catalog, per vault and
    rotation state, not read row by row."""
    from sqlalchemy import event

    site.pool("weekly")
    barcodes = site.write("weekly", T0, tapes=3)
    _out(site, barcodes)
    receive(site.catalog, barcodes[:2], site.vault.name, T0 + timedelta(days=1), "ann")
    other = create_vault(site.catalog, "dr-site")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)
    event.listen(site.catalog.read_engine, "before_cursor_execute", seen)
    try:
        listed = {v["name"]: v["cartridges"] for v in list_all(site.catalog)}
    finally:
        event.remove(site.catalog.read_engine, "before_cursor_execute", seen)
    assert listed == {site.vault.name: {"vault": 2, "courier": 1}, other.name: {}}
    assert not [s for s in statements if "cartridge.barcode" in s]  # no cartridge row was read
