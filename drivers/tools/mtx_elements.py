"""mtx 1.3.12's view of a library: the INQUIRY, MODE SENSE and READ ELEMENT STATUS sequence of its `mtxl.c`, with
its parsing rules and quirks, for `tapeline-mtx` (reference/mtx.md §2-§3).

This is deliberately mtx's model, not `MediaChanger`'s: slot numbers count storage slots then I/E slots in the
order the library returned them, the source slot of a loaded drive is mtx's two-pass guess (SValid ignored), volume
tags are the raw 36-byte fields cut at the first byte outside 0x20-0x7F. Output built on it therefore matches real
mtx byte for byte, whatever the library (real or simulated) sends.

Invariants: every failure is `MtxFailure(sense, message)`: the caller prints the sense dump (when `sense` is not
None) and then the message, exactly as mtx does; nothing here prints, except the two stderr lines mtx itself
prints in the middle of the sequence (the Mode Sense fallback), through the `warn` callback.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.tools.common import MINUTE, Outcome, run
from drivers.transport.base import Transport

MEDIUM_CHANGER = 8
TRANSPORT, STORAGE, IMPORT_EXPORT, DATA_TRANSFER, ALL_TYPES = 1, 2, 3, 4, 0
INQUIRY_LEN = 56  # sizeof(Inquiry_T)
DESCRIPTOR_LEN = 84  # sizeof(TransportElementDescriptor_T)
# mtx's built-in counts when the element address assignment page cannot be read (mtx.h)
DEFAULT_STORAGE, DEFAULT_DRIVES, DEFAULT_TRANSPORTS = 64, 2, 1


class MtxFailure(Exception):
    """mtx would stop here: print `sense` as a Request Sense dump (if not None), then `message`, exit 1."""

    def __init__(self, message: str, sense: bytes | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sense = sense


@dataclass
class Flags:
    no_barcodes: bool = False
    no_attached: bool = False
    invert: bool = False
    invert2: bool = False
    eepos: int = 0
    altres: bool = False


@dataclass
class Inquiry:
    raw: bytes  # 56 bytes, zero-filled beyond what the device sent

    @property
    def device_type(self) -> int:
        return self.raw[0] & 0x1F

    @property
    def mchngr(self) -> bool:
        return bool(self.raw[6] & 0x08)

    def attached(self, flags: Flags) -> bool:
        """mtx's 'attached changer' mode (0xB4/0xA7 opcodes): MChngr set on a device that is not a changer."""
        return self.mchngr and self.device_type != MEDIUM_CHANGER and not flags.no_attached


@dataclass
class Assignment:
    """The element address assignment page (0x1D), or mtx's defaults. `storage` includes the I/E count."""

    transport_start: int = 0
    transports: int = DEFAULT_TRANSPORTS
    storage_start: int = 0
    storage: int = DEFAULT_STORAGE
    ie_start: int = 0
    ie: int = 0
    drive_start: int = 0
    drives: int = DEFAULT_DRIVES
    max_res: int = 8 + 3 * 8 + (DEFAULT_STORAGE + DEFAULT_DRIVES + DEFAULT_TRANSPORTS) * DESCRIPTOR_LEN


@dataclass
class Elements:
    """mtx's ElementStatus_T. Storage lists hold storage slots first, then I/E slots."""

    storage_address: list[int] = field(default_factory=list)
    storage_full: list[bool] = field(default_factory=list)
    storage_ie: list[bool] = field(default_factory=list)
    storage_pvol: list[bytes] = field(default_factory=list)
    storage_avol: list[bytes] = field(default_factory=list)
    drive_address: list[int] = field(default_factory=list)
    drive_full: list[bool] = field(default_factory=list)
    drive_source: list[int] = field(default_factory=list)  # slot index after the two passes; raw address if empty
    drive_pvol: list[bytes] = field(default_factory=list)
    drive_avol: list[bytes] = field(default_factory=list)
    transport_address: int = 0
    ie_count: int = 0

    @property
    def slots(self) -> int:
        return len(self.storage_address)

    @property
    def drives(self) -> int:
        return len(self.drive_address)


