"""SSC-3 sequential-access (tape) commands (PDT 1): CDB tables (phase 1) and their data codecs.

Public API:

    READ_6, WRITE_6, WRITE_FILEMARKS_6, SPACE_6, SPACE_16, REWIND, LOAD_UNLOAD, LOCATE_10, LOCATE_16,
    READ_POSITION, READ_BLOCK_LIMITS, ERASE, READ_ATTRIBUTE   `Cdb` tables, e.g.
        WRITE_6.encode(fixed=0, length=262144)           one variable block of 256 KiB
        SPACE_6.encode(code=SPACE_FILEMARKS, count=-1)   the count is signed 24-bit (two's complement)
        LOCATE_16.encode(identifier=1234)
    SPACE_BLOCKS, SPACE_FILEMARKS, SPACE_SEQUENTIAL_FILEMARKS, SPACE_END_OF_DATA   SPACE codes
    LOCATE_DEST_OBJECT, LOCATE_DEST_FILE, LOCATE_DEST_EOD                         LOCATE(16) DEST_TYPE
    READ_POSITION_SHORT, READ_POSITION_LONG, READ_POSITION_EXTENDED                READ POSITION service actions

  Data:
    Position(block, partition, bop, eop, bpew, ..., file, set_number)   READ POSITION; .encode(service_action) /
        Position.decode(data, service_action): short form 20 bytes (00), long form 32 bytes (06)
    BlockLimits(max_block, min_block, granularity)                     READ BLOCK LIMITS, 6 bytes
    CompressionPage (mode page 0x0F), DeviceConfigurationPage (0x10)   .encode() -> page bytes / .decode(page)
    TapeAlert and tape capacity log pages: `drivers.scsi.tapelog`
    Attribute(identifier, value, format, read_only)                     one MAM attribute (READ ATTRIBUTE, SPC-4)
        encode_attributes(attrs) / decode_attributes(data)             the ATTRIBUTE VALUES reply (service action 00)
        barcode_attribute("A00012L8") -> Attribute                     MAM 0x0806 BARCODE: 32 ASCII bytes, space padded

Layouts follow reference/scsi.md §4.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.scsi.cdb import Cdb, Field

SPACE_BLOCKS = 0
SPACE_FILEMARKS = 1
SPACE_SEQUENTIAL_FILEMARKS = 2
SPACE_END_OF_DATA = 3

LOCATE_DEST_OBJECT = 0
LOCATE_DEST_FILE = 1
LOCATE_DEST_EOD = 3

READ_POSITION_SHORT = 0x00
READ_POSITION_LONG = 0x06
READ_POSITION_EXTENDED = 0x08

READ_6 = Cdb(
    "READ", 0x08, 6, {"sili": Field(1, mask=0x02), "fixed": Field(1, mask=0x01), "length": Field(2, width=3)}
)
WRITE_6 = Cdb("WRITE", 0x0A, 6, {"fixed": Field(1, mask=0x01), "length": Field(2, width=3)})
WRITE_FILEMARKS_6 = Cdb(
    "WRITE FILEMARKS",
    0x10,
    6,
    {"wsmk": Field(1, mask=0x02), "immed": Field(1, mask=0x01), "count": Field(2, width=3)},
)
SPACE_6 = Cdb("SPACE", 0x11, 6, {"code": Field(1, mask=0x0F), "count": Field(2, width=3, signed=True)})
SPACE_16 = Cdb(
    "SPACE(16)",
    0x91,
    16,
    {"code": Field(1, mask=0x0F), "partition": Field(3), "count": Field(4, width=8, signed=True)},
)
REWIND = Cdb("REWIND", 0x01, 6, {"immed": Field(1, mask=0x01)})
LOAD_UNLOAD = Cdb(
    "LOAD UNLOAD",
    0x1B,
    6,
    {
        "immed": Field(1, mask=0x01),
        "hold": Field(4, mask=0x08),
        "eot": Field(4, mask=0x04),
        "reten": Field(4, mask=0x02),
        "load": Field(4, mask=0x01),  # 1 = thread and go to BOP, 0 = rewind and eject
    },
)
LOCATE_10 = Cdb(
    "LOCATE(10)",
    0x2B,
    10,
    {
        "bt": Field(1, mask=0x04),  # block address is vendor-specific (device) rather than logical
        "cp": Field(1, mask=0x02),  # change partition
        "immed": Field(1, mask=0x01),
        "block": Field(3, width=4),
        "partition": Field(8),
    },
)
LOCATE_16 = Cdb(
    "LOCATE(16)",
    0x92,
    16,
    {
        "dest_type": Field(1, mask=0x38),
        "cp": Field(1, mask=0x02),
        "immed": Field(1, mask=0x01),
        "bam": Field(2, mask=0x01),
        "partition": Field(3),
        "identifier": Field(4, width=8),
    },
)
READ_POSITION = Cdb(
    "READ POSITION", 0x34, 10, {"service_action": Field(1, mask=0x1F), "alloc": Field(7, width=2)}
)
READ_BLOCK_LIMITS = Cdb("READ BLOCK LIMITS", 0x05, 6)
ERASE = Cdb("ERASE", 0x19, 6, {"immed": Field(1, mask=0x02), "long": Field(1, mask=0x01)})
# READ ATTRIBUTE is SPC-4, but only the tape's cartridge memory (MAM) answers it, so it lives with the tape commands.
READ_ATTRIBUTE = Cdb(
    "READ ATTRIBUTE",
    0x8C,
    16,
    {
        "service_action": Field(1, mask=0x1F),
        "volume": Field(5),
        "partition": Field(7),
        "first_attribute": Field(8, width=2),  # the reply lists this attribute and every higher one the medium has
        "alloc": Field(10, width=4),
        "cache": Field(14, mask=0x01),
    },
)

COMMANDS = (
    READ_6,
    WRITE_6,
    WRITE_FILEMARKS_6,
    SPACE_6,
    SPACE_16,
    REWIND,
    LOAD_UNLOAD,
    LOCATE_10,
    LOCATE_16,
    READ_POSITION,
    READ_BLOCK_LIMITS,
    ERASE,
    READ_ATTRIBUTE,
)


# --- READ POSITION ------------------------------------------------------------------------------------------------

READ_POSITION_SHORT_LENGTH = 20
READ_POSITION_LONG_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Position:
    """READ POSITION data. `block` counts blocks and filemarks from BOP (the object before which the head sits).

    The short form (service action 00) carries `last_block` and the buffer counts; the long form (06) carries
    `file` (filemarks before the position) and `set_number`. Fields the form lacks decode as None.
    """

    block: int
    partition: int = 0
    bop: bool = False
    eop: bool = False  # between early warning and the end of the partition
    bpew: bool = False  # beyond programmable early warning
    position_unknown: bool = False  # LOLU (short) / LONU (long)
    last_block: int | None = None
    blocks_in_buffer: int | None = None
    bytes_in_buffer: int | None = None
    perr: bool = False  # a count overflowed its field
    file: int | None = None
    set_number: int | None = None

    def encode(self, service_action: int = READ_POSITION_SHORT) -> bytes:
        if service_action == READ_POSITION_LONG:
            flags = (0x80 * self.bop) | (0x40 * self.eop) | (0x04 * self.position_unknown) | self.bpew
            return (
                bytes([flags, 0, 0, 0])
                + self.partition.to_bytes(4, "big")
                + self.block.to_bytes(8, "big")
                + (self.file or 0).to_bytes(8, "big")
                + (self.set_number or 0).to_bytes(8, "big")
            )
        if service_action != READ_POSITION_SHORT:
            raise ValueError(f"READ POSITION service action {service_action:#04x} has no codec here (00 or 06)")
        flags = (0x80 * self.bop) | (0x40 * self.eop) | (0x04 * self.position_unknown) | (0x02 * self.perr) | self.bpew
        last = self.block if self.last_block is None else self.last_block
        return (
            bytes([flags, self.partition, 0, 0])
            + self.block.to_bytes(4, "big")
            + last.to_bytes(4, "big")
            + b"\0"
            + (self.blocks_in_buffer or 0).to_bytes(3, "big")
            + (self.bytes_in_buffer or 0).to_bytes(4, "big")
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, service_action: int = READ_POSITION_SHORT) -> Position:
        data = bytes(data)
        flags = data[0] if data else 0
        if service_action == READ_POSITION_LONG:
            if len(data) < READ_POSITION_LONG_LENGTH:
                raise ValueError(f"long READ POSITION data is {len(data)} bytes, needs 32")
            return cls(
                block=int.from_bytes(data[8:16], "big"),
                partition=int.from_bytes(data[4:8], "big"),
                bop=bool(flags & 0x80),
                eop=bool(flags & 0x40),
                bpew=bool(flags & 0x01),
                position_unknown=bool(flags & 0x04),
                file=int.from_bytes(data[16:24], "big"),
                set_number=int.from_bytes(data[24:32], "big"),
            )
        if len(data) < READ_POSITION_SHORT_LENGTH:
            raise ValueError(f"short READ POSITION data is {len(data)} bytes, needs 20")
        return cls(
            block=int.from_bytes(data[4:8], "big"),
            partition=data[1],
            bop=bool(flags & 0x80),
            eop=bool(flags & 0x40),
            bpew=bool(flags & 0x01),
            position_unknown=bool(flags & 0x04),
            perr=bool(flags & 0x02),
            last_block=int.from_bytes(data[8:12], "big"),
            blocks_in_buffer=int.from_bytes(data[13:16], "big"),
            bytes_in_buffer=int.from_bytes(data[16:20], "big"),
        )


# --- READ BLOCK LIMITS ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockLimits:
    max_block: int = 0x800000  # LTO: 8 MiB
    min_block: int = 1
    granularity: int = 0  # block lengths must be multiples of 2**granularity

    def encode(self) -> bytes:
        return bytes([self.granularity & 0x1F]) + self.max_block.to_bytes(3, "big") + self.min_block.to_bytes(2, "big")

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> BlockLimits:
        data = bytes(data)
        if len(data) < 6:
            raise ValueError(f"READ BLOCK LIMITS data is {len(data)} bytes, needs 6")
        return cls(int.from_bytes(data[1:4], "big"), int.from_bytes(data[4:6], "big"), data[0] & 0x1F)


# --- MODE pages of a tape drive (in a `drivers.scsi.spc.ModeData`) --------------------------------------------------

PAGE_COMPRESSION = 0x0F
PAGE_DEVICE_CONFIGURATION = 0x10
LTO_COMPRESSION_ALGORITHM = 0xFF  # LTO reports "vendor default" rather than a registered algorithm


@dataclass(frozen=True, slots=True)
class CompressionPage:
    """Mode page 0x0F: DCE turns compression on for writes; DDE for reads; DCC says the drive can compress."""

    dce: bool = True
    dcc: bool = True
    dde: bool = True
    compression_algorithm: int = LTO_COMPRESSION_ALGORITHM
    decompression_algorithm: int = LTO_COMPRESSION_ALGORITHM
    ps: bool = False

    def encode(self) -> bytes:
        return (
            bytes([0x80 * self.ps | PAGE_COMPRESSION, 0x0E, (0x80 * self.dce) | (0x40 * self.dcc), 0x80 * self.dde])
            + self.compression_algorithm.to_bytes(4, "big")
            + self.decompression_algorithm.to_bytes(4, "big")
            + bytes(4)
        )

    @classmethod
    def decode(cls, page: bytes) -> CompressionPage:
        if len(page) < 12 or page[0] & 0x3F != PAGE_COMPRESSION:
            raise ValueError("not a data compression page (0x0F, 16 bytes)")
        return cls(
            dce=bool(page[2] & 0x80),
            dcc=bool(page[2] & 0x40),
            dde=bool(page[3] & 0x80),
            compression_algorithm=int.from_bytes(page[4:8], "big"),
            decompression_algorithm=int.from_bytes(page[8:12], "big"),
            ps=bool(page[0] & 0x80),
        )


@dataclass(frozen=True, slots=True)
class DeviceConfigurationPage:
    """Mode page 0x10 (the fields tapeinfo and st look at; the rest are written as 0)."""

    active_partition: int = 0
    write_buffer_full_ratio: int = 0
    read_buffer_empty_ratio: int = 0
    write_delay_time: int = 0  # 100 ms units
    rew: bool = False  # report early warning on reads
    eod_defined: int = 0
    eeg: bool = True  # enable EOD generation
    sew: bool = True  # synchronize at early warning
    buffer_size_at_early_warning: int = 0
    select_compression: int = 1  # 0 = off, 1 = the default algorithm
    ps: bool = False

    def encode(self) -> bytes:
        return bytes(
            [
                0x80 * self.ps | PAGE_DEVICE_CONFIGURATION,
                0x0E,
                0,  # CAP, CAF, active format
                self.active_partition,
                self.write_buffer_full_ratio,
                self.read_buffer_empty_ratio,
                *self.write_delay_time.to_bytes(2, "big"),
                0x01 * self.rew,
                0,  # gap size
                (self.eod_defined << 5) | (0x10 * self.eeg) | (0x08 * self.sew),
                *self.buffer_size_at_early_warning.to_bytes(3, "big"),
                self.select_compression,
                0,
            ]
        )

    @classmethod
    def decode(cls, page: bytes) -> DeviceConfigurationPage:
        if len(page) < 16 or page[0] & 0x3F != PAGE_DEVICE_CONFIGURATION:
            raise ValueError("not a device configuration page (0x10, 16 bytes)")
        return cls(
            active_partition=page[3],
            write_buffer_full_ratio=page[4],
            read_buffer_empty_ratio=page[5],
            write_delay_time=int.from_bytes(page[6:8], "big"),
            rew=bool(page[8] & 0x01),
            eod_defined=page[10] >> 5,
            eeg=bool(page[10] & 0x10),
            sew=bool(page[10] & 0x08),
            buffer_size_at_early_warning=int.from_bytes(page[11:14], "big"),
            select_compression=page[14],
            ps=bool(page[0] & 0x80),
        )


# --- READ ATTRIBUTE (medium auxiliary memory) -------------------------------------------------------------------------

READ_ATTRIBUTE_VALUES = 0x00  # service action: the attributes themselves
ATTRIBUTE_FORMAT_BINARY = 0
ATTRIBUTE_FORMAT_ASCII = 1
ATTRIBUTE_FORMAT_TEXT = 2
MAM_BARCODE = 0x0806
MAM_BARCODE_LENGTH = 32
ATTRIBUTE_HEADER_LENGTH = 5


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute: identifier (2 bytes), READ ONLY and FORMAT (1 byte), length (2 bytes), then the value."""

    identifier: int
    value: bytes
    format: int = ATTRIBUTE_FORMAT_BINARY
    read_only: bool = False

    def encode(self) -> bytes:
        return (
            self.identifier.to_bytes(2, "big")
            + bytes([(0x80 * self.read_only) | (self.format & 0x03)])
            + len(self.value).to_bytes(2, "big")
            + self.value
        )

    @property
    def text(self) -> str:
        """An ASCII attribute without its padding (ASCII attributes are left-aligned, padded with spaces)."""
        return self.value.decode("ascii", "replace").rstrip(" \0")


