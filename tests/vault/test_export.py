"""`tapeline vault export` against the simulator: more offsite-ready cartridges than mail slots go out in batches,
the job waiting (with an alert) until the operator has emptied the mail slots; the catalog goes to tape first and
travels with them; each cartridge is courier, in its case, with its move recorded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from appliance.catalog import tape_sets
from appliance.catalog.models import MediaCase
from appliance.catalog.moves import history
from appliance.errors import UsageError
from appliance.media import pools
from appliance.ops.alerts import list_alerts
from appliance.vault import export as export_module
from appliance.vault.drplan import DR_GROUP
from appliance.vault.export import rotating_pools
from tests.vault.mailslot_harness import Site, now, operator


@pytest.fixture
def site(tmp_path, catalog_url, monkeypatch):
    monkeypatch.setattr(export_module, "WAIT_POLL", 0.1)
    s = Site(tmp_path, catalog_url, mailslots=2)
    yield s
    s.close()


def _open_alerts(site: Site, text: str) -> list[str]:
    return [a.message for a in list_alerts(site.catalog) if text in a.message and not a.acknowledged]


def test_more_cartridges_than_mail_slots_leave_in_batches_once_the_operator_empties_them(site):
    site.pool("weekly")
    site.written("weekly", ["A00000L8", "A00001L8"], now() - timedelta(days=1))
    job_id, _ = site.engine.submit("vault-export", None, None, {"pool": "weekly", "case": None})

    waiting = site.wait_message(job_id, "empty the mail slots of library vtl: 1 cartridge is waiting")
    assert waiting.state == "running"
    assert _open_alerts(site, "empty the mail slots of library vtl")
    first = {b: site.cartridge(b) for b in ("A00000L8", "A00001L8")}
    assert sorted((c.rotation, c.location_kind, c.location_number) for c in first.values()) == [
        ("courier", "mailslot", 1), ("courier", "mailslot", 2)]

    operator(site.library_dir, ["open"], ["remove", "1"], ["remove", "2"], ["close"])
    job = site.wait_job(job_id)
    assert job.state == "completed", (job.reason, job.warnings)
    result = job.result
    assert result["batches"] == 2 and [e["batch"] for e in result["ejected"]] == [1, 1, 2]

    # the catalog went to tape before the batch, in the pool's media, and left with the last batch
    dr = tape_sets.list_sets(site.catalog, DR_GROUP)
    assert [(s.state, s.pool, s.verified is not None) for s in dr] == [("ok", "weekly", True)]
    dr_barcode = dr[0].parts[0].barcode
    assert result["ejected"][2]["barcode"] == dr_barcode and result["catalog_backups"][0]["cartridges"] == [dr_barcode]
    assert site.cartridge(dr_barcode).rotation == "courier"
    assert not _open_alerts(site, "empty the mail slots")  # resolved once they were emptied

    # the first batch, taken out by the operator, is in transit; every move is recorded with the job's id
    gone = site.cartridge("A00000L8")
    assert (gone.rotation, gone.location_kind, gone.vault_id) == ("courier", "transit", site.vault.id)
    with site.catalog.reader() as s:
        moves = history(s, gone.id)
    assert [(m.from_location, m.to_location, m.to_rotation, m.job_id) for m in moves][-2:] == [
        ("slot 1", "mail slot 1", "courier", job_id), ("mail slot 1", "in transit", "courier", None)]
    with site.catalog.reader() as s:
        case = s.get(MediaCase, gone.case_id)
    assert case.number == f"weekly-{now():%Y%m%d}-{job_id}" and case.vault_id == site.vault.id

    # a plan was written with each batch, and the last one names the catalog's cartridge
    plans = [Path(p) for p in result["plans"]]
    assert len(plans) == 2 and all(p.is_file() for p in plans)
    assert dr_barcode in plans[-1].read_text() and (plans[-1].parent / "plan-latest.md").read_text() == \
        plans[-1].read_text()


def test_the_case_the_operator_names_holds_the_batch_and_nothing_ready_is_said(site):
    site.pool("weekly", allocation="always")
    job_id, _ = site.engine.submit("vault-export", None, None, {"pool": None, "case": "C-17"})
    job = site.wait_job(job_id)
    assert job.state == "completed" and "nothing is ready to go offsite" in job.result["summary"]
    assert job.result["catalog_backups"] == []  # nothing to send: no tape written for nothing

    site.written("weekly", ["A00003L8", "A00004L8"], now() - timedelta(days=1))
    site.taken_out(["A00004L8"])  # already on the shelf: handed to the courier as it is
    job_id, _ = site.engine.submit("vault-export", None, None, {"pool": None, "case": "C-17"})
    job = site.wait_job(job_id)
    assert job.state == "completed", job.reason
    ejected = {e["barcode"]: e["case"] for e in job.result["ejected"]}
    assert ejected["A00003L8"] == "C-17" and len(ejected) == 2  # and the catalog's own set, in its own media set
    assert job.result["handed_over"] == ["A00004L8"]
    shelf = site.cartridge("A00004L8")
    assert (shelf.rotation, shelf.location_kind) == ("courier", "transit")


def test_an_export_names_the_pool_that_has_no_vault_and_how_to_give_it_one(site):
    site.pool("local", vault=False)
    with pytest.raises(UsageError) as refused:
        rotating_pools(site.catalog, "local")
    assert "pool 'local' sends its cartridges to no vault" in refused.value.message
    assert refused.value.fix == "name one with `tapeline pool set local --vault NAME`"


def test_a_calendar_pools_open_set_is_closed_so_the_catalog_leaves_with_the_batch(site):
    site.pool("daily", allocation="daily")  # its media set stays open until midnight
    site.written("daily", ["A00000L8"], now() - timedelta(minutes=5))
    job_id, _ = site.engine.submit("vault-export", None, None, {"pool": "daily", "case": None})
    job = site.wait_job(job_id)
    assert job.state == "completed", (job.reason, job.warnings)
    dr = tape_sets.list_sets(site.catalog, DR_GROUP)
    assert [(s.state, s.pool) for s in dr] == [("ok", "daily")]
    dr_barcode = dr[0].parts[0].barcode
    assert len(job.result["closed"]) == 1
    assert sorted(e["barcode"] for e in job.result["ejected"]) == sorted(["A00000L8", dr_barcode])
    assert site.cartridge(dr_barcode).rotation == "courier"


def test_an_open_set_still_being_written_stays_and_the_export_says_so(site):
    """A backup writes into the calendar pool's open set while the export runs: the set is not closed under it;
    what was ready leaves, and the warning says the rest leaves with a later export."""
    site.pool("daily", allocation="daily")
    site.written("daily", ["A00000L8"], now() - timedelta(days=1))
    open_set = pools.media_set_for_write(site.catalog, "daily", now() - timedelta(minutes=5))
    pools.join_media_set(site.catalog, "A00001L8", open_set, now() - timedelta(minutes=5))
    writing = tape_sets.create_set(site.catalog, "still-writing", open_set.id, None, "docs", None, None, "full",
                                   None, now() - timedelta(minutes=5))
    job_id, _ = site.engine.submit("vault-export", None, None, {"pool": "daily", "case": None})
    job = site.wait_job(job_id)
    assert job.state == "completed with warnings", job.reason
    held = [w for w in job.warnings if "is being written" in w]
    assert held == [f"media set {open_set.uuid} of pool 'daily' is being written (a tape set still being written): "
                    "its cartridges leave with a later export"]
    assert job.result["closed"] == [] and "A00000L8" in [e["barcode"] for e in job.result["ejected"]]
    assert site.cartridge("A00001L8").rotation == "mountable"
    assert tape_sets.get_set(site.catalog, writing).state == "writing"


def test_a_look_at_the_mail_slots_reads_the_cartridges_seen_in_one_query(site):
    """export.wait_for takes a fast inventory every WAIT_POLL while the operator empties the mail slots: the
    cartridges it sees are loaded at once, not one query per barcode."""
    from sqlalchemy import event

    site.media.library("vtl").inventory(now())
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        if "FROM cartridge" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)
    event.listen(site.catalog.engine, "before_cursor_execute", seen)
    try:
        report = site.media.library("vtl").inventory(now())
    finally:
        event.remove(site.catalog.engine, "before_cursor_execute", seen)
    assert report.cartridges >= 10
    assert len(statements) == 2, statements  # the ones seen, and the library's others (to find those gone)