def copy_barcode(raw: bytes) -> bytes:
    """mtx's copy_barcode: the 36-byte field up to the first byte below 0x20 or above 0x7F; spaces kept."""
    out = bytearray()
    for b in raw[:36]:
        if b < 0x20 or b > 0x7F:
            break
        out.append(b)
    return bytes(out)


def clear_unit_attention(dev: Transport) -> bool:
    """mtx's ClearUnitAttention: REQUEST SENSE until NO SENSE, at most 10 times."""
    for _ in range(10):
        outcome = run(dev, bytes([0x03, 0, 0, 0, 18, 0]), data_in_len=18)
        if not outcome.ok:
            return False
        if len(outcome.data) < 3 or outcome.data[2] & 0x0F == 0:
            return True
    return False


def is_unit_attention(outcome: Outcome) -> bool:
    s = outcome.sense
    return len(s) > 2 and s[0] & 0x7F == 0x70 and s[2] & 0x0F == 6


def run_clearing_ua(dev: Transport, cdb: bytes, data_in_len: int = 0, timeout: float = 5 * MINUTE) -> Outcome:
    """One command, retried once after clearing a UNIT ATTENTION, as mtx does for MODE SENSE, INITIALIZE ELEMENT
    STATUS, ERASE and LOAD/UNLOAD."""
    outcome = run(dev, cdb, data_in_len=data_in_len, timeout=timeout)
    if outcome.ok or not is_unit_attention(outcome) or not clear_unit_attention(dev):
        return outcome
    return run(dev, cdb, data_in_len=data_in_len, timeout=timeout)


def inquiry(dev: Transport) -> Inquiry:
    outcome = run(dev, bytes([0x12, 0, 0, 0, INQUIRY_LEN, 0]), data_in_len=INQUIRY_LEN, timeout=30)
    if not outcome.ok:
        raise MtxFailure("INQUIRY command Failed", outcome.sense)
    return Inquiry((outcome.data + bytes(INQUIRY_LEN))[:INQUIRY_LEN])


def read_assignment(dev: Transport, warn: Callable[[bytes, str], None]) -> Assignment | None:
    """MODE SENSE(6) page 0x1D; None (after mtx's two stderr lines, through `warn`) when it fails."""
    outcome = run_clearing_ua(dev, bytes([0x1A, 0x08, 0x1D, 0, 136, 0]), data_in_len=136)
    if not outcome.ok:
        warn(outcome.sense, "Mode sense (0x1A) for Page 0x1D failed")
        return None
    buf = outcome.data + bytes(136 + 4 + 256)
    page = buf[4 + buf[3]:]
    (t_start, t_count, s_start, s_count, ie_start, ie_count, d_start, d_count) = struct.unpack_from(">8H", page, 2)
    elements = s_count + ie_count + d_count + t_count
    return Assignment(t_start, t_count, s_start, s_count + ie_count, ie_start, ie_count, d_start, d_count,
                      8 + 4 * 8 + elements * DESCRIPTOR_LEN)


def _res_actual(dev: Transport, inq: Inquiry, flags: Flags, element_type: int, start: int, count: int,
                alloc: int) -> Outcome:
    opcode = 0xB4 if inq.attached(flags) else 0xB8
    byte1 = (0 if flags.no_barcodes else 0x10) | element_type
    cdb = bytearray([opcode, byte1, *start.to_bytes(2, "big"), *count.to_bytes(2, "big"), 0,
                     *alloc.to_bytes(3, "big"), 0, 0])
    outcome = run(dev, bytes(cdb), data_in_len=alloc)
    if not outcome.ok and len(outcome.sense) > 2 and outcome.sense[2] & 0x0F > 1:
        cdb[1] &= ~0x10  # perhaps no barcode reader: once more without volume tags
        outcome = run(dev, bytes(cdb), data_in_len=alloc)
    return outcome


