"""mtx 1.3.12's view of a library: the INQUIRY, MODE SENSE and READ ELEMENT STATUS sequence of its `mtxl.c`, with
its parsing rules and quirks, for `tapeline-mtx` (reference/mtx.md §2-§3).

This is deliberately mtx's model, not `MediaChanger`'s: slot numbers count storage slots then I/E slots in the
order the library returned them, the source slot of a loaded drive is mtx's two-pass guess (SValid ignored), volume
tags are the raw 36-byte fields cut at the first byte outside 0x20-0x7F. Output built on it therefore matches real
mtx byte for byte, whatever the library (real or simulated) sends.

Every CDB comes from the `drivers.scsi` tables, every answer through their codecs (InquiryData, ModeData with
ElementAddressAssignment, decode_element_status, SenseData); what stays here is mtx's own logic on the decoded
values: which requests, the retries, the slot numbering, the source guess and the tag cut.

Invariants: every failure is `MtxFailure(sense, message)`: the caller prints the sense dump (when `sense` is not
None) and then the message, exactly as mtx does; nothing here prints, except the two stderr lines mtx itself
prints in the middle of the sequence (the Mode Sense fallback), through the `warn` callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.scsi import smc, spc
from drivers.scsi.cdb import Cdb
from drivers.scsi.sense import (
    INVALID_ELEMENT,
    KEY_ILLEGAL_REQUEST,
    KEY_NO_SENSE,
    KEY_RECOVERED_ERROR,
    KEY_UNIT_ATTENTION,
    SenseData,
)
from drivers.tools.common import MINUTE, Outcome, run
from drivers.transport.base import Transport

INQUIRY_LEN = 56  # sizeof(Inquiry_T)
MODE_SENSE_LEN = 136
REQUEST_SENSE_LEN = 18
DESCRIPTOR_LEN = 84  # sizeof(TransportElementDescriptor_T): mtx sizes its RES buffers with it
MIN_DESCRIPTOR_LEN = 12  # below this only MTE, storage and I/E descriptors are accepted (and never below 4)
SHORT_DESCRIPTOR_TYPES = (smc.ELEMENT_TRANSPORT, smc.ELEMENT_STORAGE, smc.ELEMENT_IMPORT_EXPORT)
# Element descriptor ASC/ASCQ (not sense) that mtx skips: ATL/Exabyte uninstalled slot, drive not installed.
SLOT_NOT_INSTALLED = (0x83, 0x02)
DRIVE_NOT_INSTALLED = (0x83, 0x04)
# RES refused because the loader wants allocation length 8: ILLEGAL REQUEST, field in the CDB, bit pointer 7.
ALLOC_BIT_POINTER = 7
# mtx's built-in counts when the element address assignment page cannot be read (mtx.h)
DEFAULT_ASSIGNMENT = smc.ElementAddressAssignment(0, 1, 0, 64, 0, 0, 0, 2)
DEFAULT_MAX_RES = smc.ELEMENT_STATUS_HEADER + 3 * smc.PAGE_HEADER + (64 + 2 + 1) * DESCRIPTOR_LEN  # mtx.h, 3 pages
CLEAR_UA_TRIES = 10


class MtxFailure(Exception):
    """mtx would stop here: print `sense` as a Request Sense dump (if given), then `message`, exit 1."""

    def __init__(self, message: str, sense: SenseData | None = None, dump: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.sense = sense
        self.dump = dump or sense is not None


@dataclass
class Flags:
    no_barcodes: bool = False
    no_attached: bool = False
    invert: bool = False
    invert2: bool = False
    eepos: int = 0
    altres: bool = False


def attached(inq: spc.InquiryData, flags: Flags) -> bool:
    """mtx's 'attached changer' mode (0xB4/0xA7 opcodes): MChngr set on a device that is not a changer."""
    return inq.mchngr and inq.pdt != spc.PDT_CHANGER and not flags.no_attached


