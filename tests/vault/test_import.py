"""`tapeline vault import` against the simulator: cartridges an operator put into the mail slots are recognised by
barcode: an expected return goes to a free slot and is mountable again (scratch once its data expired and the
reuse delay passed), an unknown barcode is imported but never written until labelled, one the catalog has in a
vault stays in the mail slot until the operator's word; each discrepancy raises an alert."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import pytest

from appliance.catalog import media as cat
from appliance.catalog.models import TapeSet
from appliance.catalog.moves import history, move
from appliance.catalog.vaults import case_for
from appliance.media import pools
from appliance.ops.alerts import list_alerts
from appliance.vault import export as export_module
from appliance.vault.import_ import Import
from tests.vault.mailslot_harness import Site, now, operator


@pytest.fixture
def site(tmp_path, catalog_url, monkeypatch):
    monkeypatch.setattr(export_module, "WAIT_POLL", 0.1)
    s = Site(tmp_path, catalog_url, mailslots=3)
    yield s
    s.close()


def _rotate(site: Site, barcode: str, *states: str) -> None:
    with site.catalog.session() as s:
        cart = cat.find_cartridge(s, barcode)
        for state in states:
            move(s, cart, state, now(), operator="ann", vault_id=site.vault.id, skip=True)


def _alerts(site: Site) -> list[str]:
    return [a.message for a in list_alerts(site.catalog)]


def test_an_expected_return_an_unknown_and_a_vaulted_cartridge_in_the_mail_slots(site):
    site.pool("weekly", retention_days=1)
    site.written("weekly", ["A00000L8"], now() - timedelta(days=30))  # its data expired long ago
    pools.expire(site.catalog, now())
    site.taken_out(["A00000L8", "A00001L8"])
    _rotate(site, "A00000L8", "courier", "vault", "vaultretrieve", "courierretrieve")  # on its way back
    _rotate(site, "A00001L8", "courier", "vault")  # still in the vault, as the catalog has it
    operator(site.library_dir, ["open"], ["insert", "A00000L8"], ["insert", "B00000L8"], ["insert", "A00001L8"],
             ["close"])

    job_id, _ = site.engine.submit("vault-import", None, None, {"library": None, "accept": [], "operator": "ann"})
    job = site.wait_job(job_id)
    assert job.state == "completed with warnings", job.reason
    imported = {i["barcode"]: i["as"] for i in job.result["imported"]}
    assert imported == {"A00000L8": "return", "B00000L8": "unknown"}

    back = site.cartridge("A00000L8")
    assert (back.rotation, back.location_kind, back.state, back.case_id) == ("mountable", "slot", "scratch", None)
    assert job.result["scratch"] == ["A00000L8"]
    with site.catalog.reader() as s:
        last = history(s, back.id)[-1]
    assert (last.from_rotation, last.to_rotation, last.job_id) == ("courierretrieve", "mountable", job_id)

    stranger = site.cartridge("B00000L8")
    assert (stranger.state, stranger.location_kind) == ("foreign", "slot")  # never chosen for writing
    pool = cat.get_pool(site.catalog, "weekly")
    ms = pools.media_set_for_write(site.catalog, pool, now())
    assert pools.next_cartridge(site.catalog, pool, ms).barcode != "B00000L8"
    assert any("cartridge B00000L8 put into library vtl is unknown to this catalog" in m for m in _alerts(site))

    vaulted = site.cartridge("A00001L8")
    assert (vaulted.rotation, vaulted.location_kind) == ("vault", "mailslot")  # left where it is, not fixed silently
    discrepancy = [m for m in _alerts(site) if "A00001L8" in m]
    assert discrepancy == ["cartridge A00001L8 is present in mail slot 3 of library vtl but expected in vault "
                           "ironvault (vault): left in the mail slot"]
    assert job.result["discrepancies"][0]["fix"].startswith("if it really came back, `tapeline vault import "
                                                            "--accept A00001L8`")

    # the operator's word: it is back; the move out of the cycle is recorded with their name
    job_id, _ = site.engine.submit("vault-import", None, None, {"library": "vtl", "accept": ["A00001L8"],
                                                                "operator": "bob"})
    job = site.wait_job(job_id)
    assert job.state == "completed", job.reason
    vaulted = site.cartridge("A00001L8")
    assert (vaulted.rotation, vaulted.location_kind) == ("mountable", "slot")
    with site.catalog.reader() as s:
        last = history(s, vaulted.id)[-1]
    assert (last.operator, last.from_rotation, last.to_rotation) == ("bob", "vault", "mountable")


def test_with_no_free_slot_the_import_waits_until_one_is_freed(site):
    operator(site.library_dir, ["open"], ["insert", "B00000L8"], ["insert", "B00001L8"], ["close"])
    job_id, _ = site.engine.submit("vault-import", None, None, {"library": "vtl", "accept": [], "operator": "ann"})
    site.wait_message(job_id, "library vtl has no free slot for the cartridges in its mail slots")
    assert site.cartridge("B00000L8").location_kind == "slot"  # the one free slot took the first
    site.taken_out(["A00002L8"])  # the operator makes room
    job = site.wait_job(job_id)
    assert job.state == "completed with warnings" and {i["barcode"] for i in job.result["imported"]} == {
        "B00000L8", "B00001L8"}
    waited = [a for a in list_alerts(site.catalog, include_closed=True) if "no free slot" in a.message]
    assert len(waited) == 1 and waited[0].resolved  # said once, resolved once a slot was free


def test_a_return_waits_out_its_pools_reuse_delay_before_it_is_scratch(site):
    site.pool("weekly", retention_days=1, reuse_days=60)
    set_id = site.written("weekly", ["A00000L8"], now() - timedelta(days=30))  # expired 29 days ago: 31 to wait
    with site.catalog.reader() as s:
        set_uuid = s.get(TapeSet, set_id).uuid
    site.media.index.save(set_uuid, 1, b"its index")  # the copy a tape backup keeps
    site.taken_out(["A00000L8"])
    _rotate(site, "A00000L8", "courier", "vault", "vaultretrieve", "courierretrieve")
    operator(site.library_dir, ["open"], ["insert", "A00000L8"], ["close"])

    job_id, _ = site.engine.submit("vault-import", None, None, {"library": "vtl", "accept": [], "operator": "ann"})
    job = site.wait_job(job_id)
    assert [i["barcode"] for i in job.result["imported"]] == ["A00000L8"]
    back = site.cartridge("A00000L8")
    assert (back.rotation, back.state) == ("mountable", "expired") and job.result["expired"] == ["A00000L8"]
    assert job.result["scratch"] == [] and job.state == "completed"
    # its set stopped counting with the import's expiry (MediaService.expire): its index copy went with it
    with site.catalog.reader() as s:
        assert s.get(TapeSet, set_id).state == "expired"
    assert not site.media.index.has(set_uuid)


def test_a_barcode_on_two_cartridges_is_refused_with_an_alert(site):
    """Two cartridges labelled alike cannot exist in the simulator (a barcode is its cartridge's name there): the
    changer's report of them is built as the driver builds it, and judged as the import judges every mail slot."""
    inv = site.media.library("vtl").current()
    twin = replace(inv.mailslots[1], full=True, barcode="A00003L8", impexp=True)
    seen = Counter(e.barcode for e in (*inv.slots, twin) if e.full and e.barcode)
    job = SimpleNamespace(catalog=site.catalog, job_id=7, params={}, cancel=None)
    importer = Import(job, site.media)
    assert importer._verdict("vtl", twin, seen) is None  # it stays in the mail slot
    message = "barcode A00003L8 is on two cartridges in library vtl (one in mail slot 2 of library vtl): not imported"
    assert importer.result["refused"] == [{"barcode": "A00003L8", "message": message, "fix": "take the one in mail "
                                           "slot 2 of library vtl out and give it a barcode of its own"}]
    assert [a.message for a in list_alerts(site.catalog)] == [message]


def test_a_vaulted_cartridge_found_in_a_slot_is_alerted_and_taken_only_on_the_operators_word(site):
    _rotate(site, "A00005L8", "courier", "vault")  # the catalog has it in the vault; it is in slot 6
    site.media.library("vtl").inventory(now())
    expected = "cartridge A00005L8 is present in slot 6 of library vtl but expected in vault ironvault (vault)"
    alert = next(a for a in list_alerts(site.catalog) if a.message == expected)
    assert alert.fix.startswith("if it really came back, `tapeline vault import --accept A00005L8`")
    assert site.cartridge("A00005L8").rotation == "vault"  # said, not fixed

    job_id, _ = site.engine.submit("vault-import", None, None, {"library": "vtl", "accept": ["A00005L8", "Z00000L8"],
                                                                "operator": "bob"})
    job = site.wait_job(job_id)
    assert job.result["imported"] == [{"barcode": "A00005L8", "slot": 6, "as": "accepted"}]
    assert job.warnings == ["--accept Z00000L8: no cartridge Z00000L8 waits for your word in a mail slot or slot; "
                            "nothing was done for it"]
    back = site.cartridge("A00005L8")
    assert (back.rotation, back.location_kind, back.location_number) == ("mountable", "slot", 6)
    with site.catalog.reader() as s:
        last = history(s, back.id)[-1]
    assert (last.operator, last.from_rotation, last.to_rotation, last.job_id) == ("bob", "vault", "mountable", job_id)
    assert expected not in [a.message for a in list_alerts(site.catalog)]  # resolved


def test_the_inventory_takes_a_recalled_cartridge_found_in_a_slot_as_a_return_as_the_import_does(site):
    _rotate(site, "A00005L8", "courier", "vault", "vaultretrieve")  # recalled, and put into slot 6 by hand
    site.taken_out(["A00001L8"])
    _rotate(site, "A00001L8", "courier", "vault", "vaultretrieve", "courierretrieve")  # sent back, then ...
    operator(site.library_dir, ["open"], ["insert", "A00001L8"], ["close"])  # ... into the mail slot
    _rotate(site, "A00006L8", "courier", "vault", "vaultretrieve", "courierretrieve")  # sent back, in slot 7
    with site.catalog.session() as s:
        cart = cat.find_cartridge(s, "A00006L8")
        cart.case_id = case_for(s, "C-9", site.vault.id).id
        s.add(cart)
    report = site.media.library("vtl").inventory(now())
    assert report.unexpected == ()
    assert not [a for a in _alerts(site) if "expected in" in a]
    for barcode, slot, was in (("A00005L8", 6, "vaultretrieve"), ("A00006L8", 7, "courierretrieve")):
        back = site.cartridge(barcode)
        assert (back.rotation, back.location_kind, back.location_number, back.vault_id, back.case_id) == (
            "mountable", "slot", slot, None, None)
        with site.catalog.reader() as s:
            last = history(s, back.id)[-1]
        assert (last.operator, last.from_rotation, last.to_rotation) == ("tapeline", was, "mountable")
        assert last.reason.startswith("inventory of library vtl: back from the vault")
    # one in a mail slot waits there for `vault import`, which records its return with its job
    waiting = site.cartridge("A00001L8")
    assert (waiting.rotation, waiting.location_kind) == ("courierretrieve", "mailslot")
