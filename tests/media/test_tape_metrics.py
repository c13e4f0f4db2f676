"""The tape side of the metrics: scratch cartridges per pool, drive state and TapeAlert flags, from a real catalog
and the simulated library's drives (the daemon-level scrape over HTTP is in tests/appliance/test_metrics.py)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from appliance.catalog import media as cat
from appliance.catalog.models import utcnow
from appliance.media import admin
from appliance.ops.metrics import ApplianceCollector
from appliance.ops.reports import builders
from appliance.store import Store
from media_harness import fault
from simulators.vtl.library import edit_state


def scrape(media, tmp_path) -> dict[tuple[str, tuple], float]:
    store = Store.open(tmp_path / "store", create=True)
    try:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ApplianceCollector(SimpleNamespace(catalog=media.catalog, store=store, media=media,
                                                             live_alerts=lambda: [])))
        text = generate_latest(registry).decode()
    finally:
        store.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_scratch_cartridges_per_pool_and_idle_drives(media, tmp_path):
    admin.create_pool(media, "weekly", "vtl", "30d", None, None, True, None)
    writable = [c for c in cat.list_cartridges(media.catalog) if c.state in ("blank", "scratch")
                and c.location_kind != "outside" and not c.write_protected]
    m = scrape(media, tmp_path)
    assert m[("tapeline_scratch_cartridges", (("pool", "weekly"),))] == len(writable) > 0
    for drive in ("0", "1"):
        assert m[("tapeline_drive_state", (("drive", drive), ("library", "vtl"), ("state", "idle")))] == 1
        assert m[("tapeline_drive_state", (("drive", drive), ("library", "vtl"), ("state", "busy")))] == 0

    cat.update_cartridge(media.catalog, writable[0].barcode, state="full")
    with media.acquire_drive("vtl", number=1):
        m = scrape(media, tmp_path)
    assert m[("tapeline_scratch_cartridges", (("pool", "weekly"),))] == len(writable) - 1
    assert m[("tapeline_drive_state", (("drive", "1"), ("library", "vtl"), ("state", "busy")))] == 1
    drive = cat.get_drive(media.catalog, "vtl", 0)
    cat.update_drive(media.catalog, drive.id, enabled=False)
    m = scrape(media, tmp_path)
    assert m[("tapeline_drive_state", (("drive", "0"), ("library", "vtl"), ("state", "disabled")))] == 1


def test_a_scratch_cartridge_in_a_mail_slot_is_not_one_the_pool_may_write_next(media, tmp_path):
    """The writer picks from the slots and drives only (pools.IN_LIBRARY): the metric and the tape report agree."""
    admin.create_pool(media, "weekly", "vtl", "30d", None, None, True, None)
    writable = [c for c in cat.list_cartridges(media.catalog) if c.state in ("blank", "scratch")
                and c.location_kind in ("slot", "drive") and not c.write_protected]
    cat.update_cartridge(media.catalog, writable[0].barcode, location_kind="mailslot", location_number=0)
    m = scrape(media, tmp_path)
    assert m[("tapeline_scratch_cartridges", (("pool", "weekly"),))] == len(writable) - 1 > 0
    report = builders.tape(SimpleNamespace(catalog=media.catalog), 7, utcnow())
    [pools] = [t for t in report.tables if t.title == "Pools"]
    scratch = [c.name for c in pools.columns].index("scratch")
    assert [(row[0], row[scratch]) for row in pools.rows] == [("weekly", len(writable) - 1)]


def test_a_drive_that_could_not_be_cleaned_shows_its_tapealert_flags(media, library_dir, tmp_path):
    with edit_state(library_dir) as state:
        state.cartridges["CLN001L1"].cleaning_uses = 0  # used up: the cleaning fails and the drive still asks
    fault(library_dir, "cleaning-required", "drive0")
    with media.acquire_drive("vtl", number=0) as lease:
        lease.mount("A00000L8")
    m = scrape(media, tmp_path)
    flags = {dict(labels)["flag"] for (name, labels), v in m.items() if name == "tapeline_drive_tapealert" and v == 1}
    assert "0x14" in flags  # clean now
    assert not any(name == "tapeline_drive_tapealert" and dict(labels)["drive"] == "1" for name, labels in m)
