"""Drive leases: one job's use of one drive, from `MediaService.acquire_drive` to the end of its `with` block.

Invariants:
- A drive has at most one lease at a time in this process; the service hands them out (service.py).
- `mount(barcode)` leaves the drive holding that cartridge, ready, in fixed-block mode (the service's block size),
  rewound, its label read: it unloads what the drive held to its home slot first, refuses a cartridge that is not
  in the library (`CartridgeOutside`, naming where it is) or that another lease holds, counts the mount in the
  catalog and refuses a cartridge whose label names another barcode (`LabelMismatch`, both barcodes named). A
  blank tape reads as None; data that is not a Tapeline label raises `ForeignCartridge` (never written over).
- `failed(err)` / `succeeded()` count once per lease: a drive whose jobs fail `drive_failures` times in a row is
  taken out of service with an alert; an operator puts it back (`tapeline drive enable`).
- Every changer command runs under the library's lock; the drive's own commands need none (one lease, one user).
"""

from __future__ import annotations

import logging
import string
from datetime import datetime, timezone

from appliance.catalog import media as cat
from appliance.catalog.models import Drive
from appliance.errors import Conflict, TapelineError
from appliance.media.format import NotOurLabel, VolumeLabel, decode_volume_label
from appliance.media.library import LibraryHandle, where
from appliance.ops import alerts
from drivers.changer import KIND_DRIVE, KIND_MAILSLOT
from drivers.errors import DeviceError
from drivers.scsi.sense import (BlankCheck, FilemarkDetected, IncorrectLength, LogicalUnitOffline, NotReady,
                                 ScsiError)
from drivers.tape import TapeDrive

log = logging.getLogger("tapeline.media")

MAX_BLOCK = 8 * 1024 * 1024  # the largest block an LTO drive writes
READY_TIMEOUT = 300.0  # seconds for a loaded cartridge to become ready (a real LTO load takes under two minutes)


class CartridgeOutside(Conflict):
    """The cartridge is not where a drive can reach it (outside the library, or in a mail slot)."""

    def __init__(self, barcode: str, location: str, library: str):
        self.barcode, self.location = barcode, location
        super().__init__(f"cartridge {barcode} is not in library '{library}' ({location})",
                         f"put it into the library and run `tapeline library inventory {library}`")


class LoadFailed(TapelineError):
    """The changer could not load the cartridge into the drive (it stays in its slot)."""

    def __init__(self, barcode: str, slot: int, drive: str, cause: str):
        self.barcode = barcode
        super().__init__(f"{drive}: loading cartridge {barcode} from slot {slot} failed ({cause})",
                         "check the cartridge and the drive at the library; the cartridge stays in its slot")


class DriveOffline(TapelineError):
    """The drive reports itself offline (02/04/12): waiting does not help, another drive might."""

    transient = True  # the job engine retries (an operator may bring it online meanwhile)

    def __init__(self, drive: str):
        super().__init__(f"{drive} is offline", "bring it online at the library (or check the library for a "
                         "fault); jobs use the other drives meanwhile")


class ForeignCartridge(Conflict):
    """The tape holds data Tapeline did not write."""

    def __init__(self, barcode: str, what: str):
        self.barcode, self.what = barcode, what
        super().__init__(f"cartridge {barcode} holds data Tapeline did not write ({what}); it is never written",
                         f"if that data may be lost, relabel it with `tapeline media label {barcode} --pool POOL "
                         "--force`")


class LabelMismatch(Conflict):
    """The cartridge's barcode and its on-tape label disagree: the wrong cartridge is in the drive."""

    def __init__(self, barcode: str, label_barcode: str, drive: str):
        self.barcode, self.label_barcode = barcode, label_barcode
        super().__init__(f"{drive} was loaded with cartridge {barcode} (barcode), but its tape label says "
                         f"{label_barcode}: refused", f"check the barcode sticker of {barcode}; relabel it with "
                         f"`tapeline media label {barcode} --pool POOL --force` once sure")


