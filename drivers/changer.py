"""`MediaChanger`: a SCSI medium changer (SMC-3) over any transport, with the operations a backup application needs.

Public API:

    MediaChanger(url_or_transport, label=None)       label names the changer in every error ("library", "L700"); by
                                                     default its INQUIRY vendor and product and its URL
        .inventory(barcodes=True, identifiers=False) -> Inventory   one READ ELEMENT STATUS per element type;
                                                     identifiers: the drives' device ids too (DVCID)
        .move(src_addr, dst_addr) -> Inventory        MOVE MEDIUM by element address; status is refreshed after
        .load(slot, drive) / .unload(drive, slot=None) / .transfer(slot, slot)   mtx numbering (slots 1.., drives 0..)
        .import_(mailslot, slot=None) / .export(slot, mailslot=None)            mail slots numbered 1..
        .load_by_barcode(barcode, drive)              refuses cleaning cartridges and mail slots, saying which rule
        .clean(drive, slot=None)                      loads a cleaning cartridge (02/30/03 = cleaned), puts it back
        .initialize()  .lock() / .unlock()  .inquiry()  .serial()  .element_map()
    Inventory: .slots .drives .mailslots .transports (tuples of Element), .find(barcode), .by_address(addr),
        .slot(n), .drive(n), .mailslot(n), .empty_slots()
    Element: kind, address, number, full, barcode, source (address), source_slot (mtx number), exception, ...
    ChangerRefusal(DeviceError)                       a request the driver will not send, with the rule and the fix
    unload_slot(inv, drive, slot, label)  import_destination(inv, slot, label)  export_destination(inv, mailslot, label)
                                                      where an unload, import or export goes, and its refusals; the
                                                      same for MediaChanger and MtxChanger (drivers/mtx.py)

Invariants:
- After every move, whether it succeeded or failed, the inventory is read again (`last_inventory`), then the move's
  error (if any) is raised: the caller never acts on a stale picture of the library (STYLE.md habit 8).
- UNIT ATTENTION (medium changed, reset, mail slot accessed) is retried up to `UA_RETRIES` times, as mtx does; the
  UNIT ATTENTION itself clears the condition on the device (`drivers.device.ScsiDevice`, shared with `TapeDrive`).
- `source_slot` of a full drive follows mtx exactly (reference/mtx.md §3): the slot whose address is the drive's
  source if that slot is empty, else the next empty storage slot in order, else None. `unload(drive)` uses it.
- Errors are `drivers.scsi.sense` exceptions naming this changer's label, the command and the cartridge concerned.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.device import ScsiDevice
from drivers.errors import DeviceError, DeviceNotFound
from drivers.scsi import smc, spc
from drivers.scsi.cdb import Cdb
from drivers.scsi.sense import CleaningCartridge, IllegalRequest
from drivers.scsi.smc import ElementAddressAssignment, ElementStatus
from drivers.transport.base import DEFAULT_TIMEOUT, Transport

INITIALIZE_TIMEOUT = 1800.0  # mtx allows 30 minutes for INITIALIZE ELEMENT STATUS
SLACK_DESCRIPTORS = 8  # room for elements the page 0x1D count did not mention

KIND_TRANSPORT, KIND_SLOT, KIND_MAILSLOT, KIND_DRIVE = "transport", "slot", "mailslot", "drive"
_KINDS = {
    smc.ELEMENT_TRANSPORT: KIND_TRANSPORT,
    smc.ELEMENT_STORAGE: KIND_SLOT,
    smc.ELEMENT_IMPORT_EXPORT: KIND_MAILSLOT,
    smc.ELEMENT_DATA_TRANSFER: KIND_DRIVE,
}
CLEANING_PREFIX = "CLN"


class ChangerRefusal(DeviceError):
    """The driver refused a request because a rule forbids it; the message names the rule and what to do."""


@dataclass(frozen=True, slots=True)
class Element:
    kind: str  # transport, slot, mailslot, drive
    address: int
    number: int  # mtx numbering: slots 1..S, mail slots S+1..S+IE (mtx) / `mailslot_number` 1..IE; drives 0..D-1
    full: bool
    barcode: str | None = None
    alternate_barcode: str | None = None
    source: int | None = None  # element address the medium came from, when the device reports one
    source_slot: int | None = None  # drives: the mtx slot number an unload without a slot goes to
    exception: str | None = None  # "83/04" when the element reports EXCEPT
    access: bool = True
    impexp: bool = False  # mail slot: placed by an operator
    medium_type: int = 0
    device_id: str | None = None
    mailslot_number: int | None = None  # mail slots: 1..IE

    @property
    def cleaning(self) -> bool:
        return self.medium_type == smc.MEDIUM_CLEANING or (self.barcode or "").startswith(CLEANING_PREFIX)


@dataclass(frozen=True, slots=True)
class Inventory:
    slots: tuple[Element, ...]
    drives: tuple[Element, ...]
    mailslots: tuple[Element, ...]
    transports: tuple[Element, ...]

    def all(self) -> tuple[Element, ...]:
        return self.transports + self.slots + self.mailslots + self.drives

    def by_address(self, address: int) -> Element | None:
        return next((e for e in self.all() if e.address == address), None)

    def find(self, barcode: str) -> Element | None:
        return next((e for e in self.drives + self.slots + self.mailslots + self.transports if e.barcode == barcode), None)

    def slot(self, number: int) -> Element:
        """Storage slot `number` in mtx numbering (1..S; S+1.. are the mail slots, as mtx counts them)."""
        every = self.slots + self.mailslots
        if not 1 <= number <= len(every):
            raise ChangerRefusal(f"slot {number} does not exist: this library has slots 1..{len(every)}")
        return every[number - 1]

    def drive(self, number: int) -> Element:
        if not 0 <= number < len(self.drives):
            raise ChangerRefusal(f"drive {number} does not exist: this library has drives 0..{len(self.drives) - 1}")
        return self.drives[number]

    def mailslot(self, number: int) -> Element:
        if not 1 <= number <= len(self.mailslots):
            raise ChangerRefusal(
                f"mail slot {number} does not exist: this library has mail slots 1..{len(self.mailslots)}"
                if self.mailslots
                else f"mail slot {number} does not exist: this library has no mail slots"
            )
        return self.mailslots[number - 1]

    def empty_slots(self) -> tuple[Element, ...]:
        return tuple(e for e in self.slots if not e.full)


def build_inventory(statuses: list[ElementStatus] | tuple[ElementStatus, ...]) -> Inventory:
    """Number the elements as mtx does and work out each full drive's home slot (reference/mtx.md §2-3)."""
    by_type: dict[int, list[ElementStatus]] = {t: [] for t in _KINDS}
    for s in statuses:
        by_type.setdefault(s.element_type, []).append(s)
    slots_raw = by_type[smc.ELEMENT_STORAGE]
    mail_raw = by_type[smc.ELEMENT_IMPORT_EXPORT]

    def element(s: ElementStatus, number: int, **extra) -> Element:
        return Element(
            kind=_KINDS[s.element_type],
            address=s.address,
            number=number,
            full=s.full,
            barcode=s.primary_tag if s.full else None,
            alternate_barcode=s.alternate_tag if s.full else None,
            source=s.source if (s.svalid or s.source) and s.full else None,
            exception=f"{s.asc:02X}/{s.ascq:02X}" if s.except_ else None,
            access=s.access,
            impexp=s.impexp,
            medium_type=s.medium_type,
            device_id=s.device_id,
            **extra,
        )

    slots = tuple(element(s, i + 1) for i, s in enumerate(slots_raw))
    mailslots = tuple(
        element(s, len(slots_raw) + i + 1, mailslot_number=i + 1) for i, s in enumerate(mail_raw)
    )
    # mtx pass 1: the source address names an empty slot (mail slots included); pass 2: the next empty storage slot.
    empty_by_address = {e.address: e.number for e in slots + mailslots if not e.full}
    free_storage = [e.number for e in slots if not e.full]
    homes: list[int | None] = []
    for s in by_type[smc.ELEMENT_DATA_TRANSFER]:
        homes.append(empty_by_address.get(s.source) if s.full else None)
    for i, s in enumerate(by_type[smc.ELEMENT_DATA_TRANSFER]):
        if s.full and homes[i] is None:
            homes[i] = free_storage.pop(0) if free_storage else None
    drives = tuple(
        element(s, i, source_slot=homes[i]) for i, s in enumerate(by_type[smc.ELEMENT_DATA_TRANSFER])
    )
    transports = tuple(element(s, i) for i, s in enumerate(by_type[smc.ELEMENT_TRANSPORT]))
    return Inventory(slots, drives, mailslots, transports)