def read_element_status_page(dev: Transport, inq: Inquiry, flags: Flags, element_type: int, start: int,
                             count: int, alloc: int) -> Outcome:
    """mtx's SendElementStatusRequest: the retries for a loader that wants alloc 8, and for a longer answer."""
    outcome = _res_actual(dev, inq, flags, element_type, start, count, alloc)
    sense = outcome.sense + bytes(18)
    if not outcome.ok and sense[2] & 0x0F == 5 and sense[15] & 0x40 and sense[15] & 0x07 == 7:
        alloc = 8
        outcome = _res_actual(dev, inq, flags, element_type, start, count, alloc)
    if outcome.ok and len(outcome.data) >= 8:
        needed = int.from_bytes(outcome.data[5:8], "big") + 8
        if needed > alloc:
            outcome = _res_actual(dev, inq, flags, element_type, start, count, needed)
    return outcome


class _Parser:
    """mtx's ParseElementStatus over one READ ELEMENT STATUS answer."""

    def __init__(self, elements: Elements, assignment: Assignment, empty_storage: list[int],
                 warn_line: Callable[[str], None]) -> None:
        self.el = elements
        self.asg = assignment
        self.empty_storage = empty_storage
        self.warn_line = warn_line
        self.storage_count = 0  # StorageElementCount while parsing (I/E added after)

    def parse(self, data: bytes, next_element: list[int] | None = None) -> None:
        data = bytes(data)
        count = int.from_bytes(data[2:4], "big") if len(data) >= 4 else 0
        pos = 8
        while count > 0 and pos + 8 <= len(data):
            page = data[pos:pos + 8]
            pos += 8
            etype, volbits = page[0] & 0x0F, page[1]
            desc_len = int.from_bytes(page[2:4], "big")
            available = int.from_bytes(page[5:8], "big")
            if desc_len < 12 and (etype not in (TRANSPORT, STORAGE, IMPORT_EXPORT) or desc_len < 4):
                raise MtxFailure(f"Transport Element Descriptor Length too short: {desc_len}")
            if available <= 0:
                count -= 1
            while available > 0:
                if pos >= len(data):  # mtx would read past its buffer; stop instead
                    return
                desc = (data[pos:pos + min(desc_len, DESCRIPTOR_LEN)] + bytes(DESCRIPTOR_LEN))[:DESCRIPTOR_LEN]
                address = int.from_bytes(desc[0:2], "big")
                if next_element is not None:
                    if address != 0 or next_element[0] == 0:
                        next_element[0] = address + 1
                    else:
                        return
                pos += desc_len
                available -= desc_len
                count -= 1
                if not self._element(etype, volbits, desc_len, desc, address):
                    return

    def _element(self, etype: int, volbits: int, desc_len: int, desc: bytes, address: int) -> bool:
        el, asg = self.el, self.asg
        full = bool(desc[2] & 0x01)
        asc, ascq = desc[4], desc[5]
        pvol = copy_barcode(desc[12:48]) if volbits & 0x80 and (desc_len > 11 or etype == DATA_TRANSFER) else b""
        avol = copy_barcode(desc[48:84]) if volbits & 0x40 and (desc_len > 11 or etype == DATA_TRANSFER) else b""
        if etype == TRANSPORT:
            el.transport_address = address
        elif etype == IMPORT_EXPORT:
            if el.ie_count >= asg.ie:
                self.warn_line(f"Warning:Too Many Import/Export Elements Reported (expected {asg.ie}, now have "
                               f"{el.ie_count + 1}")
                return False
            el.storage_address.append(address)
            el.storage_full.append(full)
            el.storage_ie.append(True)
            el.storage_pvol.append(pvol)
            el.storage_avol.append(avol)
            el.ie_count += 1
        elif etype == STORAGE:
            if (asc, ascq) == (0x83, 0x02):  # ATL/Exabyte: a slot that is not installed
                return True
            index = self.storage_count
            # Storage slots come before any I/E slot in mtx's arrays, whatever order the pages arrive in.
            at = index
            el.storage_address.insert(at, address)
            el.storage_full.insert(at, full)
            el.storage_ie.insert(at, False)
            el.storage_pvol.insert(at, pvol)
            el.storage_avol.insert(at, avol)
            if not full:
                self.empty_storage.append(index)
            self.storage_count += 1
            if self.storage_count > asg.storage:
                self.warn_line(f"Warning:Too Many Storage Elements Reported (expected {asg.storage}, now have "
                               f"{self.storage_count}")
                return False
        elif etype == DATA_TRANSFER:
            if (asc, ascq) == (0x83, 0x04):  # drive not installed
                return True
            if el.drives >= asg.drives:
                raise MtxFailure("Too many Data Transfer Elements Reported")
            el.drive_address.append(address)
            el.drive_full.append(full)
            el.drive_source.append(int.from_bytes(desc[10:12], "big"))
            el.drive_pvol.append(pvol)
            el.drive_avol.append(avol)
        else:
            raise MtxFailure(f"illegal Element Type Code {etype} reported")
        return True


