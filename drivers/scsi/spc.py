"""SPC-4 commands both device types answer: CDB tables (phase 1) and their data codecs.

Public API:

    PDT_TAPE = 0x01, PDT_CHANGER = 0x08                 peripheral device types
    TEST_UNIT_READY, REQUEST_SENSE, INQUIRY, MODE_SENSE_6, MODE_SENSE_10, MODE_SELECT_6, MODE_SELECT_10,
    LOG_SENSE, PREVENT_ALLOW_MEDIUM_REMOVAL, REPORT_LUNS  `Cdb` tables (see `drivers.scsi.cdb`), e.g.
                                                         `INQUIRY.encode(evpd=1, page_code=0x80, alloc=255)`
    PAGE_CONTROL_CURRENT .. PAGE_CONTROL_SAVED            the PC field of MODE SENSE and LOG SENSE
    ALLOW_MEDIUM_REMOVAL / PREVENT_MEDIUM_REMOVAL        values of PREVENT ALLOW's `prevent` field

  Data (each `encode()` gives the whole reply; a target cuts it to the CDB's allocation length):
    InquiryData(pdt, vendor, product, revision, rmb, version, mchngr, ..., vendor_specific)   .encode() / .decode()
    encode_vpd_supported_pages(pdt, pages) / decode_vpd_supported_pages(data)          VPD 0x00
    encode_vpd_serial(pdt, serial) / decode_vpd_serial(data)                            VPD 0x80
    Designator.t10_vendor(vendor, product, serial), encode_vpd_device_identification(pdt, designators) /
        decode_vpd_device_identification(data)                                         VPD 0x83
    ModeData(medium_type, wp, buffered_mode, speed, block_descriptor, pages)            MODE SENSE/SELECT (6) and (10)
        .encode(ten=False, for_select=False) / ModeData.decode(data, ten=False); .page(code) -> raw page bytes
    BlockDescriptor(density, blocks, block_length)                                      block length 0 = variable
        BlockDescriptor.offset(name) -> byte of a field within the descriptor
    ModeData.header_length(ten), ModeData.block_descriptor_pointer(name, ten), data.pages_pointer(ten)
                                                          bytes of the parameter list, for 05/26/00 field pointers
    LogParameter(code, value, control), encode_log_page(page, params) / decode_log_page(data) -> (page, params)
    encode_supported_log_pages(pages) / decode_supported_log_pages(data)               LOG SENSE page 0x00
    encode_lun(lun) / decode_lun(raw), encode_report_luns(luns) / decode_report_luns(data),
        report_luns_length(data)                                                       REPORT LUNS

Every layout follows reference/scsi.md §2; a comment gives the byte where the table is not obvious.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.scsi.cdb import Cdb, Field

PDT_TAPE = 0x01
PDT_CHANGER = 0x08

PAGE_CONTROL_CURRENT = 0
PAGE_CONTROL_CHANGEABLE = 1
PAGE_CONTROL_DEFAULT = 2
PAGE_CONTROL_SAVED = 3
LOG_PAGE_CONTROL_CUMULATIVE = 1  # LOG SENSE PC 01b: current cumulative values

ALLOW_MEDIUM_REMOVAL = 0
PREVENT_MEDIUM_REMOVAL = 1

TEST_UNIT_READY = Cdb("TEST UNIT READY", 0x00, 6)
REQUEST_SENSE = Cdb("REQUEST SENSE", 0x03, 6, {"desc": Field(1, mask=0x01), "alloc": Field(4)})
INQUIRY = Cdb(
    "INQUIRY", 0x12, 6, {"evpd": Field(1, mask=0x01), "page_code": Field(2), "alloc": Field(3, width=2)}
)
MODE_SENSE_6 = Cdb(
    "MODE SENSE(6)",
    0x1A,
    6,
    {
        "dbd": Field(1, mask=0x08),  # disable block descriptors
        "pc": Field(2, mask=0xC0),
        "page_code": Field(2, mask=0x3F),
        "subpage": Field(3),
        "alloc": Field(4),
    },
)
MODE_SENSE_10 = Cdb(
    "MODE SENSE(10)",
    0x5A,
    10,
    {
        "llbaa": Field(1, mask=0x10),
        "dbd": Field(1, mask=0x08),
        "pc": Field(2, mask=0xC0),
        "page_code": Field(2, mask=0x3F),
        "subpage": Field(3),
        "alloc": Field(7, width=2),
    },
)
MODE_SELECT_6 = Cdb(
    "MODE SELECT(6)", 0x15, 6, {"pf": Field(1, mask=0x10), "sp": Field(1, mask=0x01), "param_len": Field(4)}
)
MODE_SELECT_10 = Cdb(
    "MODE SELECT(10)",
    0x55,
    10,
    {"pf": Field(1, mask=0x10), "sp": Field(1, mask=0x01), "param_len": Field(7, width=2)},
)
LOG_SENSE = Cdb(
    "LOG SENSE",
    0x4D,
    10,
    {
        "ppc": Field(1, mask=0x02),
        "sp": Field(1, mask=0x01),
        "pc": Field(2, mask=0xC0),
        "page_code": Field(2, mask=0x3F),
        "subpage": Field(3),
        "param_pointer": Field(5, width=2),
        "alloc": Field(7, width=2),
    },
)
PREVENT_ALLOW_MEDIUM_REMOVAL = Cdb("PREVENT ALLOW MEDIUM REMOVAL", 0x1E, 6, {"prevent": Field(4, mask=0x03)})
REPORT_LUNS = Cdb("REPORT LUNS", 0xA0, 12, {"select_report": Field(2), "alloc": Field(6, width=4)})
REPORT_LUNS_ALL = 0x00  # SELECT REPORT: every logical unit
REPORT_LUNS_WELL_KNOWN = 0x01  # only well-known logical units (REPORT LUNS, ACCESS CONTROLS, ...)
REPORT_LUNS_ALL_AND_WELL_KNOWN = 0x02
REPORT_LUNS_MIN_ALLOC = 16  # SPC-3: a smaller allocation length is an invalid field (header + one LUN)

COMMANDS = (
    TEST_UNIT_READY,
    REQUEST_SENSE,
    INQUIRY,
    MODE_SENSE_6,
    MODE_SENSE_10,
    MODE_SELECT_6,
    MODE_SELECT_10,
    LOG_SENSE,
    PREVENT_ALLOW_MEDIUM_REMOVAL,
    REPORT_LUNS,
)


# --- INQUIRY data -----------------------------------------------------------------------------------------------

INQUIRY_STANDARD_LENGTH = 36
INQUIRY_VENDOR_SPECIFIC_LENGTH = 20  # bytes 36-55; IBM LTO drives put the serial number here


def _ascii(text: str, size: int, what: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{what} {text!r} is longer than {size} characters")
    return raw.ljust(size, b" ")


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").rstrip(" \0")


@dataclass(frozen=True, slots=True)
class InquiryData:
    """Standard INQUIRY data (reference/scsi.md §2). Strings are stored without their space padding."""

    pdt: int
    vendor: str
    product: str
    revision: str
    rmb: bool = False  # removable medium: 1 on tape drives
    version: int = 0x06  # SPC-4
    hisup: bool = False
    response_format: int = 2
    mchngr: bool = False  # must stay 0 on a changer LUN, or mtx switches to the "attached changer" opcodes
    encserv: bool = False
    multip: bool = False
    cmdque: bool = False
    qualifier: int = 0
    vendor_specific: bytes = b""  # bytes 36-55 when present (padded with NULs to 20)

    def encode(self) -> bytes:
        """The whole reply; a target truncates it to the CDB's allocation length."""
        extra = self.vendor_specific.ljust(INQUIRY_VENDOR_SPECIFIC_LENGTH, b"\0") if self.vendor_specific else b""
        if len(extra) > INQUIRY_VENDOR_SPECIFIC_LENGTH:
            raise ValueError(f"vendor-specific INQUIRY data is {len(extra)} bytes, at most 20 fit")
        head = bytes(
            [
                (self.qualifier << 5) | self.pdt,
                0x80 * self.rmb,
                self.version,
                (0x10 * self.hisup) | self.response_format,
                INQUIRY_STANDARD_LENGTH + len(extra) - 5,  # additional length: bytes after byte 4
                0,
                (0x40 * self.encserv) | (0x10 * self.multip) | (0x08 * self.mchngr),
                0x02 * self.cmdque,
            ]
        )
        return (
            head
            + _ascii(self.vendor, 8, "vendor")
            + _ascii(self.product, 16, "product")
            + _ascii(self.revision, 4, "revision")
            + extra
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> InquiryData:
        data = bytes(data)
        if len(data) < INQUIRY_STANDARD_LENGTH:
            raise ValueError(f"INQUIRY data is {len(data)} bytes, needs at least {INQUIRY_STANDARD_LENGTH}")
        end = min(len(data), data[4] + 5)
        return cls(
            pdt=data[0] & 0x1F,
            qualifier=data[0] >> 5,
            rmb=bool(data[1] & 0x80),
            version=data[2],
            hisup=bool(data[3] & 0x10),
            response_format=data[3] & 0x0F,
            mchngr=bool(data[6] & 0x08),
            encserv=bool(data[6] & 0x40),
            multip=bool(data[6] & 0x10),
            cmdque=bool(data[7] & 0x02),
            vendor=_text(data[8:16]),
            product=_text(data[16:32]),
            revision=_text(data[32:36]),
            vendor_specific=data[36 : min(end, 56)],
        )


# --- Vital product data pages -----------------------------------------------------------------------------------

VPD_SUPPORTED_PAGES = 0x00
VPD_UNIT_SERIAL_NUMBER = 0x80
VPD_DEVICE_IDENTIFICATION = 0x83

CODE_SET_BINARY = 1
CODE_SET_ASCII = 2
DESIGNATOR_T10_VENDOR = 1
DESIGNATOR_NAA = 3


@dataclass(frozen=True, slots=True)
class Designator:
    """One identification descriptor of VPD page 0x83."""

    designator_type: int
    identifier: bytes
    code_set: int = CODE_SET_ASCII
    association: int = 0  # 0 = the logical unit
    protocol: int = 0
    piv: bool = False

    @classmethod
    def t10_vendor(cls, vendor: str, product: str, serial: str) -> Designator:
        """T10 vendor ID based: vendor (8) + product (16) + serial, as udev's /dev/tape/by-id names use."""
        return cls(DESIGNATOR_T10_VENDOR, _ascii(vendor, 8, "vendor") + _ascii(product, 16, "product") + serial.encode())

    def encode(self) -> bytes:
        return (
            bytes(
                [
                    (self.protocol << 4) | self.code_set,
                    (0x80 * self.piv) | (self.association << 4) | self.designator_type,
                    0,
                    len(self.identifier),
                ]
            )
            + self.identifier
        )


def encode_vpd(pdt: int, page: int, payload: bytes) -> bytes:
    return bytes([pdt, page]) + len(payload).to_bytes(2, "big") + payload


def decode_vpd(data: bytes | bytearray | memoryview) -> tuple[int, int, bytes]:
    """(pdt, page code, payload) of any VPD page; the payload is cut to the page length when more came."""
    data = bytes(data)
    if len(data) < 4:
        raise ValueError(f"VPD page is {len(data)} bytes, needs at least 4")
    return data[0] & 0x1F, data[1], data[4 : 4 + int.from_bytes(data[2:4], "big")]


def encode_vpd_supported_pages(pdt: int, pages: tuple[int, ...]) -> bytes:
    return encode_vpd(pdt, VPD_SUPPORTED_PAGES, bytes(sorted(pages)))


def decode_vpd_supported_pages(data: bytes) -> tuple[int, ...]:
    return tuple(decode_vpd(data)[2])


def encode_vpd_serial(pdt: int, serial: str) -> bytes:
    return encode_vpd(pdt, VPD_UNIT_SERIAL_NUMBER, serial.encode("ascii"))


def decode_vpd_serial(data: bytes) -> str:
    return _text(decode_vpd(data)[2]).strip()


def encode_vpd_device_identification(pdt: int, designators: tuple[Designator, ...]) -> bytes:
    return encode_vpd(pdt, VPD_DEVICE_IDENTIFICATION, b"".join(d.encode() for d in designators))


def decode_vpd_device_identification(data: bytes) -> tuple[Designator, ...]:
    payload = decode_vpd(data)[2]
    found = []
    at = 0
    while at + 4 <= len(payload):
        length = payload[at + 3]
        found.append(
            Designator(
                designator_type=payload[at + 1] & 0x0F,
                identifier=payload[at + 4 : at + 4 + length],
                code_set=payload[at] & 0x0F,
                association=(payload[at + 1] >> 4) & 0x03,
                protocol=payload[at] >> 4,
                piv=bool(payload[at + 1] & 0x80),
            )
        )
        at += 4 + length
    return tuple(found)


# --- MODE SENSE / MODE SELECT parameter data ---------------------------------------------------------------------


BLOCK_DESCRIPTOR_LENGTH = 8
# Short (mode parameter) block descriptor, reference/scsi.md §4: field -> (byte offset, width); byte 4 is reserved.
_BLOCK_DESCRIPTOR_FIELDS = {"density": (0, 1), "blocks": (1, 3), "block_length": (5, 3)}


@dataclass(frozen=True, slots=True)
class BlockDescriptor:
    density: int = 0  # 0 = the drive's default on write
    blocks: int = 0
    block_length: int = 0  # 0 = variable-block mode

    def encode(self) -> bytes:
        out = bytearray(BLOCK_DESCRIPTOR_LENGTH)
        for name, (at, width) in _BLOCK_DESCRIPTOR_FIELDS.items():
            out[at : at + width] = getattr(self, name).to_bytes(width, "big")
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> BlockDescriptor:
        return cls(**{name: int.from_bytes(data[at : at + width], "big")
                      for name, (at, width) in _BLOCK_DESCRIPTOR_FIELDS.items()})

    @staticmethod
    def offset(name: str) -> int:
        """Byte of field `name` within the descriptor."""
        return _BLOCK_DESCRIPTOR_FIELDS[name][0]


@dataclass(frozen=True, slots=True)
class ModeData:
    """A mode parameter list: header, optional block descriptor, pages (raw, each with its own page header).

    `wp`, `buffered_mode` and `speed` are the tape meaning of the device-specific byte (b7, b6-4, b3-0); a changer
    leaves them 0.
    """

    medium_type: int = 0
    wp: bool = False
    buffered_mode: int = 0
    speed: int = 0
    block_descriptor: BlockDescriptor | None = None
    pages: tuple[bytes, ...] = ()

    def page(self, code: int) -> bytes | None:
        return next((p for p in self.pages if p[0] & 0x3F == code), None)

    @staticmethod
    def header_length(ten: bool = False) -> int:
        """The mode parameter header: 4 bytes for the (6) commands, 8 for the (10) ones."""
        return 8 if ten else 4

    @staticmethod
    def block_descriptor_pointer(name: str, ten: bool = False) -> int:
        """Byte of block descriptor field `name` within the parameter list (the first descriptor)."""
        return ModeData.header_length(ten) + BlockDescriptor.offset(name)

    def pages_pointer(self, ten: bool = False) -> int:
        """Byte where the first page starts within the parameter list."""
        return self.header_length(ten) + (BLOCK_DESCRIPTOR_LENGTH if self.block_descriptor else 0)

    def encode(self, ten: bool = False, for_select: bool = False) -> bytes:
        """MODE SENSE(6) layout, or MODE SENSE(10) with `ten`; MODE SELECT sends the mode data length as 0."""
        descriptors = self.block_descriptor.encode() if self.block_descriptor else b""
        body = descriptors + b"".join(self.pages)
        device_specific = (0x80 * self.wp) | (self.buffered_mode << 4) | self.speed
        if ten:
            length = 0 if for_select else len(body) + 6
            header = length.to_bytes(2, "big") + bytes([self.medium_type, device_specific, 0, 0])
            header += len(descriptors).to_bytes(2, "big")
        else:
            length = 0 if for_select else len(body) + 3
            header = bytes([length, self.medium_type, device_specific, len(descriptors)])
        return header + body

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, ten: bool = False) -> ModeData:
        data = bytes(data)
        header_len = cls.header_length(ten)
        if len(data) < header_len:
            raise ValueError(f"mode parameter data is {len(data)} bytes, needs a {header_len}-byte header")
        if ten:
            total = int.from_bytes(data[0:2], "big") + 2
            descriptors_len = int.from_bytes(data[6:8], "big")
        else:
            total = data[0] + 1
            descriptors_len = data[3]
        medium_type, device_specific = (data[2], data[3]) if ten else (data[1], data[2])
        end = min(len(data), total) if total > 2 else len(data)  # MODE SELECT lists carry length 0
        at = header_len
        size = BLOCK_DESCRIPTOR_LENGTH
        descriptor = BlockDescriptor.decode(data[at : at + size]) if descriptors_len >= size and end >= at + size else None
        at += descriptors_len
        pages = []
        while at + 2 <= end:
            spf = data[at] & 0x40
            size = (4 + int.from_bytes(data[at + 2 : at + 4], "big")) if spf else 2 + data[at + 1]
            pages.append(data[at : at + size])
            at += size
        return cls(
            medium_type=medium_type,
            wp=bool(device_specific & 0x80),
            buffered_mode=(device_specific >> 4) & 0x07,
            speed=device_specific & 0x0F,
            block_descriptor=descriptor,
            pages=tuple(pages),
        )


