"""Library state: which cartridge is where, and who owns the library directory.

Directory layout: `state.json` (this state), `state.lock` (held briefly around every read-modify-write of the state),
`lock` (held for as long as a process serves the library; it holds that process's pid, command line and service
URL), `cartridges/` (one image per barcode, see `cartridge.py`).

Invariants:
- A cartridge is in exactly one place: a slot, a mail slot, a drive or the robot (or nowhere once exported and
  removed by the operator). `check()` verifies this after every load.
- The state file is replaced atomically (temp file, fsync, rename, fsync of the directory): a crash leaves the old or
  the new state, never a torn one.
- One process owns a library directory (an exclusive flock on `lock`); a second one gets `DeviceBusy` saying who
  holds it and which URL to use instead. Within the owning process the `Library` object is shared
  (`devices.acquire`), and its `mutex` serialises SCSI commands.
- Other processes (`tapeline-vtl fault`, `status`, operator actions on mail slots) may change the state under
  `state.lock` while the owner runs; the owner re-reads `state.json` before each command when its identity changed.
- A drive keeps its logical state across processes as a real drive keeps it while the tape stays threaded: position,
  block size, compression and pending unit attentions are saved in `DriveState` by the drive after commands that
  change them (WRITE excepted: after a write the position is end of data, recorded once as `at_eod`; READ excepted:
  saved by the next other command) and by `devices.release` when the last user closes the library. `held` is set while a
  process owns the library and cleared by that clean close; a process that finds it set took over from one that died
  (kill -9): its drives come back at BOP with UNIT ATTENTION 06/29/00, like drives after a power cycle
  (`Library.power_cycled`).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from drivers.errors import DeviceBusy, DeviceNotFound
from simulators.vtl import personality
from simulators.vtl.clock import Clock
from simulators.vtl.faults import Fault

STATE_FORMAT = "tapeline-vtl-library"
STATE_VERSION = 1

TRANSPORT, STORAGE, IMPORT_EXPORT, DATA_TRANSFER = 1, 2, 3, 4  # SMC element type codes


@dataclass
class CartridgeInfo:
    barcode: str
    media: str | None  # personality.MEDIA key; None for cleaning cartridges
    kind: str  # "data", "worm", "cleaning"
    capacity: int
    protected: bool = False
    cleaning_uses: int = 0
    loaded_before: bool = False  # LTO-9 runs media optimization on a cartridge's first load


@dataclass
class DriveState:
    generation: str
    barcode: str | None = None
    source: int | None = None  # element address the cartridge came from
    threaded: bool = False  # loaded at the heads (False: ejected into the throat, or empty)
    needs_cleaning: bool = False
    # The drive's logical state, saved by the drive (drive_lu.DriveUnit.store); meaningful while threaded.
    position: int = 0  # logical object position (blocks and filemarks before it)
    at_eod: bool = False  # the last command wrote: the position is end of data, whatever `position` says
    block_length: int = 0  # 0 = variable-block mode
    compression: bool = True
    attentions: list[str] = field(default_factory=list)  # pending unit attentions, oldest first, as "6/28/00"


@dataclass
class State:
    library: str
    slots: list[str | None]
    mailslots: list[str | None]
    drives: list[DriveState]
    cartridges: dict[str, CartridgeInfo]
    transport: str | None = None
    door_open: bool = False  # the operator has the mail slot door open
    mail_placed: list[bool] = field(default_factory=list)  # IMPEXP: placed by the operator
    mail_locked: bool = False  # PREVENT MEDIUM REMOVAL on the changer
    serial: str = "XYZZY_A"
    clock_factor: float | None = None
    faults: list[Fault] = field(default_factory=list)
    door_events: int = 0  # bumped each time the operator closes the door: the changer raises 06/28/01
    held: bool = False  # a process owns the library and has not closed it cleanly yet

    def to_json(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "library": self.library,
            "serial": self.serial,
            "clock_factor": self.clock_factor,
            "slots": self.slots,
            "mailslots": self.mailslots,
            "mail_placed": self.mail_placed,
            "transport": self.transport,
            "door_open": self.door_open,
            "door_events": self.door_events,
            "mail_locked": self.mail_locked,
            "held": self.held,
            "drives": [vars(d) for d in self.drives],
            "cartridges": {b: vars(c) for b, c in self.cartridges.items()},
            "faults": [f.to_json() for f in self.faults],
        }

    @classmethod
    def from_json(cls, raw: dict) -> State:
        if raw.get("format") != STATE_FORMAT or raw.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} {STATE_FORMAT} state file")
        return cls(
            library=raw["library"],
            serial=raw["serial"],
            clock_factor=raw["clock_factor"],
            slots=raw["slots"],
            mailslots=raw["mailslots"],
            mail_placed=raw["mail_placed"],
            transport=raw["transport"],
            door_open=raw["door_open"],
            door_events=raw["door_events"],
            mail_locked=raw["mail_locked"],
            held=raw.get("held", False),  # absent from state files written before drives kept their state
            drives=[DriveState(**d) for d in raw["drives"]],
            cartridges={b: CartridgeInfo(**c) for b, c in raw["cartridges"].items()},
            faults=[Fault.from_json(f) for f in raw["faults"]],
        )

    def check(self) -> None:
        seen: dict[str, str] = {}
        places = [(f"slot {i + 1}", b) for i, b in enumerate(self.slots)]
        places += [(f"mail slot {i + 1}", b) for i, b in enumerate(self.mailslots)]
        places += [(f"drive {i}", d.barcode) for i, d in enumerate(self.drives)] + [("robot", self.transport)]
        for place, barcode in places:
            if barcode is None:
                continue
            if barcode in seen:
                raise ValueError(f"cartridge {barcode} is both in {seen[barcode]} and {place}")
            if barcode not in self.cartridges:
                raise ValueError(f"{place} holds {barcode}, which the library does not know")
            seen[barcode] = place


def new_state(
    slots: int, drives: int, mailslots: int, generation: str, library: str = personality.DEFAULT_LIBRARY,
    capacity: int | None = None, cleaning: int = 1, empty: int | None = None, clock_factor: float | None = None,
) -> State:
    """A fresh library: data cartridges in most slots (the last few left empty for moves), cleaning cartridges."""
    media = personality.MEDIA[generation]
    empty = max(1, slots // 8) if empty is None else empty
    filled = max(0, slots - empty)
    state = State(
        library=library, slots=[None] * slots, mailslots=[None] * mailslots, mail_placed=[False] * mailslots,
        drives=[DriveState(generation) for _ in range(drives)], cartridges={}, clock_factor=clock_factor,
        serial=f"{personality.LIBRARIES[library].serial_prefix}_A",
    )
    cleaners = min(cleaning, filled)
    for i in range(filled - cleaners):
        barcode = f"A{i:05d}{media.suffix}"
        state.slots[i] = barcode
        state.cartridges[barcode] = CartridgeInfo(barcode, media.name, "data", capacity or media.native_capacity)
    for j in range(cleaners):
        barcode = f"CLN{j + 1:03d}L1"
        state.slots[filled - cleaners + j] = barcode
        state.cartridges[barcode] = CartridgeInfo(barcode, None, "cleaning", 0, cleaning_uses=personality.CLEANING_USES)
    return state


class Library:
    """A library directory opened by this process. Use `devices.acquire`/`release` rather than constructing it."""

    def __init__(self, directory: Path, service_url: str | None):
        self.directory = directory
        self.mutex = threading.RLock()
        self._lock_fd = _take_lock(directory, service_url)
        self._state_stamp: tuple[int, int, int] | None = None
        self._state_file = str(directory / "state.json")
        self.version = 0  # bumped whenever the state changes (here or in another process): caches compare it
        self.state = self._read_state()
        self.personality = personality.LIBRARIES[self.state.library]
        self.clock = Clock(self.state.clock_factor, directory / "clock")
        self.users = 0
        self.target = None  # the devices built over this library (`devices.Target`), set by `devices.acquire`
        # The last owner died without closing (we hold the lock now, so it is gone): drives power-cycle.
        self.power_cycled = self.state.held
        with self.mutate() as state:
            state.held = True

    # ---- persistence ------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    @property
    def cartridge_dir(self) -> Path:
        return self.directory / "cartridges"

    def _read_state(self) -> State:
        state, self._state_stamp = read_state(self.directory)
        return state

    def refresh(self) -> bool:
        """Re-read the state if another process replaced it; True when it changed."""
        try:
            st = os.stat(self._state_file)
        except FileNotFoundError:
            return False
        if (st.st_ino, st.st_mtime_ns, st.st_size) == self._state_stamp:
            return False
        self.state = self._read_state()
        self.version += 1
        return True

    @contextmanager
    def mutate(self) -> Iterator[State]:
        """Read-modify-write the state under `state.lock`, saving it atomically when the block ends normally."""
        with self.mutex, _state_lock(self.directory):
            self.refresh()
            yield self.state
            self.state.check()
            self._state_stamp = write_state(self.directory, self.state)
            self.version += 1

    def close(self) -> None:
        self.clock.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1

    # ---- element addresses ------------------------------------------------------------------------------------
    def slot_address(self, i: int) -> int:
        return self.personality.storage_base + i

    def mail_address(self, i: int) -> int:
        return self.personality.ie_base + i

    def drive_address(self, i: int) -> int:
        return self.personality.drive_base + i

    def element(self, address: int) -> tuple[int, int] | None:
        """(element type, index) of an element address, or None if no element has it."""
        p, s = self.personality, self.state
        for etype, base, count in (
            (TRANSPORT, p.transport_base, 1), (STORAGE, p.storage_base, len(s.slots)),
            (IMPORT_EXPORT, p.ie_base, len(s.mailslots)), (DATA_TRANSFER, p.drive_base, len(s.drives)),
        ):
            if base <= address < base + count:
                return etype, address - base
        return None

    def elements(self) -> list[tuple[int, int, int]]:
        """Every element as (type, index, address), in type order then address order."""
        p, s = self.personality, self.state
        out = [(TRANSPORT, 0, p.transport_base)]
        out += [(STORAGE, i, p.storage_base + i) for i in range(len(s.slots))]
        out += [(IMPORT_EXPORT, i, p.ie_base + i) for i in range(len(s.mailslots))]
        out += [(DATA_TRANSFER, i, p.drive_base + i) for i in range(len(s.drives))]
        return out

    def occupant(self, etype: int, index: int) -> str | None:
        s = self.state
        if etype == TRANSPORT:
            return s.transport
        if etype == STORAGE:
            return s.slots[index]
        if etype == IMPORT_EXPORT:
            return s.mailslots[index]
        return s.drives[index].barcode

    def set_occupant(self, etype: int, index: int, barcode: str | None) -> None:
        s = self.state
        if etype == TRANSPORT:
            s.transport = barcode
        elif etype == STORAGE:
            s.slots[index] = barcode
        elif etype == IMPORT_EXPORT:
            s.mailslots[index] = barcode
        else:
            s.drives[index].barcode = barcode

    def faults_for(self, kind: str, target: str) -> list[Fault]:
        faults = self.state.faults
        return [f for f in faults if f.kind == kind and f.target == target] if faults else []


# ---- state files -------------------------------------------------------------------------------------------------
def read_state(directory: Path) -> tuple[State, tuple[int, int, int]]:
    path = directory / "state.json"
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            raw = json.load(fh)
    except FileNotFoundError:
        raise DeviceNotFound(
            f"{directory} is not a virtual tape library (no state.json): create one with `tapeline-vtl init {directory}`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeviceNotFound(f"{path} is damaged ({exc}): restore it or re-create the library with tapeline-vtl init")
    try:
        state = State.from_json(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise DeviceNotFound(f"{path} is not a library state this version reads ({exc}): re-create it with init")
    return state, (st.st_ino, st.st_mtime_ns, st.st_size)


def write_state(directory: Path, state: State) -> tuple[int, int, int]:
    path = directory / "state.json"
    tmp = directory / f".state.json.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(state.to_json(), fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
        st = os.fstat(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextmanager
def _state_lock(directory: Path) -> Iterator[None]:
    fd = os.open(directory / "state.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def edit_state(directory: Path) -> Iterator[State]:
    """Change the state of a library from any process (operator actions, faults), owner running or not."""
    with _state_lock(directory):
        state, _ = read_state(directory)
        yield state
        state.check()
        write_state(directory, state)


def _take_lock(directory: Path, service_url: str | None) -> int:
    if not (directory / "state.json").exists():
        read_state(directory)  # raises the "not a library" error
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        pid, cmd, url = holder.get("pid", "?"), holder.get("command", "?"), holder.get("url")
        advice = (
            f"use its service URL {url}" if url else
            f"stop it, or run `tapeline-vtl serve {directory}` and use stream+socket://127.0.0.1:7101/changer"
        )
        raise DeviceBusy(f"library {directory} is in use by pid {pid} ({cmd}): {advice}") from None
    info = json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv), "url": service_url}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, info, 0)
    return fd


def _holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:
        return {}
