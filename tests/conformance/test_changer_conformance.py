"""One changer suite, run against MediaChanger over local:// and stream+socket://, and MtxChanger running
tapeline-mtx against the served library (conftest.py). A behaviour one implementation has and another lacks fails
here; what each test asserts is what an operator or the appliance would check."""

from __future__ import annotations

import inspect

import pytest

from conformance.conftest import LABEL, Changer, TapeOps
from drivers.changer import ChangerRefusal, MediaChanger
from drivers.mtx import MtxChanger
from drivers.scsi.sense import DestinationFull, SourceEmpty
from drivers.tape import TapeDrive

# `tapeline-vtl init` defaults: 24 slots (A00000L8.. in 1-20, CLN001L1 in 21, 22-24 empty), 4 mail slots, 2 drives.
DATA = [f"A{i:05d}L8" for i in range(20)]


@pytest.mark.parametrize("cls, protocol", [(MediaChanger, Changer), (MtxChanger, Changer), (TapeDrive, TapeOps)])
def test_protocols_are_met(cls, protocol):
    # The consumer's Protocol, checked by name, parameter names, order and defaults (a type checker would also
    # accept `_: Changer = MtxChanger(...)`; there is none in this environment).
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        wanted = list(inspect.signature(member).parameters.values())[1:]
        have = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
        assert [(p.name, p.default) for p in have[:len(wanted)]] == [(p.name, p.default) for p in wanted], name
        assert all(p.default is not inspect.Parameter.empty for p in have[len(wanted):]), name


def test_every_implementation_is_a_changer(changer):
    assert isinstance(changer, Changer)


def test_inventory_with_barcodes_mail_slots_and_a_cleaning_cartridge(changer):
    inv = changer.inventory()
    assert [s.number for s in inv.slots] == list(range(1, 25))
    assert [s.barcode for s in inv.slots] == DATA + ["CLN001L1", None, None, None]
    assert [s.full for s in inv.slots] == [True] * 21 + [False] * 3
    assert inv.slot(21).cleaning and not inv.slot(20).cleaning
    assert [(m.number, m.mailslot_number, m.full) for m in inv.mailslots] == [(25, 1, False), (26, 2, False),
                                                                             (27, 3, False), (28, 4, False)]
    assert inv.slot(25) is inv.mailslot(1)
    assert [(d.number, d.full, d.barcode, d.source_slot) for d in inv.drives] == [(0, False, None, None),
                                                                                 (1, False, None, None)]
    assert inv.find("A00012L8").number == 13 and inv.find("ZZZ999L8") is None
    assert [e.number for e in inv.empty_slots()] == [22, 23, 24]
    assert changer.last_inventory == inv


def test_load_unload_and_the_home_slot(changer):
    inv = changer.load(3, 0)
    assert (inv.drive(0).full, inv.drive(0).barcode, inv.drive(0).source_slot) == (True, "A00002L8", 3)
    assert not inv.slot(3).full
    inv = changer.load(7, 1)
    assert (inv.drive(1).barcode, inv.drive(1).source_slot) == ("A00006L8", 7)
    inv = changer.unload(0)  # no slot: the home slot
    assert inv.slot(3).barcode == "A00002L8" and not inv.drive(0).full
    inv = changer.unload(1, 22)  # an explicit slot
    assert inv.slot(22).barcode == "A00006L8" and not inv.slot(7).full and not inv.drive(1).full


def test_home_slot_taken_means_the_first_empty_storage_slot(changer):
    # reference/mtx.md §3: the source slot counts only while it is empty; then the first empty storage slot.
    changer.load(3, 0)
    inv = changer.transfer(1, 3)
    assert inv.drive(0).source_slot == 1 and inv.slot(3).barcode == "A00000L8"
    inv = changer.unload(0)
    assert inv.slot(1).barcode == "A00002L8"


def test_transfer_between_slots(changer):
    inv = changer.transfer(2, 23)
    assert inv.slot(23).barcode == "A00001L8" and not inv.slot(2).full
    inv = changer.transfer(23, 2)
    assert inv.slot(2).barcode == "A00001L8" and not inv.slot(23).full


def test_export_to_and_import_from_a_mail_slot(changer):
    inv = changer.export(5)  # the first empty mail slot
    assert inv.mailslot(1).barcode == "A00004L8" and inv.slot(25).barcode == "A00004L8" and not inv.slot(5).full
    inv = changer.export(6, mailslot=3)
    assert inv.mailslot(3).barcode == "A00005L8"
    inv = changer.import_(1)  # the first empty storage slot
    assert inv.slot(5).barcode == "A00004L8" and not inv.mailslot(1).full
    inv = changer.import_(3, slot=24)
    assert inv.slot(24).barcode == "A00005L8" and not inv.mailslot(3).full


def test_source_empty_and_destination_full_are_typed_errors(changer):
    with pytest.raises(SourceEmpty) as err:
        changer.load(23, 0)
    assert str(err.value).startswith(f"{LABEL}: ") and err.value.sense.code == "5/3B/0E"
    with pytest.raises(DestinationFull) as err:
        changer.transfer(1, 2)
    assert str(err.value).startswith(f"{LABEL}: ") and err.value.sense.code == "5/3B/0D"
    changer.load(1, 0)
    with pytest.raises(DestinationFull):
        changer.load(2, 0)  # the drive is full
    with pytest.raises(DestinationFull):
        changer.unload(0, 2)  # the slot is full
    with pytest.raises(SourceEmpty):
        changer.import_(2, slot=22)  # the mail slot is empty


def test_refusals_before_anything_moves(changer):
    with pytest.raises(ChangerRefusal, match=f"^{LABEL}: drive 0 is empty: nothing to unload$"):
        changer.unload(0)
    with pytest.raises(ChangerRefusal, match=r"^slot 29 does not exist: this library has slots 1\.\.28$"):
        changer.load(29, 0)
    with pytest.raises(ChangerRefusal, match=r"^drive 2 does not exist: this library has drives 0\.\.1$"):
        changer.load(1, 2)
    with pytest.raises(ChangerRefusal, match=r"^mail slot 5 does not exist: this library has mail slots 1\.\.4$"):
        changer.export(2, mailslot=5)
    assert changer.inventory().slot(1).barcode == "A00000L8"


def test_status_is_refreshed_after_a_failed_move(changer, library):
    changer.inventory()
    with MediaChanger(library.changer) as other:  # someone else moves a cartridge behind this changer's back
        other.transfer(1, 22)
    with pytest.raises(SourceEmpty):
        changer.load(1, 0)
    assert changer.last_inventory.slot(22).barcode == "A00000L8" and not changer.last_inventory.slot(1).full


def test_initialize_rescans_and_returns_the_inventory(changer):
    inv = changer.initialize()
    assert len(inv.slots) == 24 and inv.slot(1).barcode == "A00000L8"