# --- LOG SENSE parameter data ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogParameter:
    code: int
    value: bytes
    control: int = 0

    @property
    def number(self) -> int:
        return int.from_bytes(self.value, "big")


def encode_log_page(page: int, parameters: tuple[LogParameter, ...] | list[LogParameter], subpage: int = 0) -> bytes:
    body = b"".join(
        p.code.to_bytes(2, "big") + bytes([p.control, len(p.value)]) + p.value for p in parameters
    )
    return bytes([page | (0x40 if subpage else 0), subpage]) + len(body).to_bytes(2, "big") + body


def decode_log_page(data: bytes | bytearray | memoryview) -> tuple[int, tuple[LogParameter, ...]]:
    """(page code, parameters); stops at the page length or at the end of what came back."""
    data = bytes(data)
    if len(data) < 4:
        raise ValueError(f"log page is {len(data)} bytes, needs a 4-byte header")
    end = min(len(data), 4 + int.from_bytes(data[2:4], "big"))
    params = []
    at = 4
    while at + 4 <= end:
        size = data[at + 3]
        params.append(LogParameter(int.from_bytes(data[at : at + 2], "big"), data[at + 4 : at + 4 + size], data[at + 2]))
        at += 4 + size
    return data[0] & 0x3F, tuple(params)


