"""A media changer driven through the `mtx` tool, and the parser of every form of `mtx status` output.

`MtxChanger("mtx:///dev/sg3")` runs `$TAPELINE_MTX` (or `mtx` from PATH) as `mtx -f /dev/sg3 status|load|unload|
transfer|inventory` for sites that want the tool they know between Tapeline and the library. With `tapeline-mtx` as
TAPELINE_MTX the device may be any device URL: `mtx://stream+socket://HOST:PORT/changer`.

It has `MediaChanger`'s methods, signatures and results wherever mtx can do the operation: `inventory()`, `load(slot,
drive)`, `unload(drive, slot=None)`, `transfer(source_slot, destination_slot)`, `import_(mailslot, slot=None)` and
`export(slot, mailslot=None)` (both mtx transfers), `initialize()` (`mtx inventory`); each returns the
`drivers.changer.Inventory` read after it. tests/conformance runs one suite against both.

Invariants:
* After every command, whether it succeeded or failed, the inventory is read again (`last_inventory`), then the
  command's error (if any) is raised, as `MediaChanger` does. Numbers the library lacks, an empty drive to unload and
  a missing home slot are refused with `ChangerRefusal` before mtx runs, with `MediaChanger`'s words.
* Inventory elements carry mtx's numbering and `address == NO_ADDRESS`: mtx never prints element addresses, and it
  lists no transport element. `source_slot` of a full drive is the slot mtx printed ("Storage Element N Loaded").
* `parse_mtx_status` takes the merged stdout+stderr of `mtx status` and never guesses: a line it does not know is
  kept in `noise` (the Mode Sense fallback's sense dump, for instance), a status without its header is an
  `MtxOutputError`. Slot numbers are mtx's (1-based, I/E slots after the storage slots), drives count from 0.
* Volume tags lose the trailing spaces of their 32/36-byte field (reference/mtx.md §2); a tag of only spaces (IBM
  empty slots) is no tag.
* A failing mtx run becomes one exception naming the device, the command and mtx's own message: the typed SCSI
  error when mtx printed sense or a move refusal we recognise (`SourceEmpty`, `DestinationFull`, `NotReady`, ...),
  `DeviceNotFound` when mtx cannot open the device, else `MtxError`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from drivers.changer import (
    KIND_DRIVE,
    KIND_MAILSLOT,
    KIND_SLOT,
    Element,
    Inventory,
    export_destination,
    import_destination,
    unload_slot,
)
from drivers.errors import DeviceError, DeviceNotFound
from drivers.scsi.sense import (
    CleaningCartridge,
    DestinationFull,
    ScsiError,
    SenseData,
    SourceEmpty,
    error_for,
    sense_for,
)

MTX_TIMEOUT = 30 * 60.0  # seconds; mtx itself allows 30 min for INITIALIZE ELEMENT STATUS


class MtxError(DeviceError):
    """mtx failed in a way that is not a SCSI condition (usage, a crash, a tool that is not mtx)."""


class MtxOutputError(MtxError):
    """The output of `mtx status` could not be read."""


@dataclass(frozen=True, slots=True)
class MtxDrive:
    number: int  # Data Transfer Element number, from 0
    full: bool
    source_slot: int | None = None  # "(Storage Element N Loaded)"; None when empty or "(Unknown ...)"
    volume_tag: str | None = None
    alternate_tag: str | None = None


@dataclass(frozen=True, slots=True)
class MtxSlot:
    number: int  # mtx slot number, from 1; I/E slots follow the storage slots
    full: bool
    import_export: bool = False
    volume_tag: str | None = None
    alternate_tag: str | None = None


@dataclass(frozen=True, slots=True)
class MtxStatus:
    device: str  # as mtx printed it in the header
    drives: tuple[MtxDrive, ...]
    slots: tuple[MtxSlot, ...]  # storage slots then I/E slots, as mtx numbers them
    noise: tuple[str, ...] = field(default=())  # lines that are not status (stderr of the Mode Sense fallback...)

    @property
    def storage_slots(self) -> tuple[MtxSlot, ...]:
        return tuple(s for s in self.slots if not s.import_export)

    @property
    def import_export_slots(self) -> tuple[MtxSlot, ...]:
        return tuple(s for s in self.slots if s.import_export)

    def slot(self, number: int) -> MtxSlot:
        for s in self.slots:
            if s.number == number:
                return s
        raise LookupError(f"no slot {number}: the library has slots 1-{len(self.slots)}")

    def drive(self, number: int) -> MtxDrive:
        for d in self.drives:
            if d.number == number:
                return d
        raise LookupError(f"no drive {number}: the library has drives 0-{len(self.drives) - 1}")


_HEADER = re.compile(r"^\s*Storage Changer (?P<dev>.*):(?P<drives>\d+) Drives, (?P<slots>\d+) Slots "
                     r"\( (?P<ie>\d+) Import/Export \)\s*$")
_DRIVE = re.compile(r"^\s*Data Transfer Element (?P<n>\d+):(?:(?P<empty>Empty)|Full \((?:Storage Element "
                    r"(?P<src>\d+)|Unknown Storage Element) Loaded\))(?P<rest>.*)$")
_SLOT = re.compile(r"^\s*Storage Element (?P<n>\d+)(?P<ie> IMPORT/EXPORT)?:(?P<state>Full|Empty)(?P<rest>.*)$")
_TAGS = re.compile(r"^ ?(?::VolumeTag ?= ?(?P<vol>.*?))?(?::AlternateVolumeTag ?= ?(?P<alt>.*?))?\s*$")


def _tags(rest: str, line: str) -> tuple[str | None, str | None]:
    found = _TAGS.match(rest)
    if found is None:
        raise MtxOutputError(f"cannot read the volume tags of mtx status line {line!r}")
    vol, alt = (t.rstrip() if t is not None else None for t in found.group("vol", "alt"))
    return vol or None, alt or None


def parse_mtx_status(text: str) -> MtxStatus:
    """Read `mtx status` output (stdout, or stdout and stderr merged) into an MtxStatus."""
    header = None
    drives: list[MtxDrive] = []
    slots: list[MtxSlot] = []
    noise: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if header is None and (m := _HEADER.match(line)):
            header = m
        elif m := _DRIVE.match(line):
            vol, alt = _tags(m["rest"], line)
            src = int(m["src"]) if m["src"] else None
            drives.append(MtxDrive(int(m["n"]), m["empty"] is None, src, vol, alt))
        elif m := _SLOT.match(line):
            vol, alt = _tags(m["rest"], line)
            slots.append(MtxSlot(int(m["n"]), m["state"] == "Full", m["ie"] is not None, vol, alt))
        else:
            noise.append(line)
    if header is None:
        detail = f": {noise[-1]}" if noise else ""
        raise MtxOutputError(f"no 'Storage Changer' header in the mtx status output{detail}")
    if len(drives) != int(header["drives"]) or len(slots) != int(header["slots"]):
        raise MtxOutputError(f"mtx status header announces {header['drives']} drives and {header['slots']} slots, "
                             f"the output lists {len(drives)} and {len(slots)}: truncated output?")
    return MtxStatus(header["dev"], tuple(drives), tuple(slots), tuple(noise))


# ---------------------------------------------------------------------------------------------------------------
# Errors from mtx's messages

# Sense key names as mtx's PrintRequestSense prints them (index = key).
MTX_SENSE_KEYS = ("No Sense", "Recovered Error", "Not Ready", "Medium Error", "Hardware Error", "Illegal Request",
                  "Unit Attention", "Data Protect", "Blank Check", "0x09", "0x0a", "Aborted Command", "0x0c",
                  "Volume Overflow", "Miscompare", "0x0f")
_SENSE_KEY = {name: key for key, name in enumerate(MTX_SENSE_KEYS)}
_DUMP = re.compile(r"^mtx: Request Sense: (?P<name>[^=]+?) ?= ?(?P<value>.*)$")
# mtx refusals that it decides from its cached status, before any MOVE MEDIUM (reference/mtx.md §4).
_REFUSALS: tuple[tuple[re.Pattern[str], type[ScsiError]], ...] = (
    (re.compile(r"^Drive \d+ Full \(Storage Element \d+ loaded\)$"), DestinationFull),
    (re.compile(r"^Storage Element \d+ is Already Full$"), DestinationFull),
    (re.compile(r"^Destination Element Address \d+ is Already Full$"), DestinationFull),
    (re.compile(r"^Data Transfer Element \d+ is Empty$"), SourceEmpty),
    (re.compile(r"^Source Element Address \d+ is Empty$"), SourceEmpty),
    (re.compile(r"^Cleaning Cartridge Installed and Ejected$"), CleaningCartridge),
)


def sense_from_dump(lines: list[str]) -> SenseData | None:
    """The sense data mtx printed as `mtx: Request Sense: ...` lines, or None when it printed none."""
    fields = {m["name"]: m["value"] for line in lines if (m := _DUMP.match(line))}
    if "Sense Key" not in fields:
        return None
    name = fields["Sense Key"]
    key = _SENSE_KEY.get(name, 0)

    def hex_field(name: str) -> int:
        try:
            return int(fields.get(name, "0"), 16)
        except ValueError:
            return 0

    return SenseData(key=key, asc=hex_field("Additional Sense Code"), ascq=hex_field("Additional Sense Qualifier"),
                     filemark=fields.get("FileMark") == "yes", eom=fields.get("EOM") == "yes",
                     ili=fields.get("ILI") == "yes")


def error_from_output(output: str, command: str, device: str) -> DeviceError:
    """The exception for a failed mtx run, from its merged output."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    message = next((line for line in reversed(lines) if not line.startswith("mtx: Request Sense:")), "")
    for line in lines:
        for pattern, cls in _REFUSALS:
            if pattern.match(line):
                return cls(sense_for(cls), command, device, text=f"mtx: {line}")
    if any(t in line for line in lines for t in ("cannot open SCSI device", "is not an sg device")):
        return DeviceNotFound(f"{device}: {command}: mtx: {message}")
    sense = sense_from_dump(lines)
    if sense is not None:
        typed = error_for(sense, command, device)
        return type(typed)(sense, command, device, text=f"mtx: {message}", hint=typed.hint)
    return MtxError(f"{device}: {command}: mtx failed: {message or 'no message'}")


