"""The tape drive logical unit against reference/scsi.md §4: READ/WRITE rules, filemarks, EOD, positioning, sense."""

from __future__ import annotations

import pytest

from drivers.scsi import spc, ssc, tapelog
from drivers.scsi.sense import SenseData
from tests.simulators.conftest import code, sense

KIB = 1024


def write(drive, data: bytes, fixed: int = 0):
    length = len(data) if not fixed else len(data) // fixed
    return drive.execute(ssc.WRITE_6.encode(fixed=int(bool(fixed)), length=length), data)


def read(drive, length: int, fixed: bool = False, sili: bool = False, alloc: int | None = None):
    alloc = length if alloc is None else alloc
    return drive.execute(ssc.READ_6.encode(fixed=int(fixed), sili=int(sili), length=length), b"", alloc)


def position(drive, long: bool = False) -> ssc.Position:
    action = ssc.READ_POSITION_LONG if long else ssc.READ_POSITION_SHORT
    r = drive.execute(ssc.READ_POSITION.encode(service_action=action), b"", 32)
    assert code(r) == "GOOD"
    return ssc.Position.decode(r.data, action)


def tape(drive, *objects) -> None:
    """Write blocks (bytes) and filemarks (None), then rewind."""
    for obj in objects:
        r = drive.execute(ssc.WRITE_FILEMARKS_6.encode(count=1)) if obj is None else write(drive, obj)
        assert code(r) == "GOOD"
    assert code(drive.execute(ssc.REWIND.encode())) == "GOOD"


def test_no_tape_is_not_ready(devices):
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "2/3A/00"
    assert code(read(devices.drive, 10)) == "2/3A/00"
    assert code(devices.drive.execute(ssc.REWIND.encode())) == "2/3A/00"


def test_unit_attention_once_after_load_then_ready(devices):
    devices.move(1000, 500)
    r = devices.drive.execute(ssc.READ_6.encode(fixed=0, length=10), b"", 10)
    assert code(r) == "6/28/00"
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"


def test_variable_read_exact_short_long_block(devices):
    devices.load()
    d = devices.drive
    tape(d, b"a" * 100, b"b" * 100, b"c" * 100, b"d" * 100)
    r = read(d, 100)
    assert (code(r), bytes(r.data), r.resid) == ("GOOD", b"a" * 100, 0)
    r = read(d, 150)  # block shorter than asked: ILI, INFO = +50, resid 50
    s = sense(r)
    assert (s.key, s.ili, s.valid, s.information, bytes(r.data), r.resid) == (0, True, True, 50, b"b" * 100, 50)
    r = read(d, 40)  # block longer: 40 bytes, ILI, INFO = -60, and the position moves past the whole block
    s = sense(r)
    assert (s.ili, s.information, bytes(r.data)) == (True, -60, b"c" * 40)
    r = read(d, 150, sili=True)  # SILI suppresses the short-block ILI
    assert (code(r), len(r.data), r.resid) == ("GOOD", 100, 50)
    assert position(d).block == 4


def test_filemark_then_eod_on_read(devices):
    devices.load()
    d = devices.drive
    tape(d, b"x" * 10, None)
    assert code(read(d, 10)) == "GOOD"
    r = read(d, 10)
    s = sense(r)
    assert (s.key, s.asc, s.ascq, s.filemark, s.valid, s.information, r.resid) == (0, 0, 1, True, True, 10, 10)
    assert position(d).block == 2  # past the filemark
    r = read(d, 10)
    s = sense(r)
    assert (s.code, s.valid, s.information) == ("8/00/05", True, 10)
    assert position(d).block == 2  # EOD does not move


def test_fixed_mode_reads_and_residues(devices):
    devices.load()
    d = devices.drive
    assert code(d.execute(ssc.READ_6.encode(fixed=1, length=1), b"", 512)) == "5/24/00"  # block length 0
    select = spc.ModeData(block_descriptor=spc.BlockDescriptor(block_length=512)).encode(for_select=True)
    assert code(d.execute(spc.MODE_SELECT_6.encode(pf=1, param_len=len(select)), select)) == "GOOD"
    assert code(write(d, b"1" * 512 + b"2" * 512 + b"3" * 512, fixed=512)) == "GOOD"
    assert code(d.execute(ssc.WRITE_FILEMARKS_6.encode(count=1))) == "GOOD"
    d.execute(ssc.REWIND.encode())
    r = read(d, 5, fixed=True, alloc=5 * 512)
    s = sense(r)
    assert (s.filemark, s.information, bytes(r.data)) == (True, 2, b"1" * 512 + b"2" * 512 + b"3" * 512)
    r = read(d, 2, fixed=True, alloc=1024)
    assert (sense(r).code, sense(r).information, r.resid) == ("8/00/05", 2, 1024)


