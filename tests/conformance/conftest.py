"""The implementations the conformance suites run against, and the Protocols they must meet.

Changers: `MediaChanger` over `local://` (the simulator in this process), `MediaChanger` over `stream+socket://`
(a `tapeline-vtl serve` subprocess), and `MtxChanger` running the real `tapeline-mtx` console script against that
same served library (`mtx://stream+socket://...`). Tape drives: `TapeDrive` over `local://` and `stream+socket://`.

Invariants:
- Each test module gets one in-process library and one served library (a subprocess on a free loopback port,
  started once and stopped when the module ends); the `local` and served libraries are separate directories, since
  the service owns its directory.
- Before every test the library under test is put back in the layout `tapeline-vtl init` gave it (every cartridge
  in its first slot, drives and mail slots empty), through a `MediaChanger` on the same URL: a test may leave the
  library in any state, and a failed test cannot leak its state into the next.
- `Changer` and `TapeOps` are the operations the appliance needs (STYLE.md habit 3); every implementation must
  match them by name and signature (test_protocols_are_met).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pytest
import vtl_harness
from vtl_harness import BIN, init_library, restore_layout

from drivers.changer import Inventory, MediaChanger
from drivers.mtx import MtxChanger
from drivers.scsi.ssc import Position
from drivers.tape import TapeDrive

LABEL = "L700"


@runtime_checkable
class Changer(Protocol):
    """The changer operations the appliance needs; every result is the inventory read after the operation."""

    label: str
    last_inventory: Inventory | None

    def inventory(self) -> Inventory: ...
    def load(self, slot: int, drive: int) -> Inventory: ...
    def unload(self, drive: int, slot: int | None = None) -> Inventory: ...
    def transfer(self, source_slot: int, destination_slot: int) -> Inventory: ...
    def import_(self, mailslot: int, slot: int | None = None) -> Inventory: ...
    def export(self, slot: int, mailslot: int | None = None) -> Inventory: ...
    def initialize(self) -> Inventory: ...
    def close(self) -> None: ...


@runtime_checkable
class TapeOps(Protocol):
    """The tape drive operations the appliance's tape format writer and reader need."""

    label: str
    cartridge: str | None

    def wait_ready(self, timeout: float = 600.0, poll: float = 0.25) -> None: ...
    def test_ready(self) -> bool: ...
    def write(self, block: bytes | bytearray | memoryview) -> bool: ...
    def write_filemarks(self, count: int = 1) -> bool: ...
    def read(self, max_len: int) -> bytes: ...
    def space_blocks(self, count: int) -> None: ...
    def space_filemarks(self, count: int) -> None: ...
    def space_to_eod(self) -> None: ...
    def locate(self, block: int) -> None: ...
    def read_position(self) -> Position: ...
    def rewind(self) -> None: ...
    def unload(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Library:
    """One simulated library: `base` + "/changer" or "/drive0" is a device URL."""

    base: str
    layout: dict[str, int]  # barcode -> mtx slot number, as `tapeline-vtl init` placed it

    @property
    def changer(self) -> str:
        return f"{self.base}/changer"

    def drive(self, n: int = 0) -> str:
        return f"{self.base}/drive{n}"

    def restore(self) -> None:
        """Every cartridge back in its slot of `layout`, drives empty (moves by element address)."""
        restore_layout(self.changer, self.layout)


@pytest.fixture(scope="module")
def local_library(tmp_path_factory) -> Library:
    directory = tmp_path_factory.mktemp("local") / "library"
    return Library(f"local://{directory}", init_library(directory))


@pytest.fixture(scope="module")
def served_library(tmp_path_factory):
    """A library behind `tapeline-vtl serve` on a free loopback port, for the whole module."""
    directory = tmp_path_factory.mktemp("served") / "library"
    layout = init_library(directory)
    with vtl_harness.served_library(directory) as base:
        yield Library(base, layout)


CHANGERS = ["local", "stream", "mtx"]


@pytest.fixture(params=CHANGERS)
def library(request, local_library, served_library) -> Library:
    """The library the parametrized implementation drives, restored to its initial layout."""
    lib = local_library if request.param == "local" else served_library
    lib.restore()
    return lib


@pytest.fixture
def changer(request, library, monkeypatch):
    """Each changer implementation in turn, labelled "L700", on a freshly restored library."""
    if request.node.callspec.params["library"] == "mtx":
        monkeypatch.setenv("TAPELINE_MTX", str(BIN / "tapeline-mtx"))
        impl: Changer = MtxChanger(f"mtx://{library.changer}", label=LABEL)
    else:
        impl = MediaChanger(library.changer, label=LABEL)
    yield impl
    impl.close()