# ---------------------------------------------------------------------------------------------------------------
# The changer

NO_ADDRESS = -1  # `Element.address` through mtx: `mtx status` prints slot numbers, never element addresses


def inventory_from_status(status: MtxStatus) -> Inventory:
    """`MediaChanger`'s Inventory from mtx's status: the same numbering (slots 1..S, mail slots S+1.., drives 0..),
    barcodes of full elements only, and mtx's own source slot for each full drive (reference/mtx.md §3)."""

    def element(kind: str, number: int, full: bool, tag: str | None, alt: str | None, **extra) -> Element:
        return Element(kind=kind, address=NO_ADDRESS, number=number, full=full, barcode=tag if full else None,
                       alternate_barcode=alt if full else None, **extra)

    slots = tuple(element(KIND_SLOT, s.number, s.full, s.volume_tag, s.alternate_tag) for s in status.storage_slots)
    mailslots = tuple(element(KIND_MAILSLOT, s.number, s.full, s.volume_tag, s.alternate_tag, mailslot_number=i + 1)
                      for i, s in enumerate(status.import_export_slots))
    drives = tuple(element(KIND_DRIVE, d.number, d.full, d.volume_tag, d.alternate_tag,
                           source_slot=d.source_slot if d.full else None) for d in status.drives)
    return Inventory(slots=slots, drives=drives, mailslots=mailslots, transports=())