def test_fixed_with_sili_is_illegal_with_field_pointer(devices):
    devices.load()
    r = devices.drive.execute(ssc.READ_6.encode(fixed=1, sili=1, length=1), b"", 512)
    s = sense(r)
    assert (s.code, s.sksv, s.cd, s.field_pointer, s.bpv, s.bit_pointer) == ("5/24/00", True, True, 1, True, 1)


def test_write_in_the_middle_discards_the_rest(devices):
    devices.load()
    d = devices.drive
    tape(d, b"a" * 10, b"b" * 10, None, b"c" * 10)
    assert code(read(d, 10)) == "GOOD"
    assert code(write(d, b"z" * 20)) == "GOOD"
    assert code(read(d, 10)) == "8/00/05"
    d.execute(ssc.REWIND.encode())
    assert bytes(read(d, 10).data) == b"a" * 10
    assert bytes(read(d, 20).data) == b"z" * 20


def test_space_blocks_filemarks_eod_and_bop(devices):
    devices.load()
    d = devices.drive
    tape(d, b"1", b"2", None, b"3", b"4", None, b"5")  # objects 0..6, EOD 7
    r = d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_BLOCKS, count=5))
    s = sense(r)
    assert (s.filemark, s.information, position(d).block) == (True, 3, 3)
    r = d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_BLOCKS, count=-2))  # hits filemark 2 going back
    s = sense(r)
    assert (s.filemark, s.information, position(d).block) == (True, 2, 2)
    assert code(d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_FILEMARKS, count=2))) == "GOOD"
    assert position(d).block == 6
    r = d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_FILEMARKS, count=1))
    assert (code(r), position(d).block) == ("8/00/05", 7)
    assert code(d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_FILEMARKS, count=-1))) == "GOOD"
    assert position(d).block == 5  # BOP side of the last filemark
    r = d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_BLOCKS, count=-9))  # blocks 4, 3, then filemark 2
    assert (sense(r).filemark, sense(r).information, position(d).block) == (True, 7, 2)
    d.execute(ssc.REWIND.encode())
    d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_BLOCKS, count=1))
    r = d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_BLOCKS, count=-3))
    s = sense(r)
    assert (s.code, s.eom, s.information, position(d).block) == ("0/00/04", True, 2, 0)
    assert code(d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_END_OF_DATA))) == "GOOD"
    assert position(d).block == 7
    r = d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_SEQUENTIAL_FILEMARKS, count=1))
    assert (sense(r).code, sense(r).field_pointer) == ("5/24/00", 1)


def test_locate_read_position_long_and_beyond_eod(devices):
    devices.load()
    d = devices.drive
    tape(d, b"1", None, b"2", b"3", None, b"4")
    assert code(d.execute(ssc.LOCATE_10.encode(block=3))) == "GOOD"
    p = position(d, long=True)
    assert (p.block, p.file, p.bop) == (3, 1, False)
    assert bytes(read(d, 1).data) == b"3"
    assert code(d.execute(ssc.LOCATE_16.encode(dest_type=ssc.LOCATE_DEST_FILE, identifier=2))) == "GOOD"
    assert bytes(read(d, 1).data) == b"4"
    r = d.execute(ssc.LOCATE_16.encode(identifier=99))
    assert (code(r), position(d).block) == ("8/00/05", 6)
    d.execute(ssc.REWIND.encode())
    assert position(d).bop


def test_write_filemarks_and_erase(devices):
    devices.load()
    d = devices.drive
    tape(d, b"1", b"2", b"3")
    d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_BLOCKS, count=1))
    assert code(d.execute(ssc.ERASE.encode(long=1))) == "GOOD"
    assert code(read(d, 1)) == "8/00/05"
    r = d.execute(ssc.WRITE_FILEMARKS_6.encode(wsmk=1, count=1))
    assert (sense(r).code, sense(r).field_pointer, sense(r).bit_pointer) == ("5/24/00", 1, 1)


def test_early_warning_then_physical_end(small):
    d = small.drive
    block = b"e" * (64 * KIB)
    results = [code(write(d, block)) for _ in range(15)]
    assert results == ["GOOD"] * 15
    r = write(d, block)  # 16 x 64 KiB = 1 MiB reaches the early-warning zone (2% before the end): written
    s = sense(r)
    assert (s.code, s.eom, s.valid) == ("0/00/02", True, True)
    assert position(d).eop
    r = write(d, block)  # no room left: not written
    s = sense(r)
    assert (s.code, s.eom, s.information) == ("D/00/02", True, 64 * KIB)
    d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_END_OF_DATA))
    assert position(d).block == 16