# --- where an unload, an import and an export go: shared with MtxChanger (drivers/mtx.py) -------------------------


def unload_slot(inv: Inventory, drive: int, slot: int | None, label: str) -> int:
    """The slot (mtx number) an unload of `drive` goes to: `slot`, or the drive's home slot worked out as mtx does.
    Refuses an empty drive, a drive without a home slot when no slot is given, and a slot the library lacks."""
    dte = inv.drive(drive)
    if not dte.full:
        raise ChangerRefusal(f"{label}: drive {drive} is empty: nothing to unload")
    if slot is None:
        if dte.source_slot is None:
            raise ChangerRefusal(f"{label}: drive {drive} has no home slot and no slot is empty: give a slot")
        slot = dte.source_slot
    inv.slot(slot)
    return slot


def import_destination(inv: Inventory, slot: int | None, label: str) -> Element:
    """Storage slot `slot`, or the first empty storage slot."""
    return inv.slot(slot) if slot is not None else _first_empty(inv.empty_slots(), "storage slot", label)


def export_destination(inv: Inventory, mailslot: int | None, label: str) -> Element:
    """Mail slot `mailslot` (1..), or the first empty mail slot."""
    if mailslot is not None:
        return inv.mailslot(mailslot)
    return _first_empty(tuple(m for m in inv.mailslots if not m.full), "mail slot", label)


