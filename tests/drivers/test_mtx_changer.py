"""MtxChanger's own rules: mtx:// URLs, choosing the mtx binary, and mtx status read into MediaChanger's Inventory.
Its behaviour against a library is in tests/conformance (the same suite as MediaChanger)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from drivers.changer import KIND_DRIVE, KIND_MAILSLOT, KIND_SLOT
from drivers.errors import DeviceNotFound
from drivers.mtx import NO_ADDRESS, MtxChanger, inventory_from_status, mtx_device, parse_mtx_status

PAD = " " * 24
STATUS = f"""\
  Storage Changer /dev/sg3:3 Drives, 5 Slots ( 2 Import/Export )
Data Transfer Element 0:Full (Storage Element 2 Loaded):VolumeTag = TL0002L8{PAD}
Data Transfer Element 1:Full (Unknown Storage Element Loaded):VolumeTag = TL0007L8{PAD}
Data Transfer Element 2:Empty
      Storage Element 1:Full :VolumeTag=CLN001L1{PAD}
      Storage Element 2:Empty
      Storage Element 3:Empty:VolumeTag={' ' * 36}
      Storage Element 4 IMPORT/EXPORT:Full :VolumeTag=TL0009L8{PAD}
      Storage Element 5 IMPORT/EXPORT:Empty
"""


def test_status_becomes_the_inventory_media_changer_returns():
    inv = inventory_from_status(parse_mtx_status(STATUS))
    assert [(e.kind, e.number, e.full, e.barcode) for e in inv.slots] == [
        (KIND_SLOT, 1, True, "CLN001L1"), (KIND_SLOT, 2, False, None), (KIND_SLOT, 3, False, None)]
    assert inv.slot(1).cleaning and inv.empty_slots() == inv.slots[1:]
    assert [(e.kind, e.number, e.mailslot_number, e.barcode) for e in inv.mailslots] == [
        (KIND_MAILSLOT, 4, 1, "TL0009L8"), (KIND_MAILSLOT, 5, 2, None)]
    assert inv.slot(4) is inv.mailslot(1)
    assert [(e.kind, e.number, e.barcode, e.source_slot) for e in inv.drives] == [
        (KIND_DRIVE, 0, "TL0002L8", 2), (KIND_DRIVE, 1, "TL0007L8", None), (KIND_DRIVE, 2, None, None)]
    assert inv.find("TL0007L8").number == 1 and inv.transports == ()
    assert {e.address for e in inv.all()} == {NO_ADDRESS}  # mtx never prints element addresses


def test_mtx_urls_name_a_path_or_a_device_url():
    assert mtx_device("mtx:///dev/sg3") == "/dev/sg3"
    assert mtx_device("mtx://stream+socket://127.0.0.1:7101/changer") == "stream+socket://127.0.0.1:7101/changer"
    for bad in ("mtx://dev/sg3", "mtx:///", "sg:///dev/sg3", "/dev/sg3"):
        with pytest.raises(DeviceNotFound, match="is not an mtx URL: give one like mtx:///dev/sg3"):
            mtx_device(bad)


def test_tapeline_mtx_must_be_executable(monkeypatch, tmp_path):
    script = tmp_path / "mtx"
    script.write_text("#!/bin/sh\n")
    monkeypatch.setenv("TAPELINE_MTX", str(script))
    with pytest.raises(DeviceNotFound, match=f"TAPELINE_MTX={script} is not an executable file"):
        MtxChanger("mtx:///dev/sg3")
    script.chmod(0o755)
    assert MtxChanger("mtx:///dev/sg3", label="L700").mtx == str(script)


def test_a_device_mtx_cannot_open_is_device_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("TAPELINE_MTX", str(Path(sys.executable).parent / "tapeline-mtx"))
    changer = MtxChanger(f"mtx://{tmp_path}/sg97", label="L700")
    with pytest.raises(DeviceNotFound, match=f"^L700: status: mtx: cannot open SCSI device '{tmp_path}/sg97' - No "
                                             f"such file or directory$"):
        changer.inventory()