def why_unusable(exc: TapelineError) -> str:
    """What a refused cartridge holds, for its note: the foreign data's description, else the refusal."""
    return getattr(exc, "what", None) or exc.message


def describe_data(block: bytes) -> str:
    """What a person would see of a foreign tape's first block."""
    shown = "".join(c if c in string.printable and c not in "\r\x0b\x0c" else "." for c in
                    block[:48].rstrip(b"\0").decode("latin-1")).replace("\n", " ").strip()
    return f"its first block begins {shown!r}" if shown.strip(".") else "binary data"


class DriveLease:
    def __init__(self, service, handle: LibraryHandle, row: Drive, job_id: int | None):
        self.service = service
        self.handle = handle
        self.row = row
        self.number = row.number
        self.job_id = job_id
        self.name = f"drive {row.number} of library '{handle.name}'"
        self.drive = TapeDrive(row.url, label=self.name)
        self.barcode: str | None = None  # the cartridge this lease loaded or found in the drive
        self.shown = "?"  # how messages name the loaded cartridge (its barcode, or "in slot N")
        self._counted = False

    # -- life -------------------------------------------------------------------------------------------------

    def __enter__(self) -> DriveLease:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.service.release(self, exc)

    def close(self) -> None:
        self.drive.close()

    # -- cartridges -------------------------------------------------------------------------------------------

    def mount(self, barcode: str) -> VolumeLabel | None:
        """Load `barcode` into this drive and read its label (see the module's invariants)."""
        catalog = self.service.catalog
        cat.get_cartridge(catalog, barcode)  # NotFound names the fix
        handle = self.handle
        with handle.lock:
            inv = handle.current()
            found = inv.find(barcode)
            if found is None or found.kind == KIND_MAILSLOT:
                location = ("outside the library" if found is None else
                            f"mail slot {found.mailslot_number}: import it into a slot")
                kind, number = ("outside", None) if found is None else where(found)
                cat.update_cartridge(catalog, barcode, location_kind=kind, location_number=number)
                raise CartridgeOutside(barcode, location, handle.name)
            if not (found.kind == KIND_DRIVE and found.number == self.number):
                if found.kind == KIND_DRIVE:
                    self.service.take_from_drive(handle, found.number, barcode)
                    found = handle.current().find(barcode)
                self._load_locked(found.number, barcode)
        self.barcode = self.shown = barcode
        self.drive.cartridge = barcode
        self._ready(barcode)
        cat.count_mount(catalog, barcode, self.number, _now())
        label = self.read_label()
        if label is not None and label.barcode != barcode:
            raise LabelMismatch(barcode, label.barcode, self.name)
        return label

    def mount_slot(self, slot: int) -> VolumeLabel | None:
        """Load the cartridge in `slot` (one whose barcode the changer cannot read) and read its label, as `mount`
        does by barcode; a label is not checked against any barcode (there is none to check)."""
        with self.handle.lock:
            self._load_locked(slot, f"in slot {slot}")
        self.barcode = None
        self._ready(f"in slot {slot}")
        self.shown = f"in slot {slot}"
        return self.read_label()

    def _load_locked(self, slot: int, what: str) -> None:
        if self.handle.current().drive(self.number).full:
            self._unload_locked()
        try:
            self.handle.changer.load(slot, self.number)
        except DeviceError as exc:
            self.handle.reset()
            if self._offline():  # a library reports a load into an offline drive as a load failure
                raise DriveOffline(self.name) from None
            raise LoadFailed(what, slot, self.name, str(exc)) from None

    def _ready(self, what: str) -> None:
        try:
            self.drive.wait_ready(READY_TIMEOUT)
            self.drive.set_block_size(self.service.block_size)
        except LogicalUnitOffline:
            raise DriveOffline(self.name) from None
        except ScsiError as exc:
            raise TapelineError(f"{self.name}: cartridge {what} did not become ready ({exc.text})",
                                exc.hint or "check the drive at the library, then retry") from None

    def _offline(self) -> bool:
        try:
            self.drive.test_unit_ready()
        except LogicalUnitOffline:
            return True
        except (ScsiError, DeviceError):
            pass
        return False

    def read_label(self) -> VolumeLabel | None:
        """Rewind and read file 0: the label, None on a blank tape; ForeignCartridge for anything else."""
        self.drive.rewind()
        try:
            block = self.drive.read(self.service.block_size)
        except BlankCheck:
            return None
        except FilemarkDetected:
            raise ForeignCartridge(self.shown, "its first tape file is empty") from None
        except IncorrectLength:
            raise ForeignCartridge(self.shown, self._describe_first_block()) from None
        try:
            return decode_volume_label(block)
        except NotOurLabel:
            raise ForeignCartridge(self.shown, describe_data(block)) from None

    def _describe_first_block(self) -> str:
        """A first block of another size than ours: read it in variable-block mode to say what it holds."""
        try:
            self.drive.set_block_size(0)
            self.drive.rewind()
            block = self.drive.read(MAX_BLOCK)
        except ScsiError as exc:
            return f"its first block is not a {self.service.block_size}-byte block ({exc.text})"
        finally:
            self.drive.set_block_size(self.service.block_size)
        return f"{describe_data(block)}, in {len(block)}-byte blocks"

    def at_file(self, number: int) -> None:
        """Position at the start of tape file `number` (0 = the label)."""
        self.drive.rewind()
        if number:
            self.drive.space_filemarks(number)

    def unmount(self) -> None:
        """Eject the cartridge and put it back in its home slot."""
        with self.handle.lock:
            self._unload_locked()

    def _unload_locked(self) -> None:
        inv = self.handle.current()
        element = inv.drive(self.number)
        if not element.full:
            self.barcode = None
            return
        try:
            self.drive.unload()
        except NotReady:
            pass  # already ejected, or a cleaning cartridge: the changer takes it as it is
        try:
            inv = self.handle.changer.unload(self.number)
        except DeviceError as exc:
            self.handle.reset()
            raise TapelineError(f"{self.name}: unloading cartridge {element.barcode} failed ({exc})",
                                "check the drive at the library") from None
        if element.barcode:
            back = inv.find(element.barcode)
            if back is not None:
                kind, number = where(back)
                cat.update_cartridge(self.service.catalog, element.barcode, location_kind=kind,
                                     location_number=number)
        self.barcode = None
        self.drive.cartridge = None

    # -- the drive's record -----------------------------------------------------------------------------------

    def failed(self, err: BaseException | str) -> None:
        """The job failed on this drive (counted once per lease); `drive_failures` in a row take it out of service."""
        if self._counted:
            return
        self._counted = True
        catalog = self.service.catalog
        row = cat.update_drive(catalog, self.row.id, failures_in_row=self.row.failures_in_row + 1)
        self.row = row
        limit = self.service.drive_failures
        if row.failures_in_row >= limit and row.enabled:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            self.row = cat.update_drive(catalog, row.id, enabled=False, disabled_reason=reason)
            alerts.raise_alert(catalog, "error", f"{self.name} taken out of service after {limit} failed jobs in a "
                               f"row (last: {reason})", f"check the drive (clean it: `tapeline drive clean "
                               f"{self.handle.name} {self.number}`), then put it back with `tapeline drive enable "
                               f"{self.handle.name} {self.number}`", job_id=self.job_id,
                               about=("drive", f"{self.handle.name} {self.number}"))

    def succeeded(self) -> None:
        if self._counted:
            return
        self._counted = True
        if self.row.failures_in_row:
            self.row = cat.update_drive(self.service.catalog, self.row.id, failures_in_row=0)


def _now() -> datetime:
    return datetime.now(timezone.utc)
