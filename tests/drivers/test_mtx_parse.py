"""`parse_mtx_status` on every form of `mtx status` output, and mtx's error messages turned into typed errors.

Fixtures are written by hand in mtx 1.3.12's format: short ones inline, whole libraries in tests/captures/ (the shapes
real libraries print: padded and unpadded tags, a terminal's sense dump, full import/export slots, alternate tags).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import DeviceNotFound
from drivers.mtx import MtxDrive, MtxError, MtxOutputError, MtxSlot, error_from_output, parse_mtx_status
from drivers.scsi.sense import CleaningCartridge, DestinationFull, NotReady, SourceEmpty, UnitAttention

CAPTURES = Path(__file__).parent.parent / "captures"
PAD = " " * 24  # an 8-character tag in a 32-byte field

WITH_BARCODES = f"""\
  Storage Changer /dev/tape/by-id/scsi-3500110a0:2 Drives, 6 Slots ( 2 Import/Export )
Data Transfer Element 0:Full (Storage Element 2 Loaded):VolumeTag = TL0002L8{PAD}
Data Transfer Element 1:Empty
      Storage Element 1:Full :VolumeTag=TL0001L8{PAD}
      Storage Element 2:Empty
      Storage Element 3:Full :VolumeTag=CLN001L1{PAD}
      Storage Element 4:Empty
      Storage Element 5 IMPORT/EXPORT:Full :VolumeTag=TL0009L8{PAD}
      Storage Element 6 IMPORT/EXPORT:Empty