LOG_PAGE_SUPPORTED = 0x00


def encode_supported_log_pages(pages: tuple[int, ...] | list[int]) -> bytes:
    """LOG SENSE page 0x00: a page header, then one byte per supported page code, ascending (SPC-4 7.3.18)."""
    codes = sorted(set(pages) | {LOG_PAGE_SUPPORTED})
    if any(not 0 <= c <= 0x3F for c in codes):
        raise ValueError(f"log page codes are 0x00..0x3F, not {[hex(c) for c in codes if not 0 <= c <= 0x3F]}")
    return bytes([LOG_PAGE_SUPPORTED, 0]) + len(codes).to_bytes(2, "big") + bytes(codes)


def decode_supported_log_pages(data: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """The page codes of a page 0x00 reply, cut to the page length or to what came back."""
    data = bytes(data)
    if len(data) < 4:
        raise ValueError(f"log page is {len(data)} bytes, needs a 4-byte header")
    if data[0] & 0x3F != LOG_PAGE_SUPPORTED:
        raise ValueError(f"log page {data[0] & 0x3F:#04x} is not the supported pages list (0x00)")
    return tuple(b & 0x3F for b in data[4 : 4 + int.from_bytes(data[2:4], "big")])


# --- REPORT LUNS parameter data ----------------------------------------------------------------------------------
# A LUN is 8 bytes (SAM-5 4.6); a single-level LUN uses the first two. LUNs 0-255 use peripheral device addressing
# (method 00b, bus 0: `00 LL`), 256-16383 flat space addressing (method 01b: `4H LL`), as Linux and tgt send them.
LUN_PERIPHERAL = 0x00
LUN_FLAT_SPACE = 0x40
LUN_METHOD_MASK = 0xC0
MAX_FLAT_LUN = 0x3FFF


def encode_lun(lun: int) -> bytes:
    if not 0 <= lun <= MAX_FLAT_LUN:
        raise ValueError(f"single-level LUN {lun} is out of range 0..{MAX_FLAT_LUN}")
    first = bytes([LUN_PERIPHERAL, lun]) if lun <= 0xFF else bytes([LUN_FLAT_SPACE | lun >> 8, lun & 0xFF])
    return first + bytes(6)


def decode_lun(raw: bytes | bytearray | memoryview) -> int:
    raw = bytes(raw)
    if len(raw) != 8:
        raise ValueError(f"a LUN is 8 bytes, not {len(raw)}")
    if any(raw[2:]):
        raise ValueError(f"LUN {raw.hex()} is hierarchical (more than one level); only single-level LUNs decode")
    method = raw[0] & LUN_METHOD_MASK
    if method == LUN_PERIPHERAL:
        if raw[0] & 0x3F:
            raise ValueError(f"LUN {raw.hex()} names bus {raw[0] & 0x3F}; only bus 0 decodes to a number")
        return raw[1]
    if method == LUN_FLAT_SPACE:
        return (raw[0] & 0x3F) << 8 | raw[1]
    raise ValueError(f"LUN {raw.hex()} uses address method {method >> 6}, not peripheral (0) or flat space (1)")


def encode_report_luns(luns: tuple[int, ...] | list[int]) -> bytes:
    """The whole reply: LUN list length (4 bytes, n * 8), 4 reserved bytes, then the LUNs ascending."""
    body = b"".join(encode_lun(n) for n in sorted(set(luns)))
    return len(body).to_bytes(4, "big") + bytes(4) + body


def decode_report_luns(data: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """The LUNs listed; only whole entries that came back (the list length may promise more than alloc let in)."""
    data = bytes(data)
    if len(data) < 8:
        raise ValueError(f"REPORT LUNS data is {len(data)} bytes, needs an 8-byte header")
    end = min(len(data), 8 + int.from_bytes(data[0:4], "big"))
    return tuple(decode_lun(data[at : at + 8]) for at in range(8, end - 7, 8))


def report_luns_length(data: bytes | bytearray | memoryview) -> int:
    """Bytes the whole reply needs (header + every LUN), to retry with a big enough allocation length."""
    return 8 + int.from_bytes(bytes(data[0:4]), "big")