def barcode_attribute(barcode: str) -> Attribute:
    raw = barcode.encode("ascii")
    if len(raw) > MAM_BARCODE_LENGTH:
        raise ValueError(f"barcode {barcode!r} is longer than the {MAM_BARCODE_LENGTH} bytes of MAM attribute 0x0806")
    return Attribute(MAM_BARCODE, raw.ljust(MAM_BARCODE_LENGTH), ATTRIBUTE_FORMAT_ASCII)


def encode_attributes(attributes: tuple[Attribute, ...] | list[Attribute]) -> bytes:
    """The ATTRIBUTE VALUES reply: AVAILABLE DATA (4 bytes: the length of what follows), then each attribute."""
    body = b"".join(a.encode() for a in attributes)
    return len(body).to_bytes(4, "big") + body


def decode_attributes(data: bytes | bytearray | memoryview) -> tuple[Attribute, ...]:
    """The attributes of an ATTRIBUTE VALUES reply; one cut short by the allocation length is left out."""
    data = bytes(data)
    if len(data) < 4:
        raise ValueError(f"READ ATTRIBUTE data is {len(data)} bytes, needs at least 4")
    end = min(len(data), 4 + int.from_bytes(data[0:4], "big"))
    found, at = [], 4
    while at + ATTRIBUTE_HEADER_LENGTH <= end:
        length = int.from_bytes(data[at + 3 : at + 5], "big")
        if at + ATTRIBUTE_HEADER_LENGTH + length > end:
            break
        found.append(
            Attribute(
                identifier=int.from_bytes(data[at : at + 2], "big"),
                value=data[at + ATTRIBUTE_HEADER_LENGTH : at + ATTRIBUTE_HEADER_LENGTH + length],
                format=data[at + 2] & 0x03,
                read_only=bool(data[at + 2] & 0x80),
            )
        )
        at += ATTRIBUTE_HEADER_LENGTH + length
    return tuple(found)
