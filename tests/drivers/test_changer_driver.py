"""MediaChanger against the virtual tape library (the only stand-in for hardware), through `local://`."""

import json

import pytest

from drivers.changer import ChangerRefusal, MediaChanger, build_inventory
from drivers.errors import DeviceNotFound
from drivers.scsi import smc
from drivers.scsi.sense import DestinationFull, HardwareError, SourceEmpty
from drivers.scsi.smc import ElementStatus
from simulators.vtl.cli import main as vtl


def make_library(directory, *args):
    assert vtl(["init", str(directory), *args]) == 0
    return directory


@pytest.fixture
def library(tmp_path):
    return make_library(tmp_path / "vtl")


@pytest.fixture
def changer(library):
    with MediaChanger(f"local://{library}/changer", label="L700") as c:
        yield c


def test_default_library_inventory(changer):
    inv = changer.inventory()
    assert (len(inv.slots), len(inv.drives), len(inv.mailslots), len(inv.transports)) == (24, 2, 4, 1)
    assert [s.barcode for s in inv.slots[:3]] == ["A00000L8", "A00001L8", "A00002L8"]
    assert inv.slot(21).barcode == "CLN001L1" and inv.slot(21).cleaning
    assert [s.number for s in inv.mailslots] == [25, 26, 27, 28]  # mtx counts mail slots after the storage slots
    assert [s.mailslot_number for s in inv.mailslots] == [1, 2, 3, 4]
    assert inv.slot(25) is inv.mailslot(1)
    assert not any(d.full for d in inv.drives) and [d.number for d in inv.drives] == [0, 1]
    assert inv.find("A00012L8").number == 13
    assert changer.inquiry().pdt == 8 and not changer.inquiry().mchngr
    emap = changer.element_map()
    assert (emap.storage_first, emap.storage_count, emap.data_transfer_first) == (1000, 24, 500)


def test_inventory_without_barcodes(changer):
    inv = changer.inventory(barcodes=False)
    assert inv.slot(1).full and inv.slot(1).barcode is None


def test_load_and_unload_to_the_home_slot(changer):
    inv = changer.load(3, 0)
    assert inv.drive(0).barcode == "A00002L8" and inv.drive(0).source_slot == 3
    assert not inv.slot(3).full
    inv = changer.unload(0)
    assert inv.slot(3).barcode == "A00002L8" and not inv.drive(0).full


def test_transfer_import_and_export_through_a_mail_slot(changer):
    inv = changer.transfer(1, 22)
    assert inv.slot(22).barcode == "A00000L8" and not inv.slot(1).full
    inv = changer.export(22)
    assert inv.mailslot(1).barcode == "A00000L8"
    inv = changer.import_(1)
    assert inv.slot(1).barcode == "A00000L8"  # the first empty storage slot
    with pytest.raises(ChangerRefusal, match="mail slot 5 does not exist: this library has mail slots 1..4"):
        changer.export(2, mailslot=5)


def test_move_errors_name_changer_command_and_cartridge(changer):
    with pytest.raises(SourceEmpty) as err:
        changer.load(23, 0)
    assert str(err.value) == "L700: MOVE MEDIUM: medium source element empty (5/3B/0E)"
    with pytest.raises(DestinationFull) as err:
        changer.transfer(1, 2)
    assert str(err.value) == "L700: MOVE MEDIUM: medium destination element full (5/3B/0D) on cartridge A00000L8"


def test_status_is_refreshed_after_a_failed_move(changer, library):
    changer.inventory()
    assert vtl(["mailslot", str(library), "open"]) == 0
    assert vtl(["mailslot", str(library), "insert", "B00001L8"]) == 0
    assert vtl(["mailslot", str(library), "close"]) == 0  # 06/28/01 on the changer: retried by the driver
    with pytest.raises(SourceEmpty):
        changer.load(24, 1)
    assert changer.last_inventory.mailslot(1).barcode == "B00001L8"
    assert changer.last_inventory.mailslot(1).impexp


