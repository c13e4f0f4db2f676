"""SPC-4 commands both device types answer: CDB tables (phase 1) and their data codecs.

Public API:

    PDT_TAPE = 0x01, PDT_CHANGER = 0x08                 peripheral device types
    TEST_UNIT_READY, REQUEST_SENSE, INQUIRY, MODE_SENSE_6, MODE_SENSE_10, MODE_SELECT_6, MODE_SELECT_10,
    LOG_SENSE, PREVENT_ALLOW_MEDIUM_REMOVAL, REPORT_LUNS  `Cdb` tables (see `drivers.scsi.cdb`), e.g.
                                                         `INQUIRY.encode(evpd=1, page_code=0x80, alloc=255)`
    PAGE_CONTROL_CURRENT .. PAGE_CONTROL_SAVED            the PC field of MODE SENSE and LOG SENSE
    PREVENT_ALLOW / PREVENT_MEDIUM_REMOVAL               values of PREVENT ALLOW's `prevent` field

Every layout follows reference/scsi.md §2; a comment gives the byte where the table is not obvious.
"""

from __future__ import annotations

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