def test_read_block_limits_and_mode_sense(devices):
    d = devices.drive
    r = d.execute(ssc.READ_BLOCK_LIMITS.encode(), b"", 6)
    assert ssc.BlockLimits.decode(r.data).max_block == 8 * 1024 * 1024
    devices.load()
    r = d.execute(spc.MODE_SENSE_6.encode(alloc=12), b"", 12)  # what st sends at open
    mode = spc.ModeData.decode(r.data)
    assert (mode.medium_type, mode.wp, mode.block_descriptor.density, mode.block_descriptor.block_length) == (
        0x88, False, 0x5E, 0)
    r = d.execute(spc.MODE_SENSE_6.encode(page_code=ssc.PAGE_COMPRESSION, alloc=255), b"", 255)
    assert ssc.CompressionPage.decode(spc.ModeData.decode(r.data).page(ssc.PAGE_COMPRESSION)).dce
    r = d.execute(spc.MODE_SENSE_6.encode(page_code=0x2A, alloc=255), b"", 255)
    assert (sense(r).code, sense(r).field_pointer) == ("5/24/00", 2)


def test_large_variable_blocks_up_to_8_mib(devices):
    devices.load()
    d = devices.drive
    big = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    assert code(write(d, big)) == "GOOD"
    too_big = d.execute(ssc.WRITE_6.encode(length=8 * 1024 * 1024 + 1), big + b"x")
    assert code(too_big) == "5/24/00"
    d.execute(ssc.REWIND.encode())
    assert code(read(d, len(big) + 1)) == "5/24/00"  # above READ BLOCK LIMITS' maximum
    r = read(d, len(big))
    assert code(r) == "GOOD" and bytes(r.data) == big