@dataclass
class Slot:
    """A storage or I/E element in mtx's numbering; `full` is updated by load/unload."""

    address: int
    full: bool
    ie: bool
    pvol: bytes
    avol: bytes


@dataclass
class Drive:
    address: int
    full: bool
    source: int  # the raw source address while parsing; the slot index (-1 unknown) after the two passes
    pvol: bytes
    avol: bytes


@dataclass
class Elements:
    """mtx's ElementStatus_T: storage slots first, then I/E slots, each in the order the library returned them."""

    slots: list[Slot] = field(default_factory=list)
    drives: list[Drive] = field(default_factory=list)
    transport_address: int = 0
    ie_count: int = 0


def copy_barcode(raw: bytes) -> bytes:
    """mtx's copy_barcode: the 36-byte field up to the first byte below 0x20 or above 0x7F; spaces kept."""
    out = bytearray()
    for b in raw[:36]:
        if b < 0x20 or b > 0x7F:
            break
        out.append(b)
    return bytes(out)


def same_asc(sense: SenseData | None, asc_ascq: tuple[int, int]) -> bool:
    return sense is not None and (sense.asc, sense.ascq) == asc_ascq


def clear_unit_attention(dev: Transport) -> bool:
    """mtx's ClearUnitAttention: REQUEST SENSE until NO SENSE, at most 10 times."""
    for _ in range(CLEAR_UA_TRIES):
        outcome = run(dev, spc.REQUEST_SENSE.encode(alloc=REQUEST_SENSE_LEN), data_in_len=REQUEST_SENSE_LEN)
        if not outcome.ok:
            return False
        try:
            if SenseData.decode(outcome.data).key == KEY_NO_SENSE:
                return True
        except ValueError:  # nothing readable: nothing pending
            return True
    return False


def is_unit_attention(outcome: Outcome) -> bool:
    s = outcome.sense
    return s is not None and not s.deferred and s.key == KEY_UNIT_ATTENTION


def run_clearing_ua(dev: Transport, cdb: bytes, data_in_len: int = 0, timeout: float = 5 * MINUTE) -> Outcome:
    """One command, retried once after clearing a UNIT ATTENTION, as mtx does for MODE SENSE, INITIALIZE ELEMENT
    STATUS, ERASE and LOAD/UNLOAD."""
    outcome = run(dev, cdb, data_in_len=data_in_len, timeout=timeout)
    if outcome.ok or not is_unit_attention(outcome) or not clear_unit_attention(dev):
        return outcome
    return run(dev, cdb, data_in_len=data_in_len, timeout=timeout)


def inquiry(dev: Transport, failed: str = "INQUIRY command Failed") -> spc.InquiryData:
    outcome = run(dev, spc.INQUIRY.encode(alloc=INQUIRY_LEN), data_in_len=INQUIRY_LEN, timeout=30)
    if not outcome.ok:
        raise MtxFailure(failed, outcome.sense, dump=True)
    return spc.InquiryData.decode(outcome.data.ljust(INQUIRY_LEN, b"\0"))  # mtx's buffer is zeroed


def read_assignment(dev: Transport, warn: Callable[[SenseData | None, str], None]) -> smc.ElementAddressAssignment:
    """MODE SENSE(6) page 0x1D; mtx's defaults (after its two stderr lines, through `warn`) when it fails."""
    cdb = spc.MODE_SENSE_6.encode(dbd=1, page_code=smc.PAGE_ELEMENT_ADDRESS_ASSIGNMENT, alloc=MODE_SENSE_LEN)
    outcome = run_clearing_ua(dev, cdb, data_in_len=MODE_SENSE_LEN)
    if not outcome.ok:
        warn(outcome.sense, "Mode sense (0x1A) for Page 0x1D failed")
        return DEFAULT_ASSIGNMENT
    try:
        page = spc.ModeData.decode(outcome.data).page(smc.PAGE_ELEMENT_ADDRESS_ASSIGNMENT)
        return smc.ElementAddressAssignment.decode(page or b"")
    except ValueError:  # mtx reads its zeroed buffer: every count 0
        return smc.ElementAddressAssignment(0, 0, 0, 0, 0, 0, 0, 0)


