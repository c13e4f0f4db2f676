"""The SCSI target: CDB bytes in, SAM status, data and sense out, for each logical unit of a library.

Each logical unit (`changer`, `drive0`, `drive1`, ...) has a `dict[opcode, handler]` (mhVTL's SCSI_OP table). The
CDB is decoded with `drivers.scsi` tables and every sense comes from the `drivers.scsi.sense` condition table: no
sense numbers or CDB offsets are spelled here.

Invariants:
- `execute` never raises: an unknown opcode is 05/20/00, a short CDB or invalid field 05/24/00 with SKSV and the field
  pointer, and anything unexpected inside a handler is logged and answered 04/44/00 (internal target failure).
- A handler either returns an `Answer` (data, plus sense for CHECK CONDITION with data, e.g. a short READ) or raises
  `Check`. The data is cut to the allocation length and `resid` reports what was not transferred.
- Commands on one library run one at a time (`Library.mutex`), so handlers see a consistent state.
- A pending UNIT ATTENTION is reported (and cleared) by the first command other than INQUIRY, REQUEST SENSE and
  REPORT LUNS, which REQUEST SENSE also returns and clears.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.scsi import spc
from drivers.scsi.cdb import Cdb
from drivers.scsi.commands import by_opcode
from drivers.scsi.sense import (
    INTERNAL_TARGET_FAILURE,
    INVALID_OPCODE,
        NO_SENSE,
    Condition,
    SenseData,
)
from drivers.scsi.status import CHECK_CONDITION, GOOD, ScsiResult

if TYPE_CHECKING:
    from simulators.vtl.library import Library

log = logging.getLogger(__name__)

# Commands that a pending unit attention does not hold up (SPC-4 5.14).
UA_EXEMPT = frozenset({spc.INQUIRY.opcode, spc.REQUEST_SENSE.opcode, spc.REPORT_LUNS.opcode})


class Check(Exception):
    """End the command with CHECK CONDITION and this sense (and optionally the data already transferred)."""

    def __init__(self, sense: SenseData, data: bytes | memoryview = b""):
        super().__init__(sense.code)
        self.sense = sense
        self.data = data


@dataclass(frozen=True, slots=True)
class Answer:
    data: bytes | bytearray | memoryview = b""
    sense: SenseData | None = None  # CHECK CONDITION with data (ILI, FILEMARK, EOM)


GOOD_ANSWER = Answer()
GOOD_RESULT = ScsiResult(GOOD)  # GOOD, no data asked: what each WRITE of a stream returns

Handler = Callable[[dict[str, int], memoryview, int], Answer]


def check(condition: Condition, **kwargs) -> Check:
    return Check(condition.sense(**kwargs))


def invalid_field(cdb: Cdb, name: str) -> Check:
    """05/24/00 pointing at field `name` of `cdb`."""
    return Check(SenseData.illegal_field(*cdb.pointer(name)))


def invalid_parameter(byte: int, bit: int | None = None) -> Check:
    """05/26/00 pointing into the parameter data."""
    return Check(SenseData.illegal_field(byte, bit, in_cdb=False))


class LogicalUnit:
    """One addressable device of the library. Subclasses fill `handlers` and `device_type`."""

    device_type: int
    name: str

    def __init__(self, library: Library, name: str):
        self.library = library
        self.name = name
        self.handlers: dict[int, Handler] = {}
        self.pending: list[Condition] = []  # unit attentions, oldest first
        # The last CDB and its fields: a stream of WRITEs or READs repeats one CDB, so it is decoded once. Handlers
        # treat `fields` as read-only.
        self._last: tuple[bytes, dict[str, int]] = (b"", {})

    def execute(self, cdb: bytes | memoryview, data_out: bytes | memoryview = b"", data_in_len: int = 0) -> ScsiResult:
        try:
            with self.library.mutex:
                result = self._execute(bytes(cdb), memoryview(data_out), data_in_len)
                self.after(cdb[0] if cdb else -1)
                return result
        except Exception:  # a target must outlive any one command
            log.exception("%s: command %s failed inside the simulator", self.name, bytes(cdb).hex())
            return ScsiResult(CHECK_CONDITION, b"", INTERNAL_TARGET_FAILURE.sense().encode(), data_in_len)

    def _execute(self, cdb: bytes, data_out: memoryview, data_in_len: int) -> ScsiResult:
        if not cdb:
            return _check_result(INVALID_OPCODE.sense(), data_in_len)
        handler = self.handlers.get(cdb[0])
        last_cdb, fields = self._last
        if cdb != last_cdb:
            layout = by_opcode(self.device_type, cdb[0])
            if layout is None or handler is None:
                return _check_result(INVALID_OPCODE.sense(), data_in_len)
            if len(cdb) < layout.length:
                # The opcode promises a longer CDB: point at the first byte that is missing.
                return _check_result(SenseData.illegal_field(len(cdb)), data_in_len)
            fields = layout.decode(cdb)
            self._last = (cdb, fields)
        try:
            self.before(cdb[0])
            if self.pending and cdb[0] not in UA_EXEMPT:
                raise Check(self.pending.pop(0).sense())
            answer = handler(fields, data_out, data_in_len)
        except Check as stop:
            data = stop.data[:data_in_len]
            return ScsiResult(CHECK_CONDITION, data, stop.sense.encode(), data_in_len - len(data))
        if answer is GOOD_ANSWER and not data_in_len:
            return GOOD_RESULT
        data = answer.data[:data_in_len]
        if answer.sense is not None:
            return ScsiResult(CHECK_CONDITION, data, answer.sense.encode(), data_in_len - len(data))
        return ScsiResult(GOOD, data, b"", data_in_len - len(data))

    def attention(self, condition: Condition) -> None:
        """Queue a unit attention; the same one is reported once however often it happened."""
        if condition not in self.pending:
            self.pending.append(condition)

    def before(self, opcode: int) -> None:
        """Hook run before every command (state refresh); may raise Check."""

    def after(self, opcode: int) -> None:
        """Hook run after every command, whatever its status (saving what the command changed)."""

    def report_luns(self, fields: dict[str, int], data_out: memoryview, data_in_len: int) -> Answer:
        """Each unit is reached by its own device URL, like a target of its own (mhVTL gives every device its own
        target ID): it is LUN 0 and the only LUN, and there are no well-known LUNs."""
        select = fields["select_report"]
        if select not in (spc.REPORT_LUNS_ALL, spc.REPORT_LUNS_WELL_KNOWN, spc.REPORT_LUNS_ALL_AND_WELL_KNOWN):
            raise invalid_field(spc.REPORT_LUNS, "select_report")
        if fields["alloc"] < spc.REPORT_LUNS_MIN_ALLOC:
            raise invalid_field(spc.REPORT_LUNS, "alloc")
        return Answer(spc.encode_report_luns(() if select == spc.REPORT_LUNS_WELL_KNOWN else (0,)))

    def request_sense(self, fields: dict[str, int], data_out: memoryview, data_in_len: int) -> Answer:
        sense = self.pending.pop(0).sense() if self.pending else NO_SENSE.sense()
        return Answer(sense.encode_descriptor() if fields["desc"] else sense.encode())

    def close(self) -> None:
        """Release what the unit holds open (cartridge images)."""


def _check_result(sense: SenseData, data_in_len: int) -> ScsiResult:
    return ScsiResult(CHECK_CONDITION, b"", sense.encode(), data_in_len)
