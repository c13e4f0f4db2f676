"""The sampled read-back check end to end against the simulator: recalled from the vault, taken in by `vault
import`, which queues its verify; the verify's outcome is the cartridge's last check."""

from __future__ import annotations

from datetime import timedelta

import pytest

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.tape_sets import DR_GROUP
from appliance.catalog.models import Pool
from appliance.catalog.moves import move
from appliance.media import admin, pools
from appliance.media.tape_tasks import TapeTasks
from appliance.ops.jobs import JobEngine
from appliance.vault import export as export_module
from appliance.vault.mailslot_jobs import VaultTasks
from appliance.vault.policy import check_pending, offsite_ready
from appliance.vault.rotation import receive, recall, sent_back
from tests.media.media_harness import fault
from tests.vault.mailslot_harness import DAY, Site, now, operator


@pytest.fixture
def site(tmp_path, catalog_url, monkeypatch):
    monkeypatch.setattr(export_module, "WAIT_POLL", 0.1)
    s = Site(tmp_path, catalog_url, mailslots=2)
    s.engine.stop()  # the same engine, with the verify job too (the daemon has every kind)
    bodies = {**VaultTasks(None, s.media, s.cache, s.settings).bodies(),
              "media-verify": TapeTasks(None, s.media, s.cache).verify}
    s.engine = JobEngine(s.catalog, bodies, tape_slots=lambda: 2)
    s.media.engine = s.engine
    s.engine.start()
    yield s
    s.close()


def test_a_sampled_cartridge_is_read_when_it_comes_back(site):
    site.pool("weekly", retention_days=90)
    with site.catalog.session() as s:
        row = s.exec(cat.select(Pool).where(Pool.name == "weekly")).one()
        row.check_sample, row.check_every_seconds = 1, 30 * DAY
        s.add(row)
    # a closed media set on the cartridge, in the catalog only (no tape set: the verify has no index to load)
    ms = pools.media_set_for_write(site.catalog, "weekly", now() - timedelta(days=2))
    pools.join_media_set(site.catalog, "A00000L8", ms, now() - timedelta(days=2))
    pools.close_idle_set(site.catalog, ms.id, now() - timedelta(days=2), ())
    handle = site.media.library("vtl")
    with handle.lock:  # it left through the mail slot and reached the vault
        handle.changer.export(handle.changer.inventory().find("A00000L8").number, 1)
    operator(site.library_dir, ["open"], ["remove", "1"], ["close"])
    handle.inventory(now())
    with site.catalog.session() as s:
        cart = cat.find_cartridge(s, "A00000L8")
        move(s, cart, "courier", now(), operator="ann", vault_id=site.vault.id)
        move(s, cart, "vault", now(), operator="ann")

    recalled = recall(site.catalog, now(), "ann")["recalled"]
    assert [(r["barcode"], r["reason"]) for r in recalled] == [("A00000L8", "sampled read-back check")]
    sent_back(site.catalog, ["A00000L8"], now(), "ann")
    operator(site.library_dir, ["open"], ["insert", "A00000L8"], ["close"])
    job_id, _ = site.engine.submit("vault-import", None, None, {"library": None, "accept": [], "operator": "ann"})
    job = site.wait_job(job_id)
    assert [c["barcode"] for c in job.result["checks"]] == ["A00000L8"], job.reason
    verify = site.wait_job(job.result["checks"][0]["job"])
    assert verify.kind == "media-verify"
    assert verify.state == "completed", verify.reason
    back = site.cartridge("A00000L8")
    assert (back.last_check_result, back.rotation) == ("ok", "mountable")
    assert back.last_check >= back.check_requested and not check_pending(back)
    assert recall(site.catalog, now(), "ann")["recalled"] == []  # the next round is 30 days away
    assert admin.show_media(site.media, "A00000L8")["last_check_result"] == "ok"  # what `media show` prints


@pytest.mark.parametrize("reads_back", [True, False], ids=["reads-back", "media-error"])
def test_the_sampled_check_reads_the_set_the_export_wrote(site, reads_back):
    """A real set on tape: the export's catalog backup (written and verified by the tape job's own code) goes to the
    vault, comes back for its sampled check and is read. A cartridge that does not read back (a media error) keeps
    the failure as its last check and stays on site."""
    site.pool("weekly", retention_days=90)
    with site.catalog.session() as s:
        row = s.exec(cat.select(Pool).where(Pool.name == "weekly")).one()
        row.check_sample, row.check_every_seconds = 1, 30 * DAY
        s.add(row)
    site.written("weekly", ["A00005L8"], now() - timedelta(days=1))  # something ready: the export runs
    job = site.wait_job(site.engine.submit("vault-export", None, None, {"pool": "weekly", "case": None})[0])
    assert job.state == "completed", (job.reason, job.warnings)
    dr_barcode = job.result["catalog_backups"][0]["cartridges"][0]
    sent = sorted(e["barcode"] for e in job.result["ejected"])
    assert sent == sorted([dr_barcode, "A00005L8"]) and dr_barcode < "A00005L8"  # the sample's first: its barcode
    operator(site.library_dir, ["open"], ["remove", "1"], ["remove", "2"], ["close"])
    site.media.library("vtl").inventory(now())
    receive(site.catalog, sent, site.vault.name, now(), "ann")

    assert [r["barcode"] for r in recall(site.catalog, now(), "ann")["recalled"]] == [dr_barcode]
    sent_back(site.catalog, [dr_barcode], now(), "ann")
    if not reads_back:  # a block inside the set's data
        part = tape_sets.list_sets(site.catalog, DR_GROUP)[0].parts[0]
        fault(site.library_dir, "media-error", dr_barcode, "--at", str(part.first_block + part.blocks // 2),
              "--persistent")
    operator(site.library_dir, ["open"], ["insert", dr_barcode], ["close"])
    imported = site.wait_job(site.engine.submit("vault-import", None, None, {"library": None, "accept": [],
                                                                            "operator": "ann"})[0])
    verify = site.wait_job(imported.result["checks"][0]["job"])
    back = site.cartridge(dr_barcode)
    assert back.last_check >= back.check_requested and not check_pending(back)
    ready = [c.barcode for c in offsite_ready(site.catalog, now())]
    if reads_back:
        assert (verify.state, back.last_check_result) == ("completed", "ok"), verify.reason
        assert verify.result["verify"]["sets"] == 1 and dr_barcode in ready  # it goes out again with the next export
    else:
        assert verify.state == "failed" and back.last_check_result not in (None, "ok")
        assert back.last_check_result in verify.reason and dr_barcode not in ready  # never back to the vault unread
