"""SMC-3 medium changer commands (PDT 8): CDB tables (phase 1) and their data codecs.

Public API:

    ELEMENT_ALL, ELEMENT_TRANSPORT, ELEMENT_STORAGE, ELEMENT_IMPORT_EXPORT, ELEMENT_DATA_TRANSFER   element types
    READ_ELEMENT_STATUS, MOVE_MEDIUM, INITIALIZE_ELEMENT_STATUS, INITIALIZE_ELEMENT_STATUS_WITH_RANGE,
    POSITION_TO_ELEMENT                                   `Cdb` tables, e.g.
        READ_ELEMENT_STATUS.encode(voltag=1, element_type=ELEMENT_STORAGE, start=0x400, count=24, alloc=2048)
        MOVE_MEDIUM.encode(source=0x400, destination=0x100)

  Data:
    ElementStatus(element_type, address, full, impexp, except_, access, asc, ascq, svalid, source, medium_type,
                  primary_tag, alternate_tag, device_id, ...)                        one descriptor, frozen
    select_elements(elements, element_type, start, count)      what a RES reports (type order, address >= start)
    encode_element_status(elements, voltag, alloc, avoltag=False, dvcid=False, device_id_len=34) -> bytes
        header + one page per element type + descriptors; byte counts state the full report, `alloc` drops only
        whole descriptors; 32-byte space-padded tags + 4 NULs; all-zero tags on empty elements
    decode_element_status(data) -> ElementStatusReport(first_address, available, byte_count, elements)
        .complete, .needed_alloc (8 + byte count: re-issue with it when not complete); decoded descriptors also
        keep the raw 36-byte tag fields (.primary_tag_field, .alternate_tag_field) for mtx's byte-exact output
    element_status_pages(data) -> (ElementStatusPage(element_type, pvoltag, avoltag, descriptor_length, ...), ...)
    EXCHANGE_MEDIUM; READ_ELEMENT_STATUS_ATTACHED (B4), MOVE_MEDIUM_ATTACHED (A7), START_STOP_UNIT   for mtx
    descriptor_length(element_type, pvoltag, avoltag, device_id_len)   52 with VOLTAG, 16 without
    ElementAddressAssignment (page 0x1D), TransportGeometry (0x1E), DeviceCapabilities (0x1F): .encode() -> page
        bytes (with the 2-byte page header), .decode(page); wrap them in `drivers.scsi.spc.ModeData`

Layouts follow reference/scsi.md §3. MOVE MEDIUM's byte 11 carries mtx's `eepos` in bits 7-6, so its control field
is bits 5-0 only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.scsi.cdb import Cdb, Field

ELEMENT_ALL = 0
ELEMENT_TRANSPORT = 1  # MTE, the robot
ELEMENT_STORAGE = 2  # slot
ELEMENT_IMPORT_EXPORT = 3  # mail slot
ELEMENT_DATA_TRANSFER = 4  # drive

READ_ELEMENT_STATUS = Cdb(
    "READ ELEMENT STATUS",
    0xB8,
    12,
    {
        "voltag": Field(1, mask=0x10),
        "element_type": Field(1, mask=0x0F),
        "start": Field(2, width=2),
        "count": Field(4, width=2),
        "curdata": Field(6, mask=0x02),  # no robot motion
        "dvcid": Field(6, mask=0x01),  # device identifiers of drives
        "alloc": Field(7, width=3),
    },
)
MOVE_MEDIUM = Cdb(
    "MOVE MEDIUM",
    0xA5,
    12,
    {
        "transport": Field(2, width=2),  # 0 = the default robot
        "source": Field(4, width=2),
        "destination": Field(6, width=2),
        "invert": Field(10, mask=0x01),
        "eepos": Field(11, mask=0xC0),  # mtx: mail slot tray position
        "control": Field(11, mask=0x3F),
    },
)
INITIALIZE_ELEMENT_STATUS = Cdb("INITIALIZE ELEMENT STATUS", 0x07, 6)
INITIALIZE_ELEMENT_STATUS_WITH_RANGE = Cdb(
    "INITIALIZE ELEMENT STATUS WITH RANGE",
    0x37,
    10,
    {"range": Field(1, mask=0x01), "start": Field(2, width=2), "count": Field(6, width=2)},
)
POSITION_TO_ELEMENT = Cdb(
    "POSITION TO ELEMENT",
    0x2B,
    10,
    {"transport": Field(2, width=2), "destination": Field(4, width=2), "invert": Field(8, mask=0x01)},
)

# Not in COMMANDS: the simulated library has no second gripper to exchange with (it answers 05/20/00).
EXCHANGE_MEDIUM = Cdb(
    "EXCHANGE MEDIUM",
    0xA6,
    12,
    {
        "mtx_invert2": Field(1, mask=0x01),  # reserved in SMC-3; mtx 1.3.12 puts its `invert2` here
        "transport": Field(2, width=2),
        "source": Field(4, width=2),
        "first_destination": Field(6, width=2),
        "second_destination": Field(8, width=2),
        "inv1": Field(10, mask=0x02),
        "inv2": Field(10, mask=0x01),
        "eepos": Field(11, mask=0xC0),
        "control": Field(11, mask=0x3F),
    },
)
# The "attached medium changer" forms (SMC-3 annex: a changer reached through a drive LUN with MChngr=1): same
# layouts, other opcodes. Not in COMMANDS: a changer LUN (PDT 8) does not answer them.
READ_ELEMENT_STATUS_ATTACHED = Cdb("READ ELEMENT STATUS ATTACHED", 0xB4, 12, READ_ELEMENT_STATUS.fields)
MOVE_MEDIUM_ATTACHED = Cdb("MOVE MEDIUM ATTACHED", 0xA7, 12, MOVE_MEDIUM.fields)
# mtx `eject` sends 1B with LoEj=1, Start=0 to whatever -f names (SBC/MMC START STOP UNIT; on a tape drive the same
# bytes read as LOAD UNLOAD). Not in COMMANDS: the changer does not implement it.
START_STOP_UNIT = Cdb(
    "START STOP UNIT", 0x1B, 6, {"immed": Field(1, mask=0x01), "loej": Field(4, mask=0x02), "start": Field(4, mask=0x01)}
)

COMMANDS = (
    READ_ELEMENT_STATUS,
    MOVE_MEDIUM,
    INITIALIZE_ELEMENT_STATUS,
    INITIALIZE_ELEMENT_STATUS_WITH_RANGE,
    POSITION_TO_ELEMENT,
)


# --- READ ELEMENT STATUS data -------------------------------------------------------------------------------------

ELEMENT_STATUS_HEADER = 8
PAGE_HEADER = 8
DESCRIPTOR_BASE = 12  # address, flags, ASC/ASCQ, DTE bus bytes, source
VOLUME_TAG = 36  # 32-byte identifier, space padded, 2 reserved, 2-byte sequence number
DEVICE_ID_HEADER = 4  # code set, identifier type, reserved, length (or 4 reserved bytes without DVCID)

MEDIUM_UNSPECIFIED, MEDIUM_DATA, MEDIUM_CLEANING, MEDIUM_DIAGNOSTIC, MEDIUM_WORM = range(5)


@dataclass(frozen=True, slots=True)
class ElementStatus:
    """One element descriptor (reference/scsi.md §3). Tags are stored without their space padding."""

    element_type: int
    address: int
    full: bool = False
    impexp: bool = False  # I/E: placed there by an operator
    except_: bool = False  # asc/ascq say why
    access: bool = True
    exenab: bool = False  # I/E only
    inenab: bool = False  # I/E only
    asc: int = 0
    ascq: int = 0
    not_bus: bool = False  # DTE bus fields (bytes 6-7)
    id_valid: bool = False
    lu_valid: bool = False
    lun: int = 0
    target_id: int = 0
    svalid: bool = False  # `source` is valid
    invert: bool = False
    disabled: bool = False  # ED
    medium_type: int = MEDIUM_UNSPECIFIED
    source: int = 0  # the storage element the medium last came from
    primary_tag: str | None = None
    alternate_tag: str | None = None
    device_id: str | None = None  # DTE with DVCID: vendor + product + serial for IBM/STK
    # The 36-byte volume tag fields as the device sent them (decode only; b"" when absent), for tools that must
    # print them as mtx does (padding kept, cut at the first control byte).
    primary_tag_field: bytes = field(default=b"", compare=False, repr=False)
    alternate_tag_field: bytes = field(default=b"", compare=False, repr=False)

    def encode(self, pvoltag: bool, avoltag: bool, device_id_len: int | None) -> bytes:
        """The descriptor; `device_id_len` is None without DVCID, else the page's fixed identifier length."""
        out = bytearray(self.address.to_bytes(2, "big"))
        out.append(
            self.full
            | (self.impexp << 1)
            | (self.except_ << 2)
            | (self.access << 3)
            | (self.exenab << 4)
            | (self.inenab << 5)
        )
        out += bytes([0, self.asc, self.ascq])
        out.append((0x80 * self.not_bus) | (0x20 * self.id_valid) | (0x10 * self.lu_valid) | (self.lun & 0x07))
        out += bytes([self.target_id, 0])
        out.append((0x80 * self.svalid) | (0x40 * self.invert) | (0x08 * self.disabled) | (self.medium_type & 0x07))
        out += self.source.to_bytes(2, "big")
        if pvoltag:
            out += _volume_tag(self.primary_tag if self.full else None)
        if avoltag:
            out += _volume_tag(self.alternate_tag if self.full else None)
        if device_id_len is None or self.element_type != ELEMENT_DATA_TRANSFER:
            out += bytes(DEVICE_ID_HEADER)  # reserved: only drives carry an identifier
        else:
            ident = (self.device_id or "").encode("ascii")[:device_id_len]
            out += bytes([0x02, 0x01 if ident else 0, 0, len(ident)]) + ident.ljust(device_id_len, b"\0")
        return bytes(out)


