"""One tape drive suite, run against TapeDrive over local:// and over stream+socket:// (a `tapeline-vtl serve`
subprocess, conftest.py): files of variable-length blocks closed by filemarks, read back, space, locate, read
position, rewind and unload. The tape is written from the beginning in every test, so tests share a cartridge."""

from __future__ import annotations

import pytest

from conformance.conftest import TapeOps
from drivers.changer import MediaChanger
from drivers.scsi.sense import EndOfData, FilemarkDetected
from drivers.tape import TapeDrive

BARCODE = "A00005L8"
# Two tape files: [b0 b1 b2] FM [b4 b5] FM; logical objects (blocks and filemarks) are numbered 0..6.
FILES = [[b"first " * 1000, b"\x00" * 65536, b"3"], [bytes(range(256)) * 40, b"last block of file 1"]]
MAX = 1 << 20


@pytest.fixture(params=["local", "stream"])
def drive(request, local_library, served_library):
    """Drive 0 of each library, with BARCODE loaded and ready; the library is restored before the next test."""
    lib = local_library if request.param == "local" else served_library
    lib.restore()
    with MediaChanger(lib.changer) as changer:
        changer.load(lib.layout[BARCODE], 0)
    with TapeDrive(lib.drive(0), label="LTO-8 drive 0") as tape:
        tape.cartridge = BARCODE
        tape.wait_ready(timeout=10)
        yield tape


def write_files(drive: TapeOps) -> None:
    drive.rewind()
    for blocks in FILES:
        for block in blocks:
            assert drive.write(block) is False  # far from early warning
        drive.write_filemarks(1)


def test_every_drive_meets_the_protocol(drive):
    assert isinstance(drive, TapeOps)


def test_write_files_and_read_them_back(drive):
    write_files(drive)
    assert drive.read_position().block == 7
    drive.rewind()
    for blocks in FILES:
        assert [drive.read(MAX) for _ in blocks] == blocks
        with pytest.raises(FilemarkDetected):
            drive.read(MAX)
    with pytest.raises(EndOfData):
        drive.read(MAX)


def test_space_over_filemarks_and_blocks(drive):
    write_files(drive)
    drive.rewind()
    drive.space_filemarks(1)
    assert drive.read_position().block == 4  # past the first filemark
    assert drive.read(MAX) == FILES[1][0]
    drive.space_blocks(-1)
    assert drive.read(MAX) == FILES[1][0]
    drive.space_filemarks(-1)  # backwards: the BOP side of that filemark
    assert drive.read_position().block == 3
    drive.space_blocks(-2)
    assert drive.read(MAX) == FILES[0][1]
    drive.space_to_eod()
    assert drive.read_position().block == 7
    with pytest.raises(EndOfData):
        drive.read(MAX)


def test_locate_and_read_position(drive):
    write_files(drive)
    drive.locate(5)
    position = drive.read_position()
    assert (position.block, position.bop) == (5, False)
    assert drive.read(MAX) == FILES[1][1]
    drive.locate(1)
    assert drive.read(MAX) == FILES[0][1] and drive.read_position().block == 2


def test_rewind_returns_to_the_beginning(drive):
    write_files(drive)
    drive.rewind()
    position = drive.read_position()
    assert (position.block, position.bop) == (0, True)
    assert drive.read(MAX) == FILES[0][0]


def test_unload_ejects_and_the_data_stays(drive, request):
    write_files(drive)
    drive.unload()
    assert not drive.test_ready()
    lib = request.getfixturevalue("local_library" if "local" in request.node.callspec.id else "served_library")
    with MediaChanger(lib.changer) as changer:
        inv = changer.unload(0)
        assert inv.slot(lib.layout[BARCODE]).barcode == BARCODE
        changer.load(lib.layout[BARCODE], 0)
    drive.wait_ready(timeout=10)
    assert drive.read_position().block == 0
    assert drive.read(MAX) == FILES[0][0]
