"""Libraries, drives and cartridges against the simulator: drives matched by serial, fast inventory, mounts, labels,
and the faults that are the media side's: wrong cartridge, foreign data, write protection, load failure, offline
drive, drives failing in a row, cleaning (and a used-up cleaning cartridge)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.errors import Conflict, TapelineError, UsageError
from appliance.media import admin, pools
from appliance.media.crypto import create_key_file
from appliance.media.drives import CartridgeOutside, DriveOffline, LabelMismatch, LoadFailed
from appliance.media.format import MediaSetLabel, VolumeLabel, encode_media_set_label, encode_volume_label
from appliance.media.media_tasks import MediaTasks
from appliance.media.service import MediaService
from appliance.ops.alerts import list_alerts
from media_harness import CAPACITY, Job, fault
from simulators.vtl.cli import main as vtl_main
from simulators.vtl.library import CartridgeInfo, edit_state


def _alerts(media: MediaService) -> list[str]:
    return [a.message for a in list_alerts(media.catalog)]


def _pool(media: MediaService, name="weekly", retention=30 * 86400, allocation="continue"):
    lib = cat.get_library(media.catalog, "vtl")
    return cat.create_pool(media.catalog, name, lib.id, retention, allocation, None, None, True, 0)


def _now():
    return datetime.now(timezone.utc)


def test_drives_are_numbered_by_the_changer_whatever_order_their_urls_come_in(media, library_dir):
    other = MediaService(media.catalog, media.settings)
    other.add_library("swapped", f"local://{library_dir}/changer",
                      [f"local://{library_dir}/drive1", f"local://{library_dir}/drive0"])
    drives = cat.list_drives(media.catalog, cat.get_library(media.catalog, "swapped").id)
    assert [(d.number, d.url.rsplit("/", 1)[1], d.serial) for d in drives] == [
        (0, "drive0", "XYZZY_A0"), (1, "drive1", "XYZZY_A1")]


def test_a_drive_of_another_library_is_refused_naming_the_serials(media, library_dir, tmp_path):
    elsewhere = tmp_path / "other"
    assert vtl_main(["init", str(elsewhere), "--slots", "4", "--drives", "1"]) == 0
    # Same serials in two simulated libraries of one type; give the other a serial of its own, as real drives have.
    with edit_state(elsewhere) as state:
        state.serial = "OTHER_B"
    with pytest.raises(UsageError, match=r"serial OTHER_B0\) is not one of this changer's drives") as refused:
        media.add_library("mixed", f"local://{library_dir}/changer", [f"local://{elsewhere}/drive0"])
    assert "XYZZY_A0" in refused.value.message


def test_fast_inventory_records_locations_new_cartridges_blank_and_cleaning_ones(media, library_dir):
    carts = {c.barcode: c for c in cat.list_cartridges(media.catalog)}
    assert carts["A00000L8"].state == "blank" and carts["A00000L8"].location_kind == "slot"
    assert carts["CLN001L1"].state == "cleaning"
    media.library("vtl").changer.export(1)  # A00000L8 to a mail slot, as an operator's eject
    report = media.library("vtl").inventory(_now())
    assert cat.get_cartridge(media.catalog, "A00000L8").location_kind == "mailslot"
    for action in (["open"], ["remove", "1"], ["close"]):
        assert vtl_main(["mailslot", str(library_dir), *action]) == 0
    report = media.library("vtl").inventory(_now())
    assert report.outside == ("A00000L8",)
    gone = cat.get_cartridge(media.catalog, "A00000L8")
    assert (gone.location_kind, gone.rotation) == ("outside", "notmountable")
    shown = admin.show_media(media, "A00000L8")
    assert shown["where"] == "on site" and shown["rotation"] == "not mountable"
    assert [(m["from"], m["to"], m["operator"]) for m in shown["history"]][-1] == ("mail slot 1", "on site", "tapeline")
    for action in (["open"], ["insert", "A00000L8"], ["close"]):  # put back: mountable again, in its mail slot
        assert vtl_main(["mailslot", str(library_dir), *action]) == 0
    media.library("vtl").inventory(_now())
    back = cat.get_cartridge(media.catalog, "A00000L8")
    assert (back.location_kind, back.rotation) == ("mailslot", "mountable")


def test_a_cartridge_the_catalog_has_in_a_vault_seen_in_a_slot_is_reported_not_moved_back(media, library_dir):
    from appliance.catalog.moves import move
    from appliance.catalog.vaults import create_vault

    vault = create_vault(media.catalog, "offsite")
    with media.catalog.session() as s:
        move(s, cat.find_cartridge(s, "A00000L8"), "vault", _now(), operator="ann", vault_id=vault.id, skip=True)
    report = media.library("vtl").inventory(_now())
    assert report.unexpected == ("A00000L8",)
    cart = cat.get_cartridge(media.catalog, "A00000L8")
    assert (cart.rotation, cart.location_kind, cart.location_number) == ("vault", "slot", 1)


def test_a_cartridge_outside_the_library_is_refused_naming_where_it_is(media, library_dir):
    media.library("vtl").changer.export(1)
    with media.acquire_drive("vtl") as lease:
        with pytest.raises(CartridgeOutside, match="A00000L8 is not in library 'vtl' \\(mail slot 1"):
            lease.mount("A00000L8")


def test_label_then_mount_reads_it_back_and_counts_the_mount(media):
    pool = _pool(media)
    with media.acquire_drive("vtl") as lease:
        done = media.label_cartridge(lease, "A00001L8", pool, force=False)
        label = lease.mount("A00001L8")
    assert label.barcode == "A00001L8" and label.pool == "weekly" and label.uuid == done["label_uuid"]
    cart = cat.get_cartridge(media.catalog, "A00001L8")
    assert (cart.state, cart.pool_id, cart.mounts) == ("scratch", pool.id, 2)


def test_the_wrong_cartridge_in_a_drive_is_refused_naming_both_barcodes(media):
    with media.acquire_drive("vtl") as lease:
        lease.mount("A00002L8")  # blank: write someone else's label on it, as a swapped sticker would look
        lease.drive.write(encode_volume_label(VolumeLabel("A00009L8", "u-1", "weekly", _now(), media.block_size)))
        lease.drive.write_filemarks(1)
        lease.unmount()
        with pytest.raises(LabelMismatch) as refused:
            lease.mount("A00002L8")
    assert "A00002L8" in refused.value.message and "A00009L8" in refused.value.message


def _write_foreign(media, barcode):
    with media.acquire_drive("vtl") as lease:
        lease.mount(barcode)
        lease.drive.write(b"ustar backup of someone else".ljust(media.block_size, b"\0"))
        lease.drive.write_filemarks(1)


def test_foreign_data_is_never_written_and_relabelling_it_needs_force_naming_it(media):
    pool = _pool(media)
    _write_foreign(media, "A00000L8")
    now = _now()
    ms = pools.media_set_for_write(media.catalog, pool, now)
    with media.acquire_drive("vtl") as lease:
        chosen = media.writable_cartridge(lease, pool, ms)
        assert chosen.barcode == "A00001L8"  # A00000L8 was read, found foreign, and skipped
        foreign = cat.get_cartridge(media.catalog, "A00000L8")
        assert foreign.state == "foreign" and "ustar backup of someone else" in foreign.note
        with pytest.raises(Conflict, match="--force"):
            media.label_cartridge(lease, "A00000L8", pool, force=False)
        done = media.label_cartridge(lease, "A00000L8", pool, force=True)
    assert "ustar backup of someone else" in done["lost"]
    assert cat.get_cartridge(media.catalog, "A00000L8").state == "scratch"


def test_unexpired_data_is_refused_on_every_path_even_with_force(media):
    pool = _pool(media, allocation="always")
    now = _now()
    ms = pools.media_set_for_write(media.catalog, pool, now)
    with media.acquire_drive("vtl") as lease:
        cart = media.writable_cartridge(lease, pool, ms)
        pools.stamp_set(media.catalog, ms.id, now)
        for act in (lambda: media.label_cartridge(lease, cart.barcode, pool, force=True),
                    lambda: media.erase_cartridge(lease, cart.barcode)):
            with pytest.raises(Conflict, match=f"{cart.barcode} holds unexpired data, media set {ms.uuid}"):
                act()
        later = pools.media_set_for_write(media.catalog, pool, now)
        assert media.writable_cartridge(lease, pool, later).barcode != cart.barcode


def test_a_write_protected_cartridge_is_skipped_for_writing_with_an_alert(media, library_dir):
    pool = _pool(media)
    fault(library_dir, "write-protect", "A00000L8")
    ms = pools.media_set_for_write(media.catalog, pool, _now())
    with media.acquire_drive("vtl", Job(7)) as lease:
        assert media.writable_cartridge(lease, pool, ms).barcode == "A00001L8"
    assert cat.get_cartridge(media.catalog, "A00000L8").write_protected
    assert "cartridge A00000L8 is write-protected: skipped for writing" in _alerts(media)
    # and it is not chosen again while protected
    assert pools.next_cartridge(media.catalog, pool, ms, frozenset({"A00001L8"})).barcode == "A00002L8"


def test_a_load_failure_names_cartridge_and_drive_and_leaves_it_in_its_slot(media, library_dir):
    fault(library_dir, "load-failure", "A00003L8")
    with media.acquire_drive("vtl") as lease:
        with pytest.raises(LoadFailed, match=r"drive 0 of library 'vtl': loading cartridge A00003L8 from slot 4"):
            lease.mount("A00003L8")
    inv = media.library("vtl").current()
    assert inv.find("A00003L8").kind == "slot"


def test_a_cartridge_that_fails_to_load_is_skipped_for_writing_with_an_alert(media, library_dir):
    pool = _pool(media)
    fault(library_dir, "load-failure", "A00000L8", "--persistent")
    ms = pools.media_set_for_write(media.catalog, pool, _now())
    with media.acquire_drive("vtl") as lease:
        assert media.writable_cartridge(lease, pool, ms).barcode == "A00001L8"
    assert any(a.startswith("cartridge A00000L8 failed to load into drive 0") for a in _alerts(media))


def test_an_offline_drive_is_passed_over_with_an_alert(media, library_dir):
    fault(library_dir, "drive-offline", "drive0")
    with media.acquire_drive("vtl") as lease:
        assert lease.number == 1
    assert "drive 0 of library 'vtl' is offline: jobs use the other drives" in _alerts(media)


def test_with_every_drive_offline_a_job_waits_with_an_alert_until_cancelled(media, library_dir):
    fault(library_dir, "drive-offline", "drive0")
    fault(library_dir, "drive-offline", "drive1")
    job = Job(9)
    threading.Timer(2.0, job.cancel.set).start()
    with pytest.raises(TapelineError, match="cancelled while waiting for a drive of library 'vtl'"):
        media.acquire_drive("vtl", job)
    assert "job 9 waits for a drive of library 'vtl'" in _alerts(media)


def test_failures_in_a_row_take_a_drive_out_of_service_until_enabled(media):
    for _ in range(media.drive_failures):
        with media.acquire_drive("vtl", number=1) as lease:
            lease.failed(TapelineError("write error on A00001L8"))
    drive = cat.get_drive(media.catalog, "vtl", 1)
    assert not drive.enabled and drive.failures_in_row == 3
    assert any("drive 1 of library 'vtl' taken out of service after 3 failed jobs in a row" in a
               for a in _alerts(media))
    for _ in range(3):  # only drive 0 is handed out now
        with media.acquire_drive("vtl") as lease:
            assert lease.number == 0
    cat.update_drive(media.catalog, drive.id, enabled=True, failures_in_row=0)
    with media.acquire_drive("vtl", number=1) as lease:
        lease.succeeded()


def test_a_drive_asking_for_cleaning_is_cleaned_between_jobs_and_the_use_counted(media, library_dir):
    fault(library_dir, "cleaning-required", "drive0")
    with media.acquire_drive("vtl", number=0) as lease:
        lease.mount("A00000L8")
    assert cat.get_cartridge(media.catalog, "CLN001L1").cleaning_uses == 1
    assert cat.get_drive(media.catalog, "vtl", 0).cleanings == 1
    with media.acquire_drive("vtl", number=0) as lease:
        assert not media._needs_cleaning(lease)  # cleaned: the flag is gone
    inv = media.library("vtl").current()
    assert inv.find("CLN001L1").kind == "slot" and inv.find("A00000L8").kind == "slot"


def test_a_used_up_cleaning_cartridge_raises_an_alert_and_cleans_nothing(media, library_dir):
    with edit_state(library_dir) as state:
        state.cartridges["CLN001L1"].cleaning_uses = 0
    fault(library_dir, "cleaning-required", "drive1")
    with media.acquire_drive("vtl", number=1) as lease:
        done = media.clean(lease)
    assert not done["cleaned"]
    assert any(a.startswith("cleaning cartridge CLN001L1 in library 'vtl' is used up") for a in _alerts(media))
    assert cat.get_drive(media.catalog, "vtl", 1).cleanings == 0


def test_an_encrypted_pool_records_its_key_file_and_fingerprint_never_the_key(media, tmp_path):
    key = tmp_path / "weekly.key"
    fingerprint = create_key_file(key)
    pool = admin.create_pool(media, "secret", "vtl", "30d", None, str(key), True, None)
    assert (pool["encrypt_key"], pool["key_fingerprint"]) == (str(key), fingerprint)
    assert key.read_bytes().hex() not in str(pool)
    key.chmod(0o644)
    with pytest.raises(TapelineError, match="can be read by others") as refused:
        admin.create_pool(media, "leaky", "vtl", "30d", None, str(key), True, None)
    assert refused.value.fix == f"chmod 600 {key}"


def test_a_drive_going_offline_under_a_job_is_named_as_offline_not_as_a_bad_cartridge(media, library_dir):
    with media.acquire_drive("vtl", number=0) as lease:
        fault(library_dir, "drive-offline", "drive0")
        with pytest.raises(DriveOffline, match="drive 0 of library 'vtl' is offline"):
            lease.mount("A00002L8")
    assert media.library("vtl").current().find("A00002L8").kind == "slot"


def test_a_detailed_inventory_reads_every_label_and_sorts_the_cartridges(media, library_dir):
    pool = _pool(media)
    _write_foreign(media, "A00000L8")
    with media.acquire_drive("vtl") as lease:
        media.label_cartridge(lease, "A00001L8", pool, force=False)
        # A tape another Tapeline wrote a media set on: ours by its labels, unknown to this catalog.
        lease.mount("A00002L8")
        lease.drive.write(encode_volume_label(VolumeLabel("A00002L8", "u-2", "elsewhere", _now(), media.block_size)))
        lease.drive.write_filemarks(1)
        lease.drive.write(encode_media_set_label(MediaSetLabel("elsewhere", "ms-x", 0, None, _now()),
                                                 media.block_size))
        lease.drive.write_filemarks(1)
    fault(library_dir, "write-protect", "A00003L8")
    job = Job(3, library="vtl", detailed=True)
    outcome = MediaTasks(media).inventory(job)
    assert outcome.state == "completed", outcome
    r = outcome.result
    assert (r["foreign"], r["known"], r["write_protected"]) == (["A00000L8", "A00002L8"], ["A00001L8"], ["A00003L8"])
    assert r["scratch"] == ["A00003L8", "A00004L8", "A00005L8"]
    assert "reading the label of A00005L8" in job.progressed
    assert "ms-x" in cat.get_cartridge(media.catalog, "A00002L8").note
    assert cat.get_cartridge(media.catalog, "A00003L8").write_protected
    inv = media.library("vtl").current()
    assert all(inv.find(f"A0000{i}L8").kind == "slot" for i in range(6))  # every one back home


def test_asking_for_one_drive_that_is_offline_says_so_at_once(media, library_dir):
    fault(library_dir, "drive-offline", "drive1")
    with pytest.raises(DriveOffline, match="drive 1 of library 'vtl' is offline"):
        media.acquire_drive("vtl", Job(), number=1)
    with media.acquire_drive("vtl", number=0) as lease:  # the other one is free (the refused one left no lease)
        assert lease.number == 0
    with media.acquire_drive("vtl") as lease:
        assert lease.number == 0


def test_a_recycled_cartridge_is_relabelled_for_another_pool_without_force(media):
    pool = _pool(media, allocation="always", retention=60)
    other = _pool(media, "monthly")
    now = _now()
    ms = pools.media_set_for_write(media.catalog, pool, now)
    with media.acquire_drive("vtl") as lease:
        cart = media.writable_cartridge(lease, pool, ms)
        pools.stamp_set(media.catalog, ms.id, now)
        with pytest.raises(Conflict, match="unexpired data"):
            media.label_cartridge(lease, cart.barcode, other, force=True)
        assert pools.expire(media.catalog, now + timedelta(minutes=2)).scratch == (cart.barcode,)
        done = media.label_cartridge(lease, cart.barcode, other, force=False)
    assert done["lost"] is None
    assert cat.get_cartridge(media.catalog, cart.barcode).pool_id == other.id


def test_a_cartridge_without_a_readable_barcode_is_named_by_its_label_or_reported_by_slot(media, library_dir):
    nameless = " " * 8  # the changer reads no barcode from it (as from a missing or torn sticker)
    with edit_state(library_dir) as state:
        state.cartridges[nameless] = CartridgeInfo(nameless, state.cartridges["A00000L8"].media, "data", CAPACITY)
        state.slots[7] = nameless
    assert media.library("vtl").inventory(_now()).without_barcode == ("slot 8",)
    with media.acquire_drive("vtl") as lease:
        assert lease.mount_slot(8) is None  # blank
        lease.drive.write(encode_volume_label(VolumeLabel("A00099L8", "u-99", None, _now(), media.block_size)))
        lease.drive.write_filemarks(1)
        lease.unmount()
    outcome = MediaTasks(media).inventory(Job(4, library="vtl", detailed=True))
    assert outcome.result["without_barcode"] == ["A00099L8"] and "A00099L8" in outcome.result["scratch"]
    cart = cat.get_cartridge(media.catalog, "A00099L8")
    assert (cart.location_kind, cart.location_number, cart.label_uuid) == ("slot", 8, "u-99")
    assert "put a barcode label A00099L8 on it" in cart.note

    with media.acquire_drive("vtl") as lease:  # erased: nothing names it any more
        lease.mount_slot(8)
        lease.drive.rewind()
        lease.drive.erase(long=False)
        lease.unmount()
    outcome = MediaTasks(media).inventory(Job(5, library="vtl", detailed=True))
    assert outcome.state == "completed with warnings"
    assert outcome.warnings == ("slot 8: a blank cartridge without a readable barcode: put a barcode label on it, "
                                "then run the inventory again",)


def test_the_index_copies_of_a_set_go_once_its_media_set_expires_and_those_of_a_failed_set_at_start(media):
    short = _pool(media, "daily", retention=60, allocation="always")
    kept = _pool(media, "yearly", retention=365 * 86400, allocation="always")
    now = _now()
    copies = media.settings.data_dir / "tape-index"
    sets = {}
    for name, pool, state in (("expires", short, "ok"), ("kept", kept, "ok"), ("failed", kept, None)):
        ms = pools.media_set_for_write(media.catalog, pool, now)
        pools.stamp_set(media.catalog, ms.id, now)
        set_id = tape_sets.create_set(media.catalog, f"uuid-{name}", ms.id, None, "files", 1, "snap", "full", None,
                                      now)
        if state:  # else left "writing", as by a daemon killed mid-write
            tape_sets.finish_set(media.catalog, set_id, state)
        media.index.save(f"uuid-{name}", 1, b"index bytes as on tape")
        sets[name] = set_id
    admin.list_media(media, None, None)  # `tapeline media list` a minute later: nothing expired yet
    assert sorted(p.name for p in copies.iterdir()) == ["uuid-expires", "uuid-failed", "uuid-kept"]

    media.expire(now + timedelta(minutes=2))  # what `media list`, `media show`, a label or a write run first
    assert tape_sets.get_set(media.catalog, sets["expires"]).state == "expired"
    assert sorted(p.name for p in copies.iterdir()) == ["uuid-failed", "uuid-kept"]
    assert media.fail_unfinished() == 1  # the daemon's start: a set a killed daemon was writing
    assert tape_sets.get_set(media.catalog, sets["failed"]).state == "failed"
    assert [p.name for p in copies.iterdir()] == ["uuid-kept"]
    assert media.fail_unfinished() == 0  # the next start has nothing left to fail
    assert (copies / "uuid-kept" / "1.idx").read_bytes() == b"index bytes as on tape"


def test_reading_the_changer_does_not_wait_for_a_job_writing_to_the_catalog(media):
    # An export polls the changer every 2 s while the operator empties the mail slots; a long catalog write (a big
    # sync's commit) must not hold those readings up once the library is known to answer.
    handle = media.library("vtl")
    handle.current()
    writing, done = threading.Event(), threading.Event()

    def long_write():
        with media.catalog.session() as s:
            s.exec(text("SELECT 1"))  # the transaction (BEGIN IMMEDIATE on SQLite) starts with its first statement
            writing.set()
            done.wait(30)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        assert writing.wait(10)
        reader = threading.Thread(target=handle.current)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "reading the changer queued behind the catalog's writer"
    finally:
        done.set()
        writer.join()
        reader.join()
