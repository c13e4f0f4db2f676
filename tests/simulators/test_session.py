"""A full library session through the drivers, over `local://` and `stream+socket://` alike (issue 2, "Done when").

Inventory, load, label block, files with filemarks, early warning and end of medium, locate back, read back and
compare, unload, export through a mail slot, with every fault the simulator injects planted once.
"""

from __future__ import annotations

import pytest

from drivers.changer import MediaChanger
from drivers.scsi.sense import (
    EndOfData,
    FilemarkDetected,
    HardwareError,
    MediumError,
    VolumeOverflow,
    WriteProtected,
)
from drivers.tape import TapeDrive
from simulators.vtl.cli import main as vtl_main
from simulators.vtl.server import Server
from tests.simulators.conftest import make_library

BLOCK = 64 * 1024
CAPACITY = 4 << 20  # 4 MiB cartridges: early warning after ~3.9 MiB


@pytest.fixture(params=["local", "stream"])
def session(request, tmp_path):
    directory = make_library(tmp_path / "vtl", "--capacity", str(CAPACITY))
    if request.param == "local":
        base, server = f"local://{directory}", None
    else:
        server = Server(directory, "127.0.0.1", 0).start()
        base = f"stream+socket://127.0.0.1:{server.port}"
    changer, drive = MediaChanger(f"{base}/changer", "L700"), TapeDrive(f"{base}/drive0", "LTO-8 drive 0")
    yield directory, changer, drive
    changer.close()
    drive.close()
    if server is not None:
        server.stop()


def fault(directory, *args: str) -> None:
    assert vtl_main(["fault", str(directory), *args]) == 0


def block(file: int, n: int) -> bytes:
    return bytes([file, n % 256]) * (BLOCK // 2)


def test_library_session(session):
    directory, changer, drive = session
    inventory = changer.inventory()
    assert inventory.slot(1).barcode == "A00000L8" and len(inventory.mailslots) == 4

    fault(directory, "load-failure", "A00000L8")
    with pytest.raises(HardwareError, match="4/53/00"):
        changer.load(1, 0)
    changer.load(1, 0)  # the one-shot fault is spent
    drive.cartridge = "A00000L8"
    drive.wait_ready(timeout=10)

    drive.write(b"TAPELINE-LABEL".ljust(BLOCK, b"\0"))
    drive.write_filemarks(1)
    files = 3
    for f in range(1, files + 1):
        for n in range(10):
            assert drive.write(block(f, n)) is False
        drive.write_filemarks(1)

    early = False
    written = 0
    with pytest.raises(VolumeOverflow):
        while True:
            early = drive.write(block(99, written)) or early
            written += 1
    assert early and written > 0  # early warning came before the physical end

    drive.locate(2)  # the first block of file 1
    assert [drive.read(BLOCK) for _ in range(10)] == [block(1, n) for n in range(10)]
    with pytest.raises(FilemarkDetected):
        drive.read(BLOCK)
    drive.space_filemarks(1)
    assert drive.read(BLOCK) == block(3, 0)
    drive.space_to_eod()
    with pytest.raises(EndOfData):
        drive.read(BLOCK)

    fault(directory, "media-error", "A00000L8", "--at", "3")
    drive.locate(3)
    with pytest.raises(MediumError, match="3/11/00"):
        drive.read(BLOCK)
    fault(directory, "cleaning-required", "drive0")
    drive.rewind()
    assert drive.read(BLOCK).startswith(b"TAPELINE-LABEL")
    assert 0x14 in [f.number for f in drive.tape_alerts()]

    drive.unload()
    inventory = changer.unload(0)
    assert inventory.slot(1).barcode == "A00000L8"
    changer.clean(0)

    fault(directory, "write-protect", "A00001L8")
    changer.load(2, 0)
    drive.cartridge = "A00001L8"
    drive.wait_ready(timeout=10)
    with pytest.raises(WriteProtected, match="7/27/00"):
        drive.write(b"x" * 10)
    changer.unload(0)

    fault(directory, "early-eom", "A00002L8", "--at", str(2 * BLOCK))
    changer.load(3, 0)
    drive.wait_ready(timeout=10)
    # 128 KiB is less than one 8 MiB block: early warning from BOP, so both blocks that fit are written with
    # 00/00/02 (write returns True), and the third, past the planted end, is not written (0D/00/02)
    assert drive.write(block(0, 0)) is True
    assert drive.write(block(0, 1)) is True
    with pytest.raises(VolumeOverflow, match=r"\(D/00/02\)"):
        drive.write(block(0, 2))
    changer.unload(0)

    fault(directory, "drive-offline", "drive1")
    with pytest.raises(HardwareError, match=r"MOVE MEDIUM: medium load or eject failed \(4/53/00\)"):
        changer.load(4, 1)

    inventory = changer.export(1, 1)
    assert inventory.mailslot(1).barcode == "A00000L8" and not inventory.slot(1).full