def test_a_cartridge_that_fails_to_load_stays_in_its_slot(changer, library):
    assert vtl(["fault", str(library), "load-failure", "A00004L8"]) == 0
    with pytest.raises(HardwareError, match=r"^L700: MOVE MEDIUM: .*\(4/53/00\) on cartridge A00004L8$"):
        changer.load(5, 0)
    assert changer.last_inventory.slot(5).barcode == "A00004L8" and not changer.last_inventory.drive(0).full


def test_load_by_barcode_rules(changer, library):
    inv = changer.load_by_barcode("A00007L8", 1)
    assert inv.drive(1).barcode == "A00007L8"
    assert changer.load_by_barcode("A00007L8", 1).drive(1).barcode == "A00007L8"  # already there
    with pytest.raises(ChangerRefusal, match=r"A00007L8 is loaded in drive 1: unload it first"):
        changer.load_by_barcode("A00007L8", 0)
    with pytest.raises(ChangerRefusal, match=r"CLN001L1 is a cleaning cartridge \(barcode starts with CLN\)"):
        changer.load_by_barcode("CLN001L1", 0)
    with pytest.raises(DeviceNotFound, match="no cartridge labelled ZZZ999L8 in the library: import it first"):
        changer.load_by_barcode("ZZZ999L8", 0)
    changer.export(1)
    with pytest.raises(ChangerRefusal, match="A00000L8 is in mail slot 1: import it into a storage slot first"):
        changer.load_by_barcode("A00000L8", 0)
    inv = changer.load_by_barcode("A00003L8", 1)  # the drive was full: its cartridge went home first
    assert inv.drive(1).barcode == "A00003L8" and inv.slot(8).barcode == "A00007L8"


def test_clean_loads_the_cleaning_cartridge_and_puts_it_back(changer, library):
    assert vtl(["fault", str(library), "cleaning-required", "drive0"]) == 0
    changer.load(1, 0)
    inv = changer.clean(0)
    assert inv.slot(21).barcode == "CLN001L1"
    assert inv.slot(1).barcode == "A00000L8" and not inv.drive(0).full
    status = json.loads(_status(library))
    assert not status["drives"][0]["needs_cleaning"]


def _status(library):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert vtl(["status", str(library), "--json"]) == 0
    return out.getvalue()


def test_lock_unlock_and_initialize(changer, library):
    changer.lock()
    assert json.loads(_status(library))["mail_locked"]
    changer.unlock()
    assert not json.loads(_status(library))["mail_locked"]
    assert len(changer.initialize().slots) == 24


def test_unload_refusals(changer):
    with pytest.raises(ChangerRefusal, match="drive 0 is empty: nothing to unload"):
        changer.unload(0)
    with pytest.raises(ChangerRefusal, match=r"drive 2 does not exist: this library has drives 0..1"):
        changer.load(1, 2)


def test_home_slot_follows_mtx_when_the_source_is_taken():
    # reference/mtx.md §3: a drive whose source slot is full gets the first empty storage slot
    statuses = [
        ElementStatus(smc.ELEMENT_STORAGE, 1000, full=True, primary_tag="A"),
        ElementStatus(smc.ELEMENT_STORAGE, 1001, full=False),
        ElementStatus(smc.ELEMENT_STORAGE, 1002, full=False),
        ElementStatus(smc.ELEMENT_DATA_TRANSFER, 500, full=True, primary_tag="B", source=1000, svalid=True),
        ElementStatus(smc.ELEMENT_DATA_TRANSFER, 501, full=True, primary_tag="C", source=1002, svalid=True),
    ]
    inv = build_inventory(statuses)
    assert [d.source_slot for d in inv.drives] == [2, 3]


def test_inventory_of_a_1000_slot_library(tmp_path):
    directory = make_library(tmp_path / "big", "--slots", "1000", "--drives", "8")
    with MediaChanger(f"local://{directory}/changer") as changer:
        inv = changer.inventory()
    assert len(inv.slots) == 1000 and sum(s.full for s in inv.slots) == 875  # as `init` reported
    assert len(inv.drives) == 8 and inv.slots[-1].number == 1000