def _volume_tag(tag: str | None) -> bytes:
    if not tag:
        return bytes(VOLUME_TAG)  # empty elements and unlabelled media: all zeros (mtx prints no tag)
    raw = tag.encode("ascii")
    if len(raw) > 32:
        raise ValueError(f"volume tag {tag!r} is longer than 32 characters")
    return raw.ljust(32, b" ") + bytes(4)


def _read_tag(raw: bytes) -> str | None:
    # Like mtx's copy_barcode: stop at the first byte outside 0x20..0x7F, then drop the padding.
    end = next((i for i, b in enumerate(raw[:32]) if b < 0x20 or b > 0x7F), min(len(raw), 32))
    return raw[:end].rstrip(b" ").decode("ascii") or None


def descriptor_length(element_type: int, pvoltag: bool, avoltag: bool, device_id_len: int | None) -> int:
    """52 with VOLTAG, 16 without; DTEs with DVCID add their identifier (50 or 86 for a 34-byte IBM/STK id)."""
    ident = device_id_len if device_id_len is not None and element_type == ELEMENT_DATA_TRANSFER else 0
    return DESCRIPTOR_BASE + VOLUME_TAG * (pvoltag + avoltag) + DEVICE_ID_HEADER + ident


def select_elements(
    elements: list[ElementStatus] | tuple[ElementStatus, ...], element_type: int, start: int, count: int
) -> list[ElementStatus]:
    """What a READ ELEMENT STATUS reports: the requested type (0 = all, pages in type order), address >= start,
    address order within a type, at most `count` descriptors."""
    chosen = [e for e in elements if (element_type in (ELEMENT_ALL, e.element_type)) and e.address >= start]
    chosen.sort(key=lambda e: (e.element_type, e.address))
    return chosen[:count]


