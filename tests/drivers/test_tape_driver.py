"""TapeDrive against the virtual tape library, through `local://`: a session as a backup application runs it."""

import os

import pytest

from drivers.changer import MediaChanger
from drivers.scsi import ssc
from drivers.scsi.sense import (
    BeginningOfMedium,
    BlankCheck,
    DestinationFull,
    EndOfData,
    FilemarkDetected,
    IncorrectLength,
    LogicalUnitOffline,
    MediumError,
    NoMedium,
    NotReady,
    ScsiError,
    VolumeOverflow,
    WriteProtected,
)
from drivers.tape import TapeDrive
from simulators.vtl.cli import main as vtl

KIB = 1024


def make_library(directory, *args):
    assert vtl(["init", str(directory), *args]) == 0
    return directory


class Session:
    """A changer and drive 0 of one library, with cartridge `barcode` loaded and the drive ready."""

    def __init__(self, directory, barcode="A00000L8"):
        self.directory = directory
        self.changer = MediaChanger(f"local://{directory}/changer", label="L700")
        self.drive = TapeDrive(f"local://{directory}/drive0", label="LTO-8 drive 0")
        self.changer.load_by_barcode(barcode, 0)
        self.drive.cartridge = barcode
        self.drive.wait_ready(timeout=5)

    def close(self):
        self.drive.close()
        self.changer.close()


@pytest.fixture
def session(tmp_path):
    s = Session(make_library(tmp_path / "vtl"))
    yield s
    s.close()


@pytest.fixture
def drive(session):
    return session.drive