"""


def test_barcodes_drives_slots_and_mail_slots():
    status = parse_mtx_status(WITH_BARCODES)
    assert status.device == "/dev/tape/by-id/scsi-3500110a0"
    assert status.drives == (MtxDrive(0, True, 2, "TL0002L8"), MtxDrive(1, False))
    assert status.slots[0] == MtxSlot(1, True, False, "TL0001L8")
    assert status.slot(5) == MtxSlot(5, True, True, "TL0009L8")
    assert [s.number for s in status.storage_slots] == [1, 2, 3, 4]
    assert [s.number for s in status.import_export_slots] == [5, 6]
    assert status.noise == ()


def test_without_barcodes():
    status = parse_mtx_status(
        "  Storage Changer /dev/sg4:1 Drives, 3 Slots ( 0 Import/Export )\n"
        "Data Transfer Element 0:Full (Storage Element 1 Loaded)\n"
        "      Storage Element 1:Empty\n"
        "      Storage Element 2:Full \n"
        "      Storage Element 3:Full \n"
    )
    assert status.drives == (MtxDrive(0, True, 1),)
    assert status.slots == (MtxSlot(1, False), MtxSlot(2, True), MtxSlot(3, True))


def test_unknown_source_and_alternate_tags():
    status = parse_mtx_status(
        "  Storage Changer /dev/sg5:2 Drives, 2 Slots ( 0 Import/Export )\n"
        "Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = AB0001L7"
        ":AlternateVolumeTag = ALT0001\n"
        "Data Transfer Element 1:Full (Storage Element 2 Loaded):AlternateVolumeTag = ONLYALT\n"
        "      Storage Element 1:Full :VolumeTag=AB0003L7:AlternateVolumeTag=ALT0003   \n"
        "      Storage Element 2:Empty\n"
    )
    assert status.drives == (MtxDrive(0, True, None, "AB0001L7", "ALT0001"), MtxDrive(1, True, 2, None, "ONLYALT"))
    assert status.slots[0] == MtxSlot(1, True, False, "AB0003L7", "ALT0003")


def test_empty_slots_with_blank_tags_and_unpadded_tags():
    # IBM TS4500: full slots NUL-padded (no trailing spaces), empty slots carry a tag of 36 spaces.
    status = parse_mtx_status(
        "  Storage Changer /dev/sg9:1 Drives, 2 Slots ( 0 Import/Export )\n"
        "Data Transfer Element 0:Empty\n"
        "      Storage Element 1:Full :VolumeTag=IBM001JD\n"
        f"      Storage Element 2:Empty:VolumeTag={' ' * 36}\n"
    )
    assert status.slots == (MtxSlot(1, True, False, "IBM001JD"), MtxSlot(2, False))


def test_mode_sense_fallback_noise_is_kept_apart():
    dump = "".join(f"mtx: Request Sense: {line}\n" for line in (
        "Long Report=yes", "Valid Residual=no", "Error Code=70 (Current)", "Sense Key=Unit Attention",
        "FileMark=no", "EOM=no", "ILI=no", "Additional Sense Code = 28", "Additional Sense Qualifier = 00",
        "BPV=no", "Error in CDB=no", "SKSV=no"))
    text = dump + "Mode sense (0x1A) for Page 0x1D failed\n" + (
        "  Storage Changer /dev/sg5:1 Drives, 1 Slots ( 0 Import/Export )\n"
        "Data Transfer Element 0:Empty\n"
        f"      Storage Element 1:Full :VolumeTag=XY0001L6{PAD}\n")
    status = parse_mtx_status(text)
    assert status.slots == (MtxSlot(1, True, False, "XY0001L6"),)
    assert len(status.noise) == 13 and status.noise[-1] == "Mode sense (0x1A) for Page 0x1D failed"


def test_truncated_or_foreign_output_is_refused():
    with pytest.raises(MtxOutputError, match="announces 2 drives and 6 slots, the output lists 2 and 5"):
        parse_mtx_status(WITH_BARCODES.rsplit("      Storage", 1)[0])
    with pytest.raises(MtxOutputError, match="no 'Storage Changer' header.*READ ELEMENT STATUS Command Failed"):
        parse_mtx_status("mtx: Request Sense: Sense Key=Not Ready\nREAD ELEMENT STATUS Command Failed\n")


def capture(name: str) -> str:
    return (CAPTURES / name).read_text()


def test_a_loaded_drive_among_empty_ones_with_padded_tags_and_cleaning_cartridges():
    status = parse_mtx_status(capture("mtx-status-01.txt"))
    assert status.device == "/dev/tape/by-id/scsi-35000e11162a9f001"
    assert status.drives == (MtxDrive(0, False), MtxDrive(1, True, 7, "QX0107L9"), MtxDrive(2, False))
    assert len(status.storage_slots) == 25 and [s.number for s in status.import_export_slots] == [26, 27, 28, 29, 30]
    assert [s.volume_tag for s in status.slots if s.full] == [
        "QX0101L9", "QX0102L9", "QX0103L9", "QX0105L9", "QX0106L9", "QX0108L9", "QX0111L9", "QX0112L9", "QX0119L9",
        "CLNU01CU", "CLNU02CU", "QX0127L9"]
    assert status.slot(7) == MtxSlot(7, False) and status.slot(27) == MtxSlot(27, True, True, "QX0127L9")


def test_unpadded_tags_of_an_emulated_library():
    status = parse_mtx_status(capture("mtx-status-02.txt"))
    assert status.drives == (MtxDrive(0, False), MtxDrive(1, False))
    assert [(s.number, s.volume_tag) for s in status.slots if s.full] == [
        (1, "EMU001L6"), (2, "EMU002L6"), (3, "EMU003L7"), (4, "EMU004L7"), (6, "EMU006L8"), (9, "CLN101L1")]
    assert status.import_export_slots == (MtxSlot(11, False, True), MtxSlot(12, False, True))


def test_a_terminal_capture_with_the_sense_dump_before_the_status():
    status = parse_mtx_status(capture("mtx-status-03.txt"))
    assert status.device == "/dev/sg2" and status.drives == (MtxDrive(0, True, 4, "BK4004L6"),)
    assert [s.number for s in status.slots if not s.full] == [4, 6, 7] and status.import_export_slots == ()
    assert len(status.noise) == 13 and status.noise[3] == "mtx: Request Sense: Sense Key=Unit Attention"


def test_both_drives_loaded_and_every_import_export_slot_full():
    status = parse_mtx_status(capture("mtx-status-04.txt"))
    assert status.drives == (MtxDrive(0, True, 2, "MV2002L7"), MtxDrive(1, True, 9, "MV2009L7"))
    assert [(s.number, s.full, s.volume_tag) for s in status.import_export_slots] == [
        (17, True, "MV2017L7"), (18, True, "MV2018L7"), (19, True, "MV2019L7"), (20, True, "MV2020L7")]
    assert [s.number for s in status.storage_slots if s.full] == [1, 3, 4, 10]


def test_alternate_tags_an_unknown_source_blank_tags_and_a_full_slot_without_a_tag():
    status = parse_mtx_status(capture("mtx-status-05.txt"))
    assert status.drives == (MtxDrive(0, True, None, "TS5001JE", "ALTTS5001"), MtxDrive(1, True, 3, None, "ALTTS5003"))
    assert status.slots == (MtxSlot(1, True, False, "TS5010JE", "ALTTS5010"), MtxSlot(2, True, False, "TS5011JE"),
                            MtxSlot(3, False), MtxSlot(4, True), MtxSlot(5, False), MtxSlot(6, False, True))


@pytest.mark.parametrize("name", sorted(p.name for p in CAPTURES.glob("mtx-status-*.txt")))
def test_every_capture_parses_to_what_its_header_announces(name):
    text = capture(name)
    status = parse_mtx_status(text)
    header = next(line for line in text.splitlines() if "Storage Changer" in line)
    assert f":{len(status.drives)} Drives, {len(status.slots)} Slots ( {len(status.import_export_slots)} " in header
    full = [line for line in text.splitlines() if "Storage Element" in line and ":Full" in line
            and not line.startswith("Data")]
    assert len([s for s in status.slots if s.full]) == len(full)
    assert all(s.volume_tag is None or s.volume_tag == s.volume_tag.strip() for s in status.slots)


def test_the_captures_are_there():
    # the parametrized test above would check nothing if the glob found no file
    assert len(list(CAPTURES.glob("mtx-status-*.txt"))) == 5


def test_refusals_become_typed_errors_naming_device_and_command():
    err = error_from_output("Storage Element 4 is Already Full\n", "unload drive 0 into slot 4", "mtx:///dev/sg3")
    assert isinstance(err, DestinationFull)
    assert str(err) == "mtx:///dev/sg3: unload drive 0 into slot 4: mtx: Storage Element 4 is Already Full (5/3B/0D)"
    assert isinstance(error_from_output("Data Transfer Element 1 is Empty\n", "unload", "d"), SourceEmpty)
    assert isinstance(error_from_output("Drive 0 Full (Storage Element 3 loaded)\n", "load", "d"), DestinationFull)
    assert isinstance(error_from_output("Cleaning Cartridge Installed and Ejected\n", "load", "d"), CleaningCartridge)


def test_sense_dump_becomes_the_typed_error():
    out = ("mtx: Request Sense: Sense Key=Not Ready\nmtx: Request Sense: Additional Sense Code = 04\n"
           "mtx: Request Sense: Additional Sense Qualifier = 03\nMOVE MEDIUM from Element Address 1000 to 1 Failed\n")
    err = error_from_output(out, "load slot 1 into drive 0", "mtx:///dev/sg3")
    assert isinstance(err, NotReady) and err.sense.code == "2/04/03"
    assert "MOVE MEDIUM from Element Address 1000 to 1 Failed" in str(err)
    ua = error_from_output(out.replace("Not Ready", "Unit Attention").replace("= 04", "= 28").replace("= 03", "= 00"),
                           "status", "d")
    assert isinstance(ua, UnitAttention)


def test_open_failures_and_the_rest():
    err = error_from_output("cannot open SCSI device '/dev/sg97' - No such file or directory\n", "status",
                            "mtx:///dev/sg97")
    assert isinstance(err, DeviceNotFound) and "No such file or directory" in str(err)
    assert isinstance(error_from_output("/dev/null is not an sg device, or old sg driver\n", "status", "d"),
                      DeviceNotFound)
    other = error_from_output("No More Media\n", "next", "mtx:///dev/sg3")
    assert type(other) is MtxError and str(other) == "mtx:///dev/sg3: next: mtx failed: No More Media"
