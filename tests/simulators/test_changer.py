"""The changer logical unit against reference/scsi.md §2-3 and mtx.md §2-3: RES, MOVE MEDIUM, mail slot, inventory."""

from __future__ import annotations

from drivers.scsi import smc, spc
from simulators.vtl.cli import main as vtl_main
from tests.simulators.conftest import DRIVE0, MAIL0, SLOT0, code, sense


def res(changer, element_type=smc.ELEMENT_ALL, start=0, count=0xFFFF, alloc=0xFFFFFF, voltag=1, dvcid=0):
    cdb = smc.READ_ELEMENT_STATUS.encode(voltag=voltag, element_type=element_type, start=start, count=count,
                                         alloc=alloc, dvcid=dvcid)
    return changer.execute(cdb, b"", alloc)


def test_inquiry_is_a_standalone_changer(devices):
    r = devices.changer.execute(spc.INQUIRY.encode(alloc=0x38), b"", 0x38)  # what mtx sends
    data = spc.InquiryData.decode(r.data)
    assert (data.pdt, data.mchngr, data.vendor, data.product) == (spc.PDT_CHANGER, False, "STK", "L700")
    assert r.resid == 0x38 - len(r.data)
    r = devices.changer.execute(spc.INQUIRY.encode(evpd=1, page_code=spc.VPD_UNIT_SERIAL_NUMBER, alloc=255), b"", 255)
    assert spc.decode_vpd_serial(r.data) == "XYZZY_A"
    r = devices.changer.execute(spc.INQUIRY.encode(evpd=0, page_code=0x80, alloc=255), b"", 255)
    assert (sense(r).code, sense(r).field_pointer) == ("5/24/00", 2)


def test_mode_sense_element_address_assignment_as_mtx_reads_it(devices):
    r = devices.changer.execute(spc.MODE_SENSE_6.encode(dbd=1, page_code=0x1D, alloc=136), b"", 136)
    assert r.data[3] == 0  # mtx skips 4 + bdlen
    page = smc.ElementAddressAssignment.decode(spc.ModeData.decode(r.data).page(smc.PAGE_ELEMENT_ADDRESS_ASSIGNMENT))
    assert (page.transport_first, page.storage_first, page.storage_count, page.import_export_first,
            page.import_export_count, page.data_transfer_first, page.data_transfer_count) == (1, 1000, 24, 10, 4, 500, 2)


def test_element_status_counts_tags_and_truncation(devices):
    r = res(devices.changer, smc.ELEMENT_STORAGE, start=SLOT0, count=24)
    report = smc.decode_element_status(r.data)
    assert (report.available, report.byte_count, len(report.elements)) == (24, 8 + 24 * 52, 24)
    raw_page = r.data[8:16]
    assert raw_page[1] & 0x80 and int.from_bytes(raw_page[2:4], "big") == 52  # PVOLTAG, 52-byte descriptors
    first = report.elements[0]
    assert (first.address, first.full, first.primary_tag, first.access) == (1000, True, "A00000L8", True)
    assert r.data[16 + 12 : 16 + 12 + 36] == b"A00000L8" + b" " * 24 + bytes(4)
    empty = report.elements[-1]
    assert (empty.full, empty.primary_tag) == (False, None)
    assert r.data[-52 + 12 : -52 + 48] == bytes(36)
    assert report.elements[20].primary_tag == "CLN001L1" and report.elements[20].medium_type == smc.MEDIUM_CLEANING
    cut = res(devices.changer, smc.ELEMENT_STORAGE, start=SLOT0, count=24, alloc=8 + 8 + 52 * 3 + 20)
    short = smc.decode_element_status(cut.data)
    assert (len(cut.data), short.available, short.byte_count, len(short.elements)) == (8 + 8 + 156, 24, 8 + 24 * 52, 3)


def test_element_status_all_types_in_order_and_dvcid(devices):
    report = smc.decode_element_status(res(devices.changer).data)
    types = [e.element_type for e in report.elements]
    assert types == [1] + [2] * 24 + [3] * 4 + [4] * 2
    r = res(devices.changer, smc.ELEMENT_DATA_TRANSFER, start=DRIVE0, count=2, voltag=0, dvcid=1)
    drive = smc.decode_element_status(r.data).elements[0]
    assert drive.device_id.startswith("IBM     ULT3580-TD8")
    assert code(res(devices.changer, element_type=7)) == "5/24/00"
    assert code(res(devices.changer, smc.ELEMENT_STORAGE, start=5000)) == "5/21/01"