def encode_element_status(
    elements: list[ElementStatus] | tuple[ElementStatus, ...],
    voltag: bool,
    alloc: int,
    avoltag: bool = False,
    dvcid: bool = False,
    device_id_len: int = 34,
) -> bytes:
    """Element status data for `elements` (already selected, see `select_elements`), cut to `alloc`.

    One page per run of one element type. The header and page byte counts always state the full report; the
    allocation length drops only whole descriptors (and headers that do not fit), never part of one.
    """
    dev_len = device_id_len if dvcid else None
    chunks: list[bytes] = []
    pages_total = 0
    at = 0
    while at < len(elements):
        kind = elements[at].element_type
        end = at
        while end < len(elements) and elements[end].element_type == kind:
            end += 1
        size = descriptor_length(kind, voltag, avoltag, dev_len)
        page_bytes = size * (end - at)
        chunks.append(
            bytes([kind, (0x80 * voltag) | (0x40 * avoltag)])
            + size.to_bytes(2, "big")
            + b"\0"
            + page_bytes.to_bytes(3, "big")
        )
        chunks.extend(e.encode(voltag, avoltag, dev_len) for e in elements[at:end])
        pages_total += PAGE_HEADER + page_bytes
        at = end
    first = elements[0].address if elements else 0
    header = first.to_bytes(2, "big") + len(elements).to_bytes(2, "big") + b"\0" + pages_total.to_bytes(3, "big")
    if alloc < len(header):
        return header[:alloc]
    out = bytearray(header)
    for chunk in chunks:
        if len(out) + len(chunk) > alloc:
            break
        out += chunk
    return bytes(out)


