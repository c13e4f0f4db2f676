"""SSC-3 sequential-access (tape) commands (PDT 1): CDB tables (phase 1) and their data codecs.

Public API:

    READ_6, WRITE_6, WRITE_FILEMARKS_6, SPACE_6, SPACE_16, REWIND, LOAD_UNLOAD, LOCATE_10, LOCATE_16,
    READ_POSITION, READ_BLOCK_LIMITS, ERASE              `Cdb` tables, e.g.
        WRITE_6.encode(fixed=0, length=262144)           one variable block of 256 KiB
        SPACE_6.encode(code=SPACE_FILEMARKS, count=-1)   the count is signed 24-bit (two's complement)
        LOCATE_16.encode(identifier=1234)
    SPACE_BLOCKS, SPACE_FILEMARKS, SPACE_SEQUENTIAL_FILEMARKS, SPACE_END_OF_DATA   SPACE codes
    LOCATE_DEST_OBJECT, LOCATE_DEST_FILE, LOCATE_DEST_EOD                         LOCATE(16) DEST_TYPE
    READ_POSITION_SHORT, READ_POSITION_LONG, READ_POSITION_EXTENDED                READ POSITION service actions

Layouts follow reference/scsi.md §4.
"""

from __future__ import annotations

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
)