def test_move_errors_and_source_slot(devices):
    ch = devices.changer
    assert code(devices.move(SLOT0 + 23, DRIVE0)) == "5/3B/0E"
    assert code(devices.move(SLOT0, SLOT0 + 1)) == "5/3B/0D"
    assert code(devices.move(4242, DRIVE0)) == "5/21/01"
    assert code(ch.execute(smc.MOVE_MEDIUM.encode(source=SLOT0, destination=DRIVE0, invert=1))) == "5/24/00"
    devices.load(SLOT0 + 2)
    drive = smc.decode_element_status(res(ch, smc.ELEMENT_DATA_TRANSFER, start=DRIVE0, count=1).data).elements[0]
    assert (drive.full, drive.svalid, drive.source, drive.primary_tag, drive.access) == (
        True, True, SLOT0 + 2, "A00002L8", False)
    devices.drive.execute(spc.PREVENT_ALLOW_MEDIUM_REMOVAL.encode(prevent=1))
    assert code(devices.move(DRIVE0, SLOT0 + 2)) == "5/53/02"
    devices.drive.execute(spc.PREVENT_ALLOW_MEDIUM_REMOVAL.encode(prevent=0))
    assert code(devices.move(DRIVE0, SLOT0 + 2)) == "GOOD"  # auto-unload
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "6/28/00"
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "2/3A/00"


