"""SMC-3 medium changer commands (PDT 8): CDB tables (phase 1) and their data codecs.

Public API:

    ELEMENT_ALL, ELEMENT_TRANSPORT, ELEMENT_STORAGE, ELEMENT_IMPORT_EXPORT, ELEMENT_DATA_TRANSFER   element types
    READ_ELEMENT_STATUS, MOVE_MEDIUM, INITIALIZE_ELEMENT_STATUS, INITIALIZE_ELEMENT_STATUS_WITH_RANGE,
    POSITION_TO_ELEMENT                                   `Cdb` tables, e.g.
        READ_ELEMENT_STATUS.encode(voltag=1, element_type=ELEMENT_STORAGE, start=0x400, count=24, alloc=2048)
        MOVE_MEDIUM.encode(source=0x400, destination=0x100)

Layouts follow reference/scsi.md §3. MOVE MEDIUM's byte 11 carries mtx's `eepos` in bits 7-6, so its control field
is bits 5-0 only.
"""

from __future__ import annotations

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

COMMANDS = (
    READ_ELEMENT_STATUS,
    MOVE_MEDIUM,
    INITIALIZE_ELEMENT_STATUS,
    INITIALIZE_ELEMENT_STATUS_WITH_RANGE,
    POSITION_TO_ELEMENT,
)