def mtx_device(url: str) -> str:
    """The `-f` argument of `mtx://DEVICE`: a path (`mtx:///dev/sg3`) or, for tapeline-mtx, a device URL
    (`mtx://stream+socket://127.0.0.1:7101/changer`)."""
    device = url[len("mtx://"):] if url.startswith("mtx://") else ""
    if (device.startswith("/") and len(device) > 1) or "://" in device:
        return device
    raise DeviceNotFound(f"{url!r} is not an mtx URL: give one like mtx:///dev/sg3 (three slashes), or "
                         f"mtx://stream+socket://HOST:PORT/changer when TAPELINE_MTX is tapeline-mtx")


def find_mtx() -> str:
    """The mtx binary: `$TAPELINE_MTX`, else `mtx` on PATH."""
    chosen = os.environ.get("TAPELINE_MTX")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise DeviceNotFound(f"TAPELINE_MTX={chosen} is not an executable file; fix the variable or unset it "
                                 f"to use mtx from PATH")
        return chosen
    found = shutil.which("mtx") or shutil.which("mtx", path="/usr/sbin:/sbin")
    if found is None:
        raise DeviceNotFound("mtx is not installed: `apt-get install mtx`, or set TAPELINE_MTX to its path")
    return found


class MtxChanger:
    """A changer at `mtx://DEVICE`, driven by running mtx, with `MediaChanger`'s methods and results."""

    def __init__(self, url: str, label: str | None = None) -> None:
        self.url = url
        self.device = mtx_device(url)
        self.label = label or url
        self.mtx = find_mtx()
        self.last_inventory: Inventory | None = None

    def __enter__(self) -> MtxChanger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, *args: str, what: str) -> str:
        argv = [self.mtx, "-f", self.device, *args]
        try:
            run = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=MTX_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise MtxError(f"{self.label}: {what}: mtx gave no answer within {MTX_TIMEOUT:g} s; check the library "
                           f"(door, robot) and its log") from None
        except OSError as exc:
            raise MtxError(f"{self.label}: {what}: cannot run {self.mtx}: {exc.strerror}") from None
        if run.returncode != 0:
            raise error_from_output(run.stderr + run.stdout, what, self.label)
        return run.stdout + run.stderr

    def status(self) -> MtxStatus:
        """`mtx status` as mtx reports it (with any stderr lines in `noise`)."""
        return parse_mtx_status(self._run("status", what="status"))

    def inventory(self) -> Inventory:
        """`mtx status`: drives, slots and mail slots with their barcodes, numbered as mtx numbers them."""
        self.last_inventory = inventory_from_status(self.status())
        return self.last_inventory

    def _current(self) -> Inventory:
        return self.last_inventory or self.inventory()

    def _act(self, *args: str, what: str) -> Inventory:
        """Run one mtx command, then read the inventory again, whether the command succeeded or not (a failed
        refresh never hides the command's own error)."""
        try:
            self._run(*args, what=what)
        except DeviceError:
            try:
                self.inventory()
            except DeviceError:
                self.last_inventory = None
            raise
        return self.inventory()

    def initialize(self) -> Inventory:
        """`mtx inventory` (INITIALIZE ELEMENT STATUS, a barcode rescan), then a fresh inventory."""
        return self._act("inventory", what="inventory")

    def load(self, slot: int, drive: int) -> Inventory:
        inv = self._current()
        # Numbers the library lacks get MediaChanger's refusal (from Inventory), not mtx's wording.
        inv.slot(slot)
        inv.drive(drive)
        return self._act("load", str(slot), str(drive), what=f"load slot {slot} into drive {drive}")

    def unload(self, drive: int, slot: int | None = None) -> Inventory:
        """Drive to `slot`, or to the slot mtx computes as the cartridge's source (reference/mtx.md §3)."""
        slot = unload_slot(self._current(), drive, slot, self.label)
        return self._act("unload", str(slot), str(drive), what=f"unload drive {drive} into slot {slot}")

    def transfer(self, source_slot: int, destination_slot: int) -> Inventory:
        inv = self._current()
        inv.slot(source_slot)
        inv.slot(destination_slot)
        return self._act("transfer", str(source_slot), str(destination_slot),
                         what=f"transfer slot {source_slot} to slot {destination_slot}")

    def import_(self, mailslot: int, slot: int | None = None) -> Inventory:
        """Mail slot (1..) to a storage slot, by default the first empty one: an mtx transfer."""
        inv = self._current()
        source = inv.mailslot(mailslot)
        destination = import_destination(inv, slot, self.label)
        return self.transfer(source.number, destination.number)

    def export(self, slot: int, mailslot: int | None = None) -> Inventory:
        """Storage slot (mtx number) to a mail slot (1..), by default the first empty one: an mtx transfer."""
        inv = self._current()
        destination = export_destination(inv, mailslot, self.label)
        return self.transfer(inv.slot(slot).number, destination.number)

    def close(self) -> None:
        """Nothing stays open between mtx runs."""
