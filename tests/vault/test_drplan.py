"""The DR plan (`tapeline vault plan`): one dated document naming the cartridges of the newest catalog backup and
of each group's newest set (with the sets an incremental needs) and where each is, the configuration, and the
commands in order; and the catalog snapshot the export writes to tape, a consistent copy on either database."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.moves import move
from appliance.catalog.vaults import case_for
from appliance.media import pools
from appliance.vault import drplan, reports
from tests.appliance.daemon_harness import make_daemon
from tests.vault.mailslot_harness import Site, now


@pytest.fixture
def site(tmp_path, catalog_url):
    s = Site(tmp_path, catalog_url, mailslots=2)
    yield s
    s.close()


def _vaulted(site: Site, barcode: str, case: str) -> None:
    with site.catalog.session() as s:
        cart = cat.find_cartridge(s, barcode)
        move(s, cart, "courier", now(), operator="tapeline", vault_id=site.vault.id)
        move(s, cart, "vault", now(), operator="ann")
        cart.case_id = case_for(s, case, site.vault.id).id
        s.add(cart)


def _incremental(site: Site, pool: str, base_id: int, barcode: str) -> int:
    ms = pools.media_set_for_write(site.catalog, pool, now())
    pools.join_media_set(site.catalog, barcode, ms, now())
    set_id = tape_sets.create_set(site.catalog, str(uuid.uuid4()), ms.id, None, "docs", None, None, "incremental",
                                  base_id, now())
    tape_sets.add_part(site.catalog, set_id, 1, barcode, 2, 3, 0, 10)
    tape_sets.finish_set(site.catalog, set_id, "ok", 3, 100, None, now())
    return set_id


def test_the_plan_says_which_cartridges_to_bring_back_where_they_are_and_what_to_run(site):
    site.pool("weekly")
    site.written("weekly", ["A00000L8"], now() - timedelta(days=9), group="docs")  # an older full: not named
    full = site.written("weekly", ["A00001L8", "A00002L8"], now() - timedelta(days=2), group="docs")
    _incremental(site, "weekly", full, "A00003L8")
    site.written("weekly", ["A00004L8"], now() - timedelta(days=1), group=drplan.DR_GROUP)
    _vaulted(site, "A00001L8", "C-1")
    _vaulted(site, "A00004L8", "C-2")

    when = now()
    path = drplan.write(site.catalog, site.settings, when)
    text = path.read_text()
    assert path.name == f"plan-{when:%Y%m%dT%H%M%SZ}.md" and (path.parent / drplan.LATEST).read_text() == text
    assert text.startswith(f"# Tapeline disaster recovery plan, {when:%Y-%m-%d %H:%M} UTC\n")
    catalog_part, groups_part = text.split("## 2.")[0], text.split("## 2.")[1].split("## 3.")[0]
    assert "A00004L8 (vault ironvault, case C-2, vault)" in catalog_part
    # the newest set of docs is the incremental: it needs its full set, on two cartridges, one in the vault
    assert "A00003L8 (slot 4)" in groups_part
    assert "A00001L8 (vault ironvault, case C-1, vault), A00002L8 (slot 3)" in groups_part
    assert "A00000L8" not in text
    assert f'data_dir = "{site.settings.data_dir}"' in text  # the configuration file, whole
    assert "pool **weekly**" in text and "offsite to vault ironvault (+1 555 0100)" in text
    steps = ["tapeline library add vtl", "tapeline vault import --wait", "tapeline media rebuild --library vtl --wait",
             f"tapeline tape restore {drplan.DR_GROUP} --to", "tapeline tape restore docs --to"]
    at = [text.index(step) for step in steps]
    assert at == sorted(at), "the commands are in the order they must run"


def test_a_base_set_no_longer_good_is_named_with_its_state_in_the_plan_and_restore_needs(site):
    # An incremental's full that failed (or expired) is still the set a restore of the incremental reads first: the
    # plan and the restore-needs report name its cartridge and its state; they never drop it and look complete.
    site.pool("weekly")
    full = site.written("weekly", ["A00001L8"], now() - timedelta(days=2), group="docs")
    newest = _incremental(site, "weekly", full, "A00003L8")
    with site.catalog.session() as s:
        s.get(tape_sets.TapeSet, full).state = "expired"

    chain = tape_sets.chain(site.catalog, tape_sets.get_set(site.catalog, newest))
    assert [(st.id, st.state) for st in chain] == [(full, "expired"), (newest, "ok")]
    text = drplan.build(site.catalog, site.settings, now())
    assert f"base set {full} (full, expired: a restore refuses to read from it): A00001L8 (slot" in text
    needs = reports.restore_needs(SimpleNamespace(catalog=site.catalog), 7, now(), "docs")
    assert needs.needs_attention and any(f"set {full} is expired" in line for line in needs.summary)
    assert "A00001L8" in {row[3] for row in needs.tables[0].rows}


def test_the_catalog_snapshot_is_a_whole_copy_of_the_catalog_on_either_database(site, catalog_url, tmp_path):
    staged = drplan.stage(site.settings, site.settings.catalog_url)
    assert (staged / "tapeline.toml").read_text() == site.settings.config_file.read_text()
    if catalog_url.startswith("sqlite"):
        copy = sqlite3.connect(staged / "catalog.sqlite")
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT count(*) FROM cartridge").fetchone()[0] == len(cat.list_cartridges(site.catalog))
        copy.close()
    else:
        listed = subprocess.run(["pg_restore", "--list", str(staged / "catalog.pgdump")], capture_output=True,
                                text=True, check=True).stdout
        assert "TABLE DATA public cartridge" in listed and "TABLE DATA public cartridge_move" in listed


def test_vault_plan_prints_or_writes_the_plan_and_export_without_a_vault_says_how(tmp_path):
    d = make_daemon(tmp_path, None).start()
    try:
        out = tmp_path / "plan.md"
        done = d.json("vault", "plan", "--out", str(out))
        assert done["out"] == str(out) and out.read_text() == done["text"]
        assert "No catalog backup on tape yet" in out.read_text()
        assert d.run("vault", "plan").stdout == (d.data / "dr" / drplan.LATEST).read_text()
        refused = d.run("--json", "vault", "export", check=2)
        error = json.loads(refused.stdout)
        assert error["error"] == "no pool sends its cartridges to a vault" and "tapeline pool set POOL --vault" in \
            error["fix"] and error["exit_code"] == 2
    finally:
        d.stop()
