"""Fixtures for the simulator tests: a fresh library directory and its devices through the `local` transport.

CDBs are built and sense decoded with the `drivers.scsi` codecs, as every initiator does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.scsi import smc, spc
from drivers.scsi.sense import SenseData
from drivers.transport.base import GOOD, ScsiResult
from simulators.vtl.cli import main as vtl_main
from simulators.vtl.local import LocalTransport

SLOT0, MAIL0, DRIVE0 = 1000, 10, 500  # L700 element address bases (personality.LIBRARIES["L700"])


def make_library(directory: Path, *args: str) -> Path:
    assert vtl_main(["init", str(directory), *args]) == 0
    return directory


def code(result: ScsiResult) -> str:
    """`"GOOD"` or the sense as key/ASC/ASCQ, e.g. `"5/3B/0E"`."""
    if result.status == GOOD:
        return "GOOD"
    return SenseData.decode(result.sense).code


def sense(result: ScsiResult) -> SenseData:
    return SenseData.decode(result.sense)


@dataclass
class Devices:
    directory: Path
    changer: LocalTransport
    drives: list[LocalTransport]

    @property
    def drive(self) -> LocalTransport:
        return self.drives[0]

    def move(self, source: int, destination: int) -> ScsiResult:
        return self.changer.execute(smc.MOVE_MEDIUM.encode(source=source, destination=destination))

    def load(self, slot_address: int = SLOT0, drive: int = 0) -> None:
        """Move a cartridge into a drive and clear the drive's medium-changed unit attention."""
        assert code(self.move(slot_address, DRIVE0 + drive)) == "GOOD"
        assert code(self.drives[drive].execute(spc.TEST_UNIT_READY.encode())) == "6/28/00"
        assert code(self.drives[drive].execute(spc.TEST_UNIT_READY.encode())) == "GOOD"

    def close(self) -> None:
        for t in (self.changer, *self.drives):
            t.close()


def open_devices(directory: Path, drives: int = 2) -> Devices:
    base = f"local://{directory}"
    return Devices(directory, LocalTransport(f"{base}/changer"),
                   [LocalTransport(f"{base}/drive{i}") for i in range(drives)])


@pytest.fixture
def library(tmp_path) -> Path:
    return make_library(tmp_path / "vtl")


@pytest.fixture
def devices(library):
    devs = open_devices(library)
    yield devs
    devs.close()


@pytest.fixture
def small(tmp_path):
    """A library whose cartridges hold 1 MiB (early warning at 2% before the end), one cartridge loaded in drive0."""
    directory = make_library(tmp_path / "small", "--capacity", str(1 << 20))
    devs = open_devices(directory)
    devs.load()
    yield devs
    devs.close()