def max_res(asg: smc.ElementAddressAssignment) -> int:
    """mtx's allocation length for one READ ELEMENT STATUS: header, four page headers, every element."""
    elements = asg.storage_count + asg.import_export_count + asg.data_transfer_count + asg.transport_count
    return smc.ELEMENT_STATUS_HEADER + 4 * smc.PAGE_HEADER + elements * DESCRIPTOR_LEN


def read_element_status_page(dev: Transport, inq: spc.InquiryData, flags: Flags, element_type: int, start: int,
                             count: int, alloc: int) -> Outcome:
    """mtx's SendElementStatusRequest: once more without volume tags after a failure (perhaps no barcode reader),
    with allocation length 8 for a loader that asks for it, and with the length a longer answer needs."""
    table: Cdb = smc.READ_ELEMENT_STATUS_ATTACHED if attached(inq, flags) else smc.READ_ELEMENT_STATUS

    def send(length: int) -> Outcome:
        fields = dict(element_type=element_type, start=start, count=count, alloc=length)
        outcome = run(dev, table.encode(voltag=int(not flags.no_barcodes), **fields), data_in_len=length)
        if not outcome.ok and outcome.sense is not None and outcome.sense.key > KEY_RECOVERED_ERROR:
            outcome = run(dev, table.encode(voltag=0, **fields), data_in_len=length)
        return outcome

    outcome = send(alloc)
    s = outcome.sense
    if not outcome.ok and s is not None and s.key == KEY_ILLEGAL_REQUEST and s.cd and s.bit_pointer == ALLOC_BIT_POINTER:
        alloc = smc.ELEMENT_STATUS_HEADER
        outcome = send(alloc)
    if outcome.ok and len(outcome.data) >= smc.ELEMENT_STATUS_HEADER:
        needed = smc.decode_element_status(outcome.data[: smc.ELEMENT_STATUS_HEADER]).needed_alloc
        if needed > alloc:
            outcome = send(needed)
    return outcome


class _Parser:
    """mtx's ParseElementStatus over decoded READ ELEMENT STATUS answers."""

    def __init__(self, elements: Elements, asg: smc.ElementAddressAssignment, warn_line: Callable[[str], None]):
        self.el = elements
        self.asg = asg
        self.warn_line = warn_line
        self.storage_count = 0  # storage slots so far; they go before any I/E slot
        self.empty_storage: list[int] = []  # storage slot indexes found empty, in order: the source guess's pool

    def parse(self, data: bytes, next_element: list[int] | None = None) -> None:
        if len(data) < smc.ELEMENT_STATUS_HEADER:
            return
        for page in smc.element_status_pages(data):
            short = page.descriptor_length < MIN_DESCRIPTOR_LEN
            if short and (page.element_type not in SHORT_DESCRIPTOR_TYPES or page.descriptor_length < 4):
                raise MtxFailure(f"Transport Element Descriptor Length too short: {page.descriptor_length}")
        for element in smc.decode_element_status(data).elements:
            if next_element is not None:  # altres: stop when the addresses wrap to 0
                if element.address != 0 or next_element[0] == 0:
                    next_element[0] = element.address + 1
                else:
                    return
            if not self._element(element):
                return

    def _element(self, e: smc.ElementStatus) -> bool:
        el, asg = self.el, self.asg
        pvol, avol = copy_barcode(e.primary_tag_field), copy_barcode(e.alternate_tag_field)
        asc = (e.asc, e.ascq)
        if e.element_type == smc.ELEMENT_TRANSPORT:
            el.transport_address = e.address
        elif e.element_type == smc.ELEMENT_IMPORT_EXPORT:
            if el.ie_count >= asg.import_export_count:
                self.warn_line(f"Warning:Too Many Import/Export Elements Reported (expected "
                               f"{asg.import_export_count}, now have {el.ie_count + 1}")
                return False
            el.slots.append(Slot(e.address, e.full, True, pvol, avol))
            el.ie_count += 1
        elif e.element_type == smc.ELEMENT_STORAGE:
            if asc == SLOT_NOT_INSTALLED:
                return True
            index = self.storage_count
            el.slots.insert(index, Slot(e.address, e.full, False, pvol, avol))
            if not e.full:
                self.empty_storage.append(index)
            self.storage_count += 1
            storage = asg.storage_count + asg.import_export_count  # mtx's IMPORT_EXPORT_HACK count
            if self.storage_count > storage:
                self.warn_line(f"Warning:Too Many Storage Elements Reported (expected {storage}, now have "
                               f"{self.storage_count}")
                return False
        elif e.element_type == smc.ELEMENT_DATA_TRANSFER:
            if asc == DRIVE_NOT_INSTALLED:
                return True
            if len(el.drives) >= asg.data_transfer_count:
                raise MtxFailure("Too many Data Transfer Elements Reported")
            el.drives.append(Drive(e.address, e.full, e.source, pvol, avol))
        else:
            raise MtxFailure(f"illegal Element Type Code {e.element_type} reported")
        return True