def read_element_status(dev: Transport, inq: Inquiry, flags: Flags, warn: Callable[[bytes, str], None],
                        warn_line: Callable[[str], None]) -> Elements:
    """mtx's ReadElementStatus: the assignment page, one READ ELEMENT STATUS per type, then the source slots."""
    assignment = None if inq.attached(flags) else read_assignment(dev, warn)
    asg = assignment or Assignment()
    elements = Elements()
    empty_storage: list[int] = []
    parser = _Parser(elements, asg, empty_storage, warn_line)

    def page(element_type: int, start: int, count: int) -> bytes:
        outcome = read_element_status_page(dev, inq, flags, element_type, start, count, asg.max_res)
        if not outcome.ok:
            raise MtxFailure("READ ELEMENT STATUS Command Failed", outcome.sense)
        return outcome.data

    if not flags.altres:
        parser.parse(page(STORAGE, asg.storage_start, asg.storage - asg.ie))
        if asg.ie > 0:
            parser.parse(page(IMPORT_EXPORT, asg.ie_start, asg.ie))
        parser.parse(page(DATA_TRANSFER, asg.drive_start, asg.drives))
        if asg.transports:
            parser.parse(page(TRANSPORT, asg.transport_start, 1))
    else:
        last, nxt = -1, [0]
        while last != nxt[0]:
            outcome = read_element_status_page(dev, inq, flags, ALL_TYPES, nxt[0], asg.storage - asg.ie,
                                               asg.max_res)
            if not outcome.ok:
                sense = outcome.sense + bytes(18)
                if (sense[12], sense[13]) == (0x21, 0x01):  # past the last element
                    break
                raise MtxFailure("READ ELEMENT STATUS Command Failed", outcome.sense)
            last = nxt[0]
            parser.parse(outcome.data, nxt)

    if elements.drives == 0:
        raise MtxFailure("no Data Transfer Element reported")
    if elements.slots == 0:
        raise MtxFailure("no Storage Elements reported")
    assign_sources(elements, empty_storage)
    return elements


def assign_sources(el: Elements, empty_storage: list[int]) -> None:
    """mtx's two passes (reference/mtx.md §3): a full drive's source is the slot whose address it reports, if that
    slot is empty; otherwise the next empty storage slot, in drive order; -1 when none is left."""
    for i in range(el.drives):
        if el.drive_full[i] and el.drive_source[i] >= 0:
            raw, el.drive_source[i] = el.drive_source[i], -1
            for j in range(el.slots):
                if el.storage_address[j] == raw and not el.storage_full[j]:
                    el.drive_source[i] = j
    unused = iter(empty_storage)
    for i in range(el.drives):
        if el.drive_full[i] and el.drive_source[i] < 0:
            el.drive_source[i] = next(unused, -1)