def _first_empty(candidates: tuple[Element, ...], what: str, label: str) -> Element:
    if not candidates:
        raise ChangerRefusal(f"{label}: no empty {what}: free one first")
    return candidates[0]


class MediaChanger(ScsiDevice):
    def __init__(self, device: str | Transport, label: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(device, label, timeout)
        self.last_inventory: Inventory | None = None
        self._map: ElementAddressAssignment | None = None
        self._map_known = False

    # --- one command ------------------------------------------------------------------------------------------

    def _run(
        self,
        table: Cdb,
        cdb: bytes,
        data_in_len: int = 0,
        data_out: bytes = b"",
        timeout: float | None = None,
        cartridge: str | None = None,
    ) -> bytes:
        return bytes(self._command(table, cdb, data_in_len, data_out, timeout, cartridge).data)

    def _describe(self) -> str | None:
        inq = self._identity()
        if inq is None:
            return None
        name = " ".join(p for p in (inq.vendor, inq.product) if p) or "changer"
        return f"{name} ({self.transport.url})"

    # --- what the library is ----------------------------------------------------------------------------------

    def inquiry(self) -> spc.InquiryData:
        return spc.InquiryData.decode(self._run(spc.INQUIRY, spc.INQUIRY.encode(alloc=96), 96))

    def serial(self) -> str:
        data = self._run(
            spc.INQUIRY, spc.INQUIRY.encode(evpd=1, page_code=spc.VPD_UNIT_SERIAL_NUMBER, alloc=255), 255
        )
        return spc.decode_vpd_serial(data)

    def element_map(self) -> ElementAddressAssignment:
        """MODE SENSE page 0x1D: where each element type's addresses start and how many there are."""
        alloc = 0xFF
        data = self._run(
            spc.MODE_SENSE_6,
            spc.MODE_SENSE_6.encode(dbd=1, page_code=smc.PAGE_ELEMENT_ADDRESS_ASSIGNMENT, alloc=alloc),
            alloc,
        )
        page = spc.ModeData.decode(data).page(smc.PAGE_ELEMENT_ADDRESS_ASSIGNMENT)
        if page is None:
            raise DeviceError(f"{self.label}: MODE SENSE: the changer returned no element address page (0x1D)")
        return ElementAddressAssignment.decode(page)

    def _element_map_or_none(self) -> ElementAddressAssignment | None:
        if not self._map_known:
            try:
                self._map = self.element_map()
            except IllegalRequest:
                self._map = None  # no page 0x1D: read every element type in one request instead
            self._map_known = True
        return self._map

    def inventory(self, barcodes: bool = True, identifiers: bool = False) -> Inventory:
        """Every element's status, one READ ELEMENT STATUS per type sized from page 0x1D (re-issued if short);
        with `identifiers`, each drive's device identifier (DVCID: vendor, product and serial) in `device_id`."""
        emap = self._element_map_or_none()
        if emap is None:
            statuses = self._read_elements(smc.ELEMENT_ALL, 0, 0xFFFF, barcodes, 64, identifiers)
        else:
            statuses = []
            for kind, first, count in (
                (smc.ELEMENT_TRANSPORT, emap.transport_first, emap.transport_count),
                (smc.ELEMENT_STORAGE, emap.storage_first, emap.storage_count),
                (smc.ELEMENT_IMPORT_EXPORT, emap.import_export_first, emap.import_export_count),
                (smc.ELEMENT_DATA_TRANSFER, emap.data_transfer_first, emap.data_transfer_count),
            ):
                if count:
                    statuses += self._read_elements(kind, first, count, barcodes, count + SLACK_DESCRIPTORS,
                                                    identifiers and kind == smc.ELEMENT_DATA_TRANSFER)
        self.last_inventory = build_inventory(statuses)
        return self.last_inventory

    def _read_elements(self, kind: int, first: int, count: int, barcodes: bool, expect: int,
                       dvcid: bool = False) -> list[ElementStatus]:
        size = smc.descriptor_length(smc.ELEMENT_DATA_TRANSFER, barcodes, False, None) + 64  # room for device ids
        alloc = min(0xFFFFFF, smc.ELEMENT_STATUS_HEADER + 4 * smc.PAGE_HEADER + expect * size)
        while True:
            cdb = smc.READ_ELEMENT_STATUS.encode(
                voltag=int(barcodes), element_type=kind, start=first, count=min(count, 0xFFFF), alloc=alloc,
                dvcid=int(dvcid),
            )
            report = smc.decode_element_status(self._run(smc.READ_ELEMENT_STATUS, cdb, alloc))
            if report.complete or report.needed_alloc <= alloc or alloc == 0xFFFFFF:
                return list(report.elements)
            alloc = min(0xFFFFFF, report.needed_alloc)

    # --- moving cartridges ------------------------------------------------------------------------------------

    def _current(self) -> Inventory:
        return self.last_inventory or self.inventory()

    def move(self, source: int, destination: int) -> Inventory:
        """MOVE MEDIUM between element addresses; the inventory is refreshed afterwards, success or failure."""
        before = self._current()
        held = before.by_address(source)
        cartridge = held.barcode if held is not None else None
        transport = before.transports[0].address if before.transports else 0
        cdb = smc.MOVE_MEDIUM.encode(transport=transport, source=source, destination=destination)
        try:
            self._run(smc.MOVE_MEDIUM, cdb, cartridge=cartridge)
        finally:
            self.inventory()
        return self.last_inventory  # type: ignore[return-value]

    def load(self, slot: int, drive: int) -> Inventory:
        inv = self._current()
        return self.move(inv.slot(slot).address, inv.drive(drive).address)

    def unload(self, drive: int, slot: int | None = None) -> Inventory:
        """Drive to `slot`, or to the drive's home slot worked out as mtx does."""
        inv = self._current()
        slot = unload_slot(inv, drive, slot, self.label)
        return self.move(inv.drive(drive).address, inv.slot(slot).address)

    def transfer(self, source_slot: int, destination_slot: int) -> Inventory:
        inv = self._current()
        return self.move(inv.slot(source_slot).address, inv.slot(destination_slot).address)

    def import_(self, mailslot: int, slot: int | None = None) -> Inventory:
        """Mail slot (1..) to a storage slot, by default the first empty one."""
        inv = self._current()
        src = inv.mailslot(mailslot)
        dst = import_destination(inv, slot, self.label)
        return self.move(src.address, dst.address)

    def export(self, slot: int, mailslot: int | None = None) -> Inventory:
        """Storage slot (mtx number) to a mail slot (1..), by default the first empty one."""
        inv = self._current()
        dst = export_destination(inv, mailslot, self.label)
        return self.move(inv.slot(slot).address, dst.address)

    def load_by_barcode(self, barcode: str, drive: int) -> Inventory:
        """Load the cartridge labelled `barcode` into `drive`, unloading whatever the drive holds first."""
        inv = self.inventory()
        dte = inv.drive(drive)
        if barcode.startswith(CLEANING_PREFIX):
            raise ChangerRefusal(
                f"{self.label}: {barcode} is a cleaning cartridge (barcode starts with {CLEANING_PREFIX}): "
                f"use clean({drive}) to clean the drive"
            )
        where = inv.find(barcode)
        if where is None:
            raise DeviceNotFound(f"{self.label}: no cartridge labelled {barcode} in the library: import it first")
        if where.cleaning:
            raise ChangerRefusal(
                f"{self.label}: {barcode} is a cleaning cartridge (medium type cleaning): use clean({drive})"
            )
        if where.kind == KIND_MAILSLOT:
            raise ChangerRefusal(
                f"{self.label}: {barcode} is in mail slot {where.mailslot_number}: import it into a storage slot first"
            )
        if where.kind == KIND_DRIVE:
            if where.number == drive:
                return inv
            raise ChangerRefusal(f"{self.label}: {barcode} is loaded in drive {where.number}: unload it first")
        if dte.full:
            inv = self.unload(drive)
            where = inv.find(barcode) or where
        return self.move(where.address, dte.address)

    def clean(self, drive: int, slot: int | None = None) -> Inventory:
        """Load a cleaning cartridge (the first CLN one, or `slot`) into `drive` and put it back where it came from.

        A drive answers a cleaning cartridge with 02/30/03 (cleaning cartridge installed): that is success here.
        """
        inv = self.inventory()
        if slot is None:
            cleaner = next((e for e in inv.slots if e.full and e.cleaning), None)
            if cleaner is None:
                raise ChangerRefusal(f"{self.label}: no cleaning cartridge in the storage slots: import one first")
        else:
            cleaner = inv.slot(slot)
        if inv.drive(drive).full:
            inv = self.unload(drive)
        try:
            inv = self.move(cleaner.address, inv.drive(drive).address)
        except CleaningCartridge:
            inv = self.last_inventory or self.inventory()
        if inv.drive(drive).full:
            inv = self.move(inv.drive(drive).address, cleaner.address)
        return inv

    # --- housekeeping -----------------------------------------------------------------------------------------

    def initialize(self) -> Inventory:
        """INITIALIZE ELEMENT STATUS (a barcode rescan), then a fresh inventory."""
        try:
            self._run(
                smc.INITIALIZE_ELEMENT_STATUS, smc.INITIALIZE_ELEMENT_STATUS.encode(), timeout=INITIALIZE_TIMEOUT
            )
        finally:
            self._map_known = False
            self.inventory()
        return self.last_inventory  # type: ignore[return-value]

    def lock(self) -> None:
        """PREVENT MEDIUM REMOVAL: the mail slot stays shut to operators."""
        self._prevent(spc.PREVENT_MEDIUM_REMOVAL)

    def unlock(self) -> None:
        self._prevent(spc.ALLOW_MEDIUM_REMOVAL)

    def _prevent(self, value: int) -> None:
        table = spc.PREVENT_ALLOW_MEDIUM_REMOVAL
        self._run(table, table.encode(prevent=value))