def test_tapealert_write_protect_and_log_pages(tmp_path):
    from tests.simulators.conftest import make_library, open_devices
    from simulators.vtl.cli import main

    directory = make_library(tmp_path / "wp")
    assert main(["fault", str(directory), "write-protect", "A00000L8"]) == 0
    devs = open_devices(directory)
    try:
        devs.load()
        d = devs.drive
        assert code(write(d, b"x")) == "7/27/00"
        r = d.execute(spc.LOG_SENSE.encode(pc=1, page_code=tapelog.PAGE_TAPE_ALERT, alloc=400), b"", 400)
        assert [f.number for f in tapelog.decode_tape_alert(r.data)] == [0x09]
        r = d.execute(spc.LOG_SENSE.encode(pc=1, page_code=tapelog.PAGE_TAPE_ALERT, alloc=400), b"", 400)
        assert tapelog.decode_tape_alert(r.data) == ()  # reading the page cleared it
        r = d.execute(spc.LOG_SENSE.encode(pc=1, page_code=tapelog.PAGE_TAPE_CAPACITY, alloc=64), b"", 64)
        assert tapelog.TapeCapacity.decode(r.data).maximum == (12 * 10**12 // 2**20,)
        r = d.execute(spc.MODE_SENSE_6.encode(alloc=12), b"", 12)
        assert spc.ModeData.decode(r.data).wp
    finally:
        devs.close()


@pytest.mark.parametrize("cdb", [b"", b"\x0a", bytes([0x0A, 0, 0]), bytes([0xFF] * 6), bytes([0x34, 0x1F] + [0] * 8)])
def test_malformed_cdbs_never_raise(devices, cdb):
    r = devices.drive.execute(cdb, b"", 64)
    assert r.status == 2
    assert SenseData.decode(r.sense).key == 5


def test_worm_cartridge_appends_only(devices):
    from simulators.vtl.cli import main

    d = str(devices.directory)
    assert main(["mailslot", d, "open"]) == 0
    assert main(["mailslot", d, "insert", "W00001LY"]) == 0
    assert main(["mailslot", d, "close"]) == 0
    devices.changer.execute(spc.TEST_UNIT_READY.encode())  # the door's unit attention
    devices.load(10)  # from mail slot 1
    drive = devices.drive
    assert code(write(drive, b"first")) == "GOOD"
    assert code(write(drive, b"second")) == "GOOD"  # appending at EOD is allowed
    drive.execute(ssc.REWIND.encode())
    r = write(drive, b"over")
    assert code(r) == "7/30/0C"
    assert code(drive.execute(ssc.ERASE.encode())) == "7/30/0C"
    r = drive.execute(spc.LOG_SENSE.encode(pc=1, page_code=tapelog.PAGE_TAPE_ALERT, alloc=400), b"", 400)
    assert 0x3C in [f.number for f in tapelog.decode_tape_alert(r.data)]
    assert bytes(read(drive, 5).data) == b"first"


def test_request_sense_returns_and_clears_the_pending_unit_attention(devices):
    devices.move(1000, 500)
    d = devices.drive
    r = d.execute(spc.REQUEST_SENSE.encode(alloc=18), b"", 18)
    assert (r.status, SenseData.decode(r.data).code) == (0, "6/28/00")
    r = d.execute(spc.REQUEST_SENSE.encode(alloc=18), b"", 18)
    assert SenseData.decode(r.data).code == "0/00/00"
    assert code(d.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
    r = d.execute(spc.REQUEST_SENSE.encode(alloc=8), b"", 8)  # allocation length honoured
    assert (len(r.data), r.resid) == (8, 0)


def test_log_sense_page_0_lists_the_pages_the_drive_answers(devices):
    devices.load()
    r = devices.drive.execute(spc.LOG_SENSE.encode(pc=1, page_code=spc.LOG_PAGE_SUPPORTED, alloc=64), b"", 64)
    assert code(r) == "GOOD" and bytes(r.data).hex() == "00000003" "002e31"
    for page in spc.decode_supported_log_pages(r.data):  # each listed page answers
        r = devices.drive.execute(spc.LOG_SENSE.encode(pc=1, page_code=page, alloc=400), b"", 400)
        assert code(r) == "GOOD" and r.data[0] & 0x3F == page
    r = devices.drive.execute(spc.LOG_SENSE.encode(pc=1, page_code=0x17, alloc=64), b"", 64)  # not listed
    assert (code(r), sense(r).field_pointer, sense(r).bit_pointer) == ("5/24/00", 2, 5)
    r = devices.drive.execute(spc.LOG_SENSE.encode(pc=1, page_code=0, subpage=0xFF, alloc=64), b"", 64)
    assert (code(r), sense(r).field_pointer) == ("5/24/00", 3)


@pytest.mark.parametrize("ten", [False, True])
def test_mode_select_errors_point_at_the_block_descriptor_field(devices, ten):
    devices.load()
    d, cdb = devices.drive, spc.MODE_SELECT_10 if ten else spc.MODE_SELECT_6
    header = 8 if ten else 4

    def select(data: spc.ModeData):
        raw = data.encode(ten=ten, for_select=True)
        return d.execute(cdb.encode(pf=1, param_len=len(raw)), raw)

    too_big = select(spc.ModeData(block_descriptor=spc.BlockDescriptor(block_length=(8 << 20) + 1)))
    assert (code(too_big), sense(too_big).cd, sense(too_big).field_pointer) == ("5/26/00", False, header + 5)
    bad_density = select(spc.ModeData(block_descriptor=spc.BlockDescriptor(density=0x42, block_length=512)))
    assert (code(bad_density), sense(bad_density).field_pointer) == ("5/26/00", header)
    other_page = select(spc.ModeData(block_descriptor=spc.BlockDescriptor(block_length=512),
                                     pages=(bytes([0x10, 0x0E]) + bytes(14),)))
    assert (code(other_page), sense(other_page).field_pointer) == ("5/26/00", header + 8)
    r = d.execute(spc.MODE_SENSE_6.encode(alloc=12), b"", 12)
    assert spc.ModeData.decode(r.data).block_descriptor.block_length == 0  # none of the refused lists applied


def test_read_attribute_gives_the_loaded_cartridges_barcode(devices):
    d = devices.drive
    cdb = ssc.READ_ATTRIBUTE.encode(first_attribute=ssc.MAM_BARCODE, alloc=64)
    assert code(d.execute(cdb, b"", 64)) == "2/3A/00"  # no cartridge
    devices.load()
    r = d.execute(cdb, b"", 64)
    assert code(r) == "GOOD"
    assert [(a.identifier, a.text) for a in ssc.decode_attributes(r.data)] == [(0x0806, "A00000L8")]
    after = d.execute(ssc.READ_ATTRIBUTE.encode(first_attribute=0x0807, alloc=64), b"", 64)
    assert bytes(after.data) == b"\0\0\0\0"  # nothing at or above 0x0807
    bad = d.execute(ssc.READ_ATTRIBUTE.encode(partition=1, alloc=64), b"", 64)
    assert code(bad) == "5/24/00" and sense(bad).field_pointer == 7