@dataclass(frozen=True, slots=True)
class ElementStatusReport:
    first_address: int
    available: int  # elements the device has to report (header bytes 2-3)
    byte_count: int  # bytes of pages available, excluding the 8-byte header
    elements: tuple[ElementStatus, ...]  # the descriptors that came back (fewer if the allocation was short)

    @property
    def complete(self) -> bool:
        return len(self.elements) >= self.available

    @property
    def needed_alloc(self) -> int:
        """The allocation length that returns everything (what mtx re-issues with)."""
        return ELEMENT_STATUS_HEADER + self.byte_count


def decode_element_status(data: bytes | bytearray | memoryview) -> ElementStatusReport:
    data = bytes(data)
    if len(data) < ELEMENT_STATUS_HEADER:
        raise ValueError(f"element status data is {len(data)} bytes, needs an 8-byte header")
    available = int.from_bytes(data[2:4], "big")
    byte_count = int.from_bytes(data[5:8], "big")
    end = min(len(data), ELEMENT_STATUS_HEADER + byte_count)
    found: list[ElementStatus] = []
    at = ELEMENT_STATUS_HEADER
    while at + PAGE_HEADER <= end and len(found) < available:
        kind, flags = data[at], data[at + 1]
        size = int.from_bytes(data[at + 2 : at + 4], "big")
        page_end = min(end, at + PAGE_HEADER + int.from_bytes(data[at + 5 : at + 8], "big"))
        if size < 4:
            raise ValueError(f"element status page of type {kind} has descriptor length {size}, below 4")
        at += PAGE_HEADER
        while at + size <= page_end:
            found.append(_decode_descriptor(kind, bool(flags & 0x80), bool(flags & 0x40), data[at : at + size]))
            at += size
        at = max(at, page_end)
    return ElementStatusReport(int.from_bytes(data[0:2], "big"), available, byte_count, tuple(found))


def _decode_descriptor(kind: int, pvoltag: bool, avoltag: bool, d: bytes) -> ElementStatus:
    d12 = d.ljust(DESCRIPTOR_BASE, b"\0")
    at = DESCRIPTOR_BASE
    primary = alternate = device_id = None
    primary_field = alternate_field = b""
    if pvoltag and len(d) >= at + VOLUME_TAG:
        primary_field = d[at : at + VOLUME_TAG]
        primary = _read_tag(primary_field)
        at += VOLUME_TAG
    if avoltag and len(d) >= at + VOLUME_TAG:
        alternate_field = d[at : at + VOLUME_TAG]
        alternate = _read_tag(alternate_field)
        at += VOLUME_TAG
    if kind == ELEMENT_DATA_TRANSFER and len(d) > at + DEVICE_ID_HEADER and d[at + 3]:
        device_id = d[at + 4 : at + 4 + d[at + 3]].decode("ascii", "replace")
    return ElementStatus(
        element_type=kind,
        address=int.from_bytes(d12[0:2], "big"),
        full=bool(d12[2] & 0x01),
        impexp=bool(d12[2] & 0x02),
        except_=bool(d12[2] & 0x04),
        access=bool(d12[2] & 0x08),
        exenab=bool(d12[2] & 0x10),
        inenab=bool(d12[2] & 0x20),
        asc=d12[4],
        ascq=d12[5],
        not_bus=bool(d12[6] & 0x80),
        id_valid=bool(d12[6] & 0x20),
        lu_valid=bool(d12[6] & 0x10),
        lun=d12[6] & 0x07,
        target_id=d12[7],
        svalid=bool(d12[9] & 0x80),
        invert=bool(d12[9] & 0x40),
        disabled=bool(d12[9] & 0x08),
        medium_type=d12[9] & 0x07,
        source=int.from_bytes(d12[10:12], "big"),
        primary_tag=primary,
        alternate_tag=alternate,
        device_id=device_id,
        primary_tag_field=primary_field,
        alternate_tag_field=alternate_field,
    )


@dataclass(frozen=True, slots=True)
class ElementStatusPage:
    """One element status page header: its type, tag flags and descriptor length (what mtx validates)."""

    element_type: int
    pvoltag: bool
    avoltag: bool
    descriptor_length: int
    byte_count: int  # bytes of descriptors the page states