def test_cleaning_cartridge_cleans_and_ejects(devices, capsys):
    assert vtl_main(["fault", str(devices.directory), "cleaning-required", "drive0"]) == 0
    assert code(devices.move(SLOT0, DRIVE0)) == "GOOD"
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "6/28/00"
    r = devices.drive.execute(spc.TEST_UNIT_READY.encode())
    assert (code(r), sense(r).asc, sense(r).ascq) == ("0/00/17", 0, 0x17)
    assert code(devices.move(DRIVE0, SLOT0)) == "GOOD"
    assert code(devices.move(SLOT0 + 20, DRIVE0)) == "2/30/03"  # CLN001L1: cleaned and ejected
    drive = smc.decode_element_status(res(devices.changer, 4, DRIVE0, 1).data).elements[0]
    assert (drive.full, drive.access, drive.primary_tag) == (True, True, "CLN001L1")
    assert code(devices.move(DRIVE0, SLOT0 + 20)) == "GOOD"
    devices.drive.execute(spc.TEST_UNIT_READY.encode())  # the unload's unit attention
    devices.load()
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"  # no longer needs cleaning
    capsys.readouterr()
    assert vtl_main(["fault", str(devices.directory), "--list", "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"  # the cleaning-required state ended with the cleaning


def test_incompatible_generation(tmp_path):
    from tests.simulators.conftest import make_library, open_devices

    directory = make_library(tmp_path / "lto5", "--generation", "LTO-5")
    with open(directory / "state.json") as fh:
        assert "A00000L5" in fh.read()
    devs = open_devices(directory)
    try:
        assert vtl_main(["mailslot", str(directory), "open"]) == 0
        assert vtl_main(["mailslot", str(directory), "insert", "B00001L8"]) == 0
        assert vtl_main(["mailslot", str(directory), "close"]) == 0
        assert code(devs.changer.execute(spc.TEST_UNIT_READY.encode())) == "6/28/01"
        assert code(devs.move(MAIL0, DRIVE0)) == "5/30/00"
    finally:
        devs.close()


def test_mail_slot_import_export_and_door(devices):
    ch, d = devices.changer, str(devices.directory)
    assert vtl_main(["mailslot", d, "open"]) == 0
    assert code(ch.execute(spc.TEST_UNIT_READY.encode())) == "2/04/03"
    assert code(devices.move(SLOT0, MAIL0)) == "2/04/03"
    ie = smc.decode_element_status(res(ch, smc.ELEMENT_IMPORT_EXPORT, MAIL0, 4).data).elements[0]
    assert (ie.access, ie.exenab, ie.inenab) == (False, True, True)
    assert vtl_main(["mailslot", d, "insert", "NEW001L8"]) == 0
    assert vtl_main(["mailslot", d, "close"]) == 0
    assert code(ch.execute(spc.TEST_UNIT_READY.encode())) == "6/28/01"
    assert code(ch.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
    ie = smc.decode_element_status(res(ch, smc.ELEMENT_IMPORT_EXPORT, MAIL0, 4).data).elements[0]
    assert (ie.full, ie.impexp, ie.access, ie.primary_tag) == (True, True, True, "NEW001L8")
    assert code(devices.move(MAIL0, SLOT0 + 23)) == "GOOD"  # import
    assert code(devices.move(SLOT0, MAIL0 + 1)) == "GOOD"  # export
    ie = smc.decode_element_status(res(ch, smc.ELEMENT_IMPORT_EXPORT, MAIL0 + 1, 1).data).elements[0]
    assert (ie.full, ie.impexp, ie.primary_tag) == (True, False, "A00000L8")
    ch.execute(spc.PREVENT_ALLOW_MEDIUM_REMOVAL.encode(prevent=1))
    assert vtl_main(["mailslot", d, "open"]) == 1  # locked by the application


def test_initialize_element_status_and_position(devices):
    ch = devices.changer
    assert code(ch.execute(smc.INITIALIZE_ELEMENT_STATUS.encode())) == "GOOD"
    assert code(ch.execute(smc.INITIALIZE_ELEMENT_STATUS_WITH_RANGE.encode(range=1, start=SLOT0, count=5))) == "GOOD"
    assert code(ch.execute(smc.INITIALIZE_ELEMENT_STATUS_WITH_RANGE.encode(range=1, start=7, count=5))) == "5/21/01"
    assert code(ch.execute(smc.POSITION_TO_ELEMENT.encode(destination=SLOT0 + 3))) == "GOOD"
    assert code(ch.execute(smc.POSITION_TO_ELEMENT.encode(destination=3))) == "5/21/01"


def test_unknown_opcode_and_short_cdb(devices):
    assert code(devices.changer.execute(bytes([0x0A, 0, 0, 0, 1, 0]), b"x")) == "5/20/00"  # WRITE on a changer
    r = devices.changer.execute(bytes([0xB8, 0x10, 0x03]), b"", 100)
    assert (code(r), sense(r).sksv, sense(r).cd) == ("5/24/00", True, True)


def test_report_luns_on_every_unit_even_with_a_unit_attention_pending(devices):
    assert code(devices.move(SLOT0, DRIVE0)) == "GOOD"  # the drive now holds 06/28/00
    for unit in (devices.changer, devices.drive):
        r = unit.execute(spc.REPORT_LUNS.encode(alloc=4096), b"", 4096)
        assert code(r) == "GOOD" and bytes(r.data).hex() == "00000008" "00000000" "0000000000000000"
        assert spc.decode_report_luns(r.data) == (0,)
        r = unit.execute(spc.REPORT_LUNS.encode(select_report=spc.REPORT_LUNS_WELL_KNOWN, alloc=16), b"", 16)
        assert spc.decode_report_luns(r.data) == () and r.resid == 8
        r = unit.execute(spc.REPORT_LUNS.encode(select_report=3, alloc=16), b"", 16)
        assert (code(r), sense(r).field_pointer) == ("5/24/00", 2)
        r = unit.execute(spc.REPORT_LUNS.encode(alloc=8), b"", 8)  # less than header + one LUN
        assert (code(r), sense(r).field_pointer) == ("5/24/00", 6)
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "6/28/00"  # REPORT LUNS left it pending


def test_all_types_with_a_count_keep_the_lowest_addresses_in_type_order(devices):
    # Robot 1, mail slots 10-13, drives 500-501 sit below the storage slots 1000+: a count of 7 from address 0
    # reports exactly those, as one page per type in type order (reference/scsi.md §3).
    report = smc.decode_element_status(res(devices.changer, count=7, voltag=0).data)
    assert [e.address for e in report.elements] == [1, 10, 11, 12, 13, 500, 501]
    report = smc.decode_element_status(res(devices.changer, start=501, count=3, voltag=0).data)
    assert [e.address for e in report.elements] == [1000, 1001, 501]  # storage page, then the drive page