def block(i: int, size: int = 64 * KIB) -> bytes:
    return (i.to_bytes(4, "big") * (size // 4))[:size]


def test_an_empty_drive_is_not_ready(tmp_path):
    directory = make_library(tmp_path / "vtl")
    with TapeDrive(f"local://{directory}/drive1", label="LTO-8 drive 1") as empty:
        assert not empty.test_ready()
        status = empty.status()
        assert (status.ready, status.medium_present, status.model) == (False, False, "IBM ULT3580-TD8")
        with pytest.raises(NotReady, match=r"^LTO-8 drive 1: REWIND: no medium present \(2/3A/00\)$"):
            empty.rewind()


def test_status_of_a_freshly_loaded_lto8_cartridge(drive):
    status = drive.status()
    assert status.ready and status.medium_present and status.bop and not status.write_protected
    assert (status.file, status.block, status.block_size) == (0, 0, 0)
    assert (status.density, status.medium_type) == (0x5E, 0x88)  # LTO-8 density and IBM medium type
    assert status.cartridge == "A00000L8"
    assert drive.block_limits().max_block == 8 * 1024 * KIB
    assert drive.inquiry().product == "ULT3580-TD8" and drive.serial()


def test_write_files_with_filemarks_then_read_them_back(drive):
    assert drive.write(b"TAPELINE LABEL".ljust(512, b"\0")) is False
    drive.write_filemarks(1)
    for i in range(5):
        drive.write(block(i))
    drive.write_filemarks(1)
    drive.write_blocks(block(100 + i, 32 * KIB) for i in range(3))
    drive.write_filemarks(1)
    end = drive.read_position()
    assert (end.block, end.file) == (1 + 1 + 5 + 1 + 3 + 1, 3)
    assert drive.status().eod

    drive.rewind()
    assert drive.read(256 * KIB) == b"TAPELINE LABEL".ljust(512, b"\0")  # a short block in variable mode
    with pytest.raises(FilemarkDetected) as fm:
        drive.read(256 * KIB)
    assert str(fm.value) == "LTO-8 drive 0: READ: filemark detected (0/00/01) on cartridge A00000L8"
    assert list(drive.read_file(256 * KIB)) == [block(i) for i in range(5)]  # stops after the filemark
    assert drive.read_position().file == 2
    assert list(drive.read_file(256 * KIB)) == [block(100 + i, 32 * KIB) for i in range(3)]
    with pytest.raises(EndOfData) as eod:
        drive.read(256 * KIB)
    assert isinstance(eod.value, BlankCheck) and eod.value.residue == 256 * KIB
    assert str(eod.value) == "LTO-8 drive 0: READ: end of data (8/00/05) on cartridge A00000L8"


def test_a_block_longer_than_the_buffer_raises_with_a_negative_residue(drive):
    drive.write(block(1))
    drive.rewind()
    with pytest.raises(IncorrectLength) as err:
        drive.read(1000)
    assert err.value.residue == 1000 - 64 * KIB
    assert drive.read_position().block == 1  # the whole block was passed


def test_space_and_locate(drive):
    for i in range(3):
        drive.write(block(i))
        drive.write_filemarks(1)
    drive.rewind()
    drive.space_filemarks(2)
    assert drive.read(256 * KIB) == block(2)
    drive.space_filemarks(-1)  # mt bsf 1 from inside file 2: stops on the BOP side of the filemark ending file 1
    assert drive.read_position().block == 3
    drive.space_blocks(-1)
    assert drive.read(256 * KIB) == block(1)
    drive.locate(4)
    assert drive.read(256 * KIB) == block(2)
    drive.rewind()
    with pytest.raises(FilemarkDetected):
        drive.space_blocks(3)
    assert drive.read_position().block == 2  # past the filemark it ran into
    drive.locate(1)
    with pytest.raises(BeginningOfMedium):
        drive.space_blocks(-10)
    assert drive.read_position().bop
    drive.space_to_eod()
    assert drive.read_position().block == 6 and drive.status().eod
    with pytest.raises(BlankCheck):
        drive.locate(100)


def test_fixed_block_mode(drive):
    drive.set_block_size(16 * KIB)
    assert drive.status().block_size == 16 * KIB
    drive.write(b"".join(block(i, 16 * KIB) for i in range(4)))  # four blocks in one WRITE
    assert drive.read_position().block == 4
    drive.rewind()
    assert drive.read(32 * KIB) == block(0, 16 * KIB) + block(1, 16 * KIB)
    drive.space_to_eod()
    drive.write_filemarks(1)
    drive.locate(2)
    with pytest.raises(FilemarkDetected) as fm:
        drive.read(8 * 16 * KIB)  # two blocks left before the filemark
    assert fm.value.residue == 6 and fm.value.partial == block(2, 16 * KIB) + block(3, 16 * KIB)
    with pytest.raises(ValueError, match="fixed 16384-byte blocks: 1000 bytes is not a whole number of them"):
        drive.write(b"x" * 1000)
    drive.set_block_size(0)
    assert drive.status().block_size == 0


class CountedWrites:
    """The drive's real transport, counting the WRITE commands that pass through it."""

    def __init__(self, transport, max_transfer):
        self.transport, self.url, self.max_transfer, self.writes = transport, transport.url, max_transfer, []

    def execute(self, cdb, data_out=b"", data_in_len=0, timeout=60.0):
        if cdb[0] == ssc.WRITE_6.opcode:
            self.writes.append(len(data_out))
        return self.transport.execute(cdb, data_out, data_in_len, timeout)

    def close(self):
        self.transport.close()


def test_fixed_mode_writes_many_blocks_per_command_cut_at_the_transports_limit(session):
    counted = CountedWrites(session.drive.transport, max_transfer=3 * 16 * KIB + 100)
    drive = TapeDrive(counted, label="LTO-8 drive 0")
    drive.set_block_size(16 * KIB)
    data = b"".join(block(i, 16 * KIB) for i in range(8))
    assert drive.write(data) is False
    assert counted.writes == [3 * 16 * KIB, 3 * 16 * KIB, 2 * 16 * KIB]  # whole blocks, never over the limit
    assert drive.write(data[:2 * 16 * KIB]) is False and counted.writes[-1] == 2 * 16 * KIB
    drive.rewind()
    assert drive.read(10 * 16 * KIB) == data + data[:2 * 16 * KIB]


def test_compression_and_capacity(drive):
    drive.set_compression(False)
    assert drive.compression() is False
    drive.set_compression(True)
    assert drive.compression() is True
    before = drive.capacity()
    assert before.maximum[0] > 11_000_000  # LTO-8: 12 TB native, in MiB
    for i in range(40):
        drive.write(block(i, 256 * KIB))
    assert drive.capacity().remaining[0] <= before.remaining[0] - 9


def test_early_warning_then_end_of_medium_then_read_back(tmp_path):
    s = Session(make_library(tmp_path / "small", "--capacity", str(1 << 20)))
    try:
        drive = s.drive
        written, warned_at = [], None
        with pytest.raises(VolumeOverflow) as overflow:
            for i in range(1000):
                data = block(i, 16 * KIB)
                if drive.write(data) and warned_at is None:
                    warned_at = i
                written.append(data)  # early warning: the block WAS written
        assert warned_at is not None and warned_at < len(written)
        assert overflow.value.residue == 16 * KIB  # the block at physical end was not written
        assert "end of medium, data not written (D/00/02) on cartridge A00000L8" in str(overflow.value)
        assert drive.status().eom
        drive.locate(warned_at - 2)
        assert drive.read(16 * KIB) == written[warned_at - 2]
        drive.rewind()
        assert [drive.read(16 * KIB) for _ in written] == written
    finally:
        s.close()


def test_write_protected_cartridge(tmp_path):
    directory = make_library(tmp_path / "vtl")
    assert vtl(["fault", str(directory), "write-protect", "A00012L8"]) == 0
    s = Session(directory, "A00012L8")
    try:
        assert s.drive.status().write_protected
        with pytest.raises(WriteProtected) as err:
            s.drive.write(b"x" * 512)
        assert str(err.value) == "LTO-8 drive 0: WRITE: write protected (7/27/00) on cartridge A00012L8"
        assert "Write protect" in [f.name for f in s.drive.tape_alerts()]
    finally:
        s.close()


def test_errors_name_the_drive_and_the_cartridge_it_reads_itself(tmp_path):
    """No label, no barcode from the caller: the drive says what it is (INQUIRY), which one it is (the URL's
    drive0) and which cartridge it holds (READ ATTRIBUTE, MAM 0x0806)."""
    directory = make_library(tmp_path / "vtl")
    assert vtl(["fault", str(directory), "write-protect", "A00000L8"]) == 0
    url = f"local://{directory}/drive0"
    with MediaChanger(f"local://{directory}/changer") as changer, TapeDrive(url) as drive:
        changer.load_by_barcode("A00000L8", 0)
        drive.wait_ready(timeout=5)
        assert drive.status().cartridge == "A00000L8"
        with pytest.raises(WriteProtected) as err:
            drive.write(b"x" * 512)
        assert str(err.value) == f"LTO-8 drive 0 ({url}): WRITE: write protected (7/27/00) on cartridge A00000L8"
        drive.unload()
        changer.unload(0)
        assert drive.status().cartridge is None
        changer.load_by_barcode("A00001L8", 0)
        drive.wait_ready(timeout=5)
        assert drive.status().cartridge == "A00001L8"  # read again after the cartridge changed
        slots = changer.inventory().slots
        with pytest.raises(DestinationFull) as full:
            changer.move(slots[2].address, slots[3].address)
        assert str(full.value) == (f"STK L700 (local://{directory}/changer): MOVE MEDIUM: "
                                   f"{full.value.text} (5/3B/0D) on cartridge {slots[2].barcode}")


def test_media_error_at_a_block(session):
    drive = session.drive
    for i in range(4):
        drive.write(block(i))
    assert vtl(["fault", str(session.directory), "media-error", "A00000L8", "--at", "2"]) == 0
    drive.rewind()
    drive.read(256 * KIB)
    drive.read(256 * KIB)
    with pytest.raises(MediumError, match=r"READ: unrecovered read error \(3/11/00\) on cartridge A00000L8"):
        drive.read(256 * KIB)


def test_cleaning_request_and_drive_offline(session):
    assert vtl(["fault", str(session.directory), "cleaning-required", "drive0"]) == 0
    assert session.drive.test_ready()
    assert session.drive.cleaning_requested
    assert "Clean now" in [f.name for f in session.drive.tape_alerts()]
    assert vtl(["fault", str(session.directory), "drive-offline", "drive0", "--persistent"]) == 0
    assert not session.drive.status().ready
    with pytest.raises(LogicalUnitOffline, match=r"^LTO-8 drive 0: WRITE: logical unit offline \(2/04/12\) on "
                                                 r"cartridge A00000L8$"):
        session.drive.write(b"x")


def test_wait_ready_stops_at_once_on_an_offline_drive(session):
    assert vtl(["fault", str(session.directory), "drive-offline", "drive0", "--persistent"]) == 0
    with pytest.raises(LogicalUnitOffline) as err:
        session.drive.wait_ready(timeout=30, poll=3600)  # one poll more and this test would hang: it fails at once
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("LTO-8 drive 0: TEST UNIT READY: drive offline")
    assert "bring the drive online at the library" in message and "(2/04/12)" in message


def test_wait_ready_on_an_empty_drive_says_to_load_a_cartridge(tmp_path):
    directory = make_library(tmp_path / "vtl")
    with TapeDrive(f"local://{directory}/drive1", label="LTO-8 drive 1") as empty:
        with pytest.raises(NoMedium, match=r"^LTO-8 drive 1: TEST UNIT READY: not ready after 0.3 s, no medium "
                                           r"present: load a cartridge into it .*\(2/3A/00\)$"):
            empty.wait_ready(timeout=0.3, poll=0.1)


def test_unload_then_the_changer_takes_the_cartridge_home(session):
    session.drive.write(b"data")
    session.drive.unload()
    assert not session.drive.test_ready()
    inv = session.changer.unload(0)
    assert inv.slot(1).barcode == "A00000L8"