def element_status_pages(data: bytes | bytearray | memoryview) -> tuple[ElementStatusPage, ...]:
    """The page headers of element status data, walked by their byte counts (descriptors not decoded, so a
    descriptor length below 4 is reported here rather than refused)."""
    data = bytes(data)
    if len(data) < ELEMENT_STATUS_HEADER:
        raise ValueError(f"element status data is {len(data)} bytes, needs an 8-byte header")
    end = min(len(data), ELEMENT_STATUS_HEADER + int.from_bytes(data[5:8], "big"))
    pages = []
    at = ELEMENT_STATUS_HEADER
    while at + PAGE_HEADER <= end:
        page = ElementStatusPage(data[at], bool(data[at + 1] & 0x80), bool(data[at + 1] & 0x40),
                                 int.from_bytes(data[at + 2 : at + 4], "big"),
                                 int.from_bytes(data[at + 5 : at + 8], "big"))
        pages.append(page)
        at += PAGE_HEADER + page.byte_count
    return tuple(pages)


# --- MODE SENSE pages of a changer ----------------------------------------------------------------------------------

PAGE_ELEMENT_ADDRESS_ASSIGNMENT = 0x1D
PAGE_TRANSPORT_GEOMETRY = 0x1E
PAGE_DEVICE_CAPABILITIES = 0x1F


@dataclass(frozen=True, slots=True)
class ElementAddressAssignment:
    """Mode page 0x1D: first address and count of each element type (mtx reads it to size its RES requests)."""

    transport_first: int
    transport_count: int
    storage_first: int
    storage_count: int
    import_export_first: int
    import_export_count: int
    data_transfer_first: int
    data_transfer_count: int
    ps: bool = False

    def encode(self) -> bytes:
        pairs = (
            self.transport_first,
            self.transport_count,
            self.storage_first,
            self.storage_count,
            self.import_export_first,
            self.import_export_count,
            self.data_transfer_first,
            self.data_transfer_count,
        )
        return bytes([0x80 * self.ps | PAGE_ELEMENT_ADDRESS_ASSIGNMENT, 0x12]) + b"".join(
            v.to_bytes(2, "big") for v in pairs
        ) + bytes(2)

    @classmethod
    def decode(cls, page: bytes) -> ElementAddressAssignment:
        if len(page) < 18 or page[0] & 0x3F != PAGE_ELEMENT_ADDRESS_ASSIGNMENT:
            raise ValueError("not an element address assignment page (0x1D, 20 bytes)")
        v = [int.from_bytes(page[i : i + 2], "big") for i in range(2, 18, 2)]
        return cls(*v, ps=bool(page[0] & 0x80))


@dataclass(frozen=True, slots=True)
class TransportGeometry:
    """Mode page 0x1E: per transport element, whether it can rotate the medium, and its member number."""

    rotate: tuple[bool, ...] = (False,)
    members: tuple[int, ...] = (0,)

    def encode(self) -> bytes:
        body = b"".join(bytes([int(r), m]) for r, m in zip(self.rotate, self.members, strict=True))
        return bytes([PAGE_TRANSPORT_GEOMETRY, len(body)]) + body

    @classmethod
    def decode(cls, page: bytes) -> TransportGeometry:
        body = page[2 : 2 + page[1]]
        return cls(tuple(bool(body[i] & 1) for i in range(0, len(body) - 1, 2)), tuple(body[1::2]))


@dataclass(frozen=True, slots=True)
class DeviceCapabilities:
    """Mode page 0x1F. `storage` is the StorMT/ST/IE/DT bits (b0..b3); `move_from[t]` and `exchange_from[t]` are
    masks of destination types (b0 MT, b1 ST, b2 IE, b3 DT) for source type t = MT, ST, IE, DT."""

    storage: int = 0b1110
    move_from: tuple[int, int, int, int] = (0b1110, 0b1110, 0b1110, 0b1110)
    exchange_from: tuple[int, int, int, int] = (0, 0, 0, 0)

    def encode(self) -> bytes:
        return bytes(
            [PAGE_DEVICE_CAPABILITIES, 0x12, self.storage, 0, *self.move_from, 0, 0, 0, 0, *self.exchange_from]
        ) + bytes(4)

    @classmethod
    def decode(cls, page: bytes) -> DeviceCapabilities:
        if len(page) < 16 or page[0] & 0x3F != PAGE_DEVICE_CAPABILITIES:
            raise ValueError("not a device capabilities page (0x1F, 20 bytes)")
        return cls(page[2] & 0x0F, tuple(page[4:8]), tuple(page[12:16]))  # type: ignore[arg-type]