def read_element_status(dev: Transport, inq: spc.InquiryData, flags: Flags,
                        warn: Callable[[SenseData | None, str], None], warn_line: Callable[[str], None]) -> Elements:
    """mtx's ReadElementStatus: the assignment page, one READ ELEMENT STATUS per type, then the source slots."""
    asg = DEFAULT_ASSIGNMENT if attached(inq, flags) else read_assignment(dev, warn)
    alloc = DEFAULT_MAX_RES if asg is DEFAULT_ASSIGNMENT else max_res(asg)
    storage = asg.storage_count  # without the I/E slots
    elements = Elements()
    parser = _Parser(elements, asg, warn_line)

    def page(element_type: int, start: int, count: int) -> bytes:
        outcome = read_element_status_page(dev, inq, flags, element_type, start, count, alloc)
        if not outcome.ok:
            raise MtxFailure("READ ELEMENT STATUS Command Failed", outcome.sense, dump=True)
        return outcome.data

    if not flags.altres:
        parser.parse(page(smc.ELEMENT_STORAGE, asg.storage_first, storage))
        if asg.import_export_count > 0:
            parser.parse(page(smc.ELEMENT_IMPORT_EXPORT, asg.import_export_first, asg.import_export_count))
        parser.parse(page(smc.ELEMENT_DATA_TRANSFER, asg.data_transfer_first, asg.data_transfer_count))
        if asg.transport_count:
            parser.parse(page(smc.ELEMENT_TRANSPORT, asg.transport_first, 1))
    else:
        last, nxt = -1, [0]
        while last != nxt[0]:
            outcome = read_element_status_page(dev, inq, flags, smc.ELEMENT_ALL, nxt[0], storage, alloc)
            if not outcome.ok:
                if same_asc(outcome.sense, (INVALID_ELEMENT.asc, INVALID_ELEMENT.ascq)):  # past the last element
                    break
                raise MtxFailure("READ ELEMENT STATUS Command Failed", outcome.sense, dump=True)
            last = nxt[0]
            parser.parse(outcome.data, nxt)

    if not elements.drives:
        raise MtxFailure("no Data Transfer Element reported")
    if not elements.slots:
        raise MtxFailure("no Storage Elements reported")
    assign_sources(elements, parser.empty_storage)
    return elements


def assign_sources(el: Elements, empty_storage: list[int]) -> None:
    """mtx's two passes (reference/mtx.md §3): a full drive's source is the slot whose address it reports, if that
    slot is empty; otherwise the next empty storage slot, in drive order; -1 when none is left."""
    for drive in el.drives:
        if drive.full and drive.source >= 0:
            raw, drive.source = drive.source, -1
            for j, slot in enumerate(el.slots):
                if slot.address == raw and not slot.full:
                    drive.source = j
    unused = iter(empty_storage)
    for drive in el.drives:
        if drive.full and drive.source < 0:
            drive.source = next(unused, -1)
