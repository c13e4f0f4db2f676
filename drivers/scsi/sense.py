"""Sense data, the named table of conditions, and the exceptions every SCSI error becomes.

Public API (initiator and target side):

    SenseData(key, asc, ascq, filemark, eom, ili, valid, information, response_code=0x70, ...)   frozen
        .encode() -> bytes                      fixed format (0x70 current / 0x71 deferred), 18 bytes
        .encode_descriptor() -> bytes           descriptor format (0x72 / 0x73), for targets asked for DESC=1
        SenseData.decode(data)                  fixed or descriptor format; short or empty data raise ValueError
        SenseData.illegal_field(byte, bit=None, in_cdb=True)   05/24/00 (or 05/26/00 for parameter data) with
                                                the field pointer, SKSV and C/D set
        .code -> "7/27/00"                      key/ASC/ASCQ as the error messages print it
    Condition                                   one row of the table: text, key, ASC/ASCQ, flags, exception class
        NO_MEDIUM, WRITE_PROTECTED, FILEMARK_DETECTED, END_OF_DATA, EARLY_WARNING, ...   module constants
        cond.sense(information=None, field_pointer=None, bit=None, in_cdb=True) -> SenseData
    sense_for(exc_class_or_condition, **kw) -> SenseData   the canonical sense of an exception class or condition
    error_for(sense, command="", device="", cartridge=None) -> ScsiError   decoded, not raised
    raise_for_result(result, command, device="", cartridge=None)   GOOD / CONDITION MET / RECOVERED ERROR and
                                                CHECK CONDITION with NO SENSE and no flags return; CHECK CONDITION
                                                raises the decoded ScsiError; BUSY and the rest raise StatusError

    ScsiError(DeviceError): .sense .command .device .cartridge .text .hint .residue .field_pointer .completed
        .partial (fixed-mode READ: the whole blocks transferred before a filemark, EOD or error)
        str(e) == "LTO-8 drive 1: WRITE: write protected (7/27/00) on cartridge A00012L8"
        e.with_context(device=..., cartridge=..., command=...) -> a copy with those set
      NotReady > NoMedium, CleaningCartridge, LogicalUnitOffline;  MediumError > IncompatibleMedium;  HardwareError;
      IllegalRequest > InvalidOpcode, InvalidElement, SourceEmpty, DestinationFull, RemovalPrevented;
      UnitAttention; WriteProtected; BlankCheck (= EndOfData); VolumeOverflow; AbortedCommand;
      FilemarkDetected, EndOfMedium, IncorrectLength, BeginningOfMedium, CleaningRequired (sense key 0 conditions)
    StatusError(DeviceError) > TargetBusy, ReservationConflict   non-CHECK CONDITION statuses

Invariants: sense numbers appear only in this module's table; `SenseData.decode(s.encode()) == s` for every sense
with a fixed-format response code; `error_for(cond.sense())` is an instance of `cond.error`. `completed` is True
where the command's effect happened despite CHECK CONDITION (early-warning writes, cleaning requests).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from drivers.errors import DeviceError
from drivers.scsi.status import (
    BUSY,
    CHECK_CONDITION,
    CONDITION_MET,
    GOOD,
    RESERVATION_CONFLICT,
    TASK_SET_FULL,
    ScsiResult,
)


KEY_NO_SENSE = 0x0
KEY_RECOVERED_ERROR = 0x1
KEY_NOT_READY = 0x2
KEY_MEDIUM_ERROR = 0x3
KEY_HARDWARE_ERROR = 0x4
KEY_ILLEGAL_REQUEST = 0x5
KEY_UNIT_ATTENTION = 0x6
KEY_DATA_PROTECT = 0x7
KEY_BLANK_CHECK = 0x8
KEY_ABORTED_COMMAND = 0xB
KEY_VOLUME_OVERFLOW = 0xD

KEY_NAMES = {
    0x0: "no sense",
    0x1: "recovered error",
    0x2: "not ready",
    0x3: "medium error",
    0x4: "hardware error",
    0x5: "illegal request",
    0x6: "unit attention",
    0x7: "data protect",
    0x8: "blank check",
    0x9: "vendor specific",
    0xA: "copy aborted",
    0xB: "aborted command",
    0xD: "volume overflow",
    0xE: "miscompare",
}

FIXED_CURRENT, FIXED_DEFERRED, DESCRIPTOR_CURRENT, DESCRIPTOR_DEFERRED = 0x70, 0x71, 0x72, 0x73
FIXED_LENGTH = 18


@dataclass(frozen=True, slots=True)
class SenseData:
    key: int = KEY_NO_SENSE
    asc: int = 0
    ascq: int = 0
    filemark: bool = False
    eom: bool = False
    ili: bool = False
    valid: bool = False  # INFORMATION holds a residue or address
    information: int = 0  # signed: negative when a block was longer than requested
    response_code: int = FIXED_CURRENT
    command_info: int = 0
    fru: int = 0
    sksv: bool = False  # the sense-key-specific bytes (C/D, BPV, pointers) are valid
    cd: bool = False  # 1 = the field in error is in the CDB, 0 = in the parameter data
    bpv: bool = False  # bit_pointer is valid
    bit_pointer: int = 0
    field_pointer: int = 0

    @property
    def code(self) -> str:
        return f"{self.key:X}/{self.asc:02X}/{self.ascq:02X}"

    @property
    def deferred(self) -> bool:
        return self.response_code in (FIXED_DEFERRED, DESCRIPTOR_DEFERRED)

    def encode(self) -> bytes:
        """Fixed-format sense data, 18 bytes; a descriptor response code is written as its fixed counterpart."""
        out = bytearray(FIXED_LENGTH)
        out[0] = (0x80 if self.valid else 0) | (FIXED_DEFERRED if self.deferred else FIXED_CURRENT)
        out[2] = (0x80 * self.filemark) | (0x40 * self.eom) | (0x20 * self.ili) | (self.key & 0x0F)
        out[3:7] = self.information.to_bytes(4, "big", signed=True)
        out[7] = FIXED_LENGTH - 8  # additional sense length
        out[8:12] = self.command_info.to_bytes(4, "big")
        out[12], out[13], out[14] = self.asc, self.ascq, self.fru
        out[15:18] = self._sense_key_specific()
        return bytes(out)

    def encode_descriptor(self) -> bytes:
        """Descriptor-format sense data: information, sense-key-specific and stream-commands descriptors."""
        descriptors = bytearray()
        if self.valid:
            descriptors += bytes([0x00, 0x0A, 0x80, 0]) + self.information.to_bytes(8, "big", signed=True)
        if self.command_info:
            descriptors += bytes([0x01, 0x0A, 0, 0]) + self.command_info.to_bytes(8, "big")
        if self.sksv:
            descriptors += bytes([0x02, 0x06, 0, 0]) + self._sense_key_specific() + b"\0"
        if self.filemark or self.eom or self.ili:
            descriptors += bytes([0x04, 0x02, 0, (0x80 * self.filemark) | (0x40 * self.eom) | (0x20 * self.ili)])
        code = DESCRIPTOR_DEFERRED if self.deferred else DESCRIPTOR_CURRENT
        return bytes([code, self.key & 0x0F, self.asc, self.ascq, 0, 0, 0, len(descriptors)]) + descriptors

    def _sense_key_specific(self) -> bytes:
        flags = (0x80 * self.sksv) | (0x40 * self.cd) | (0x08 * self.bpv) | (self.bit_pointer & 0x07)
        return bytes([flags]) + self.field_pointer.to_bytes(2, "big")

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> SenseData:
        data = bytes(data)
        if len(data) < 1:
            raise ValueError("no sense data")
        code = data[0] & 0x7F
        if code in (FIXED_CURRENT, FIXED_DEFERRED):
            return cls._decode_fixed(data, code)
        if code in (DESCRIPTOR_CURRENT, DESCRIPTOR_DEFERRED):
            return cls._decode_descriptor(data, code)
        raise ValueError(f"sense response code {code:#04x} is neither fixed (70h/71h) nor descriptor (72h/73h)")

    @classmethod
    def _decode_fixed(cls, data: bytes, code: int) -> SenseData:
        if len(data) < 14:
            # Old devices send 8 bytes without ASC/ASCQ; pad so the key and flags still decode.
            if len(data) < 3:
                raise ValueError(f"fixed-format sense data is {len(data)} bytes, needs at least 3")
            data = data.ljust(FIXED_LENGTH, b"\0")
        data = data.ljust(FIXED_LENGTH, b"\0")
        return cls(
            key=data[2] & 0x0F,
            asc=data[12],
            ascq=data[13],
            filemark=bool(data[2] & 0x80),
            eom=bool(data[2] & 0x40),
            ili=bool(data[2] & 0x20),
            valid=bool(data[0] & 0x80),
            information=int.from_bytes(data[3:7], "big", signed=True),
            response_code=code,
            command_info=int.from_bytes(data[8:12], "big"),
            fru=data[14],
            **cls._decode_sense_key_specific(data[15:18]),
        )

    @classmethod
    def _decode_descriptor(cls, data: bytes, code: int) -> SenseData:
        if len(data) < 8:
            raise ValueError(f"descriptor-format sense data is {len(data)} bytes, needs at least 8")
        fields: dict = {"key": data[1] & 0x0F, "asc": data[2], "ascq": data[3], "response_code": code}
        end = min(len(data), 8 + data[7])
        at = 8
        while at + 2 <= end:
            kind, length = data[at], data[at + 1]
            body = data[at + 2 : at + 2 + length]
            if kind == 0x00 and len(body) >= 10:  # information
                fields["valid"] = bool(body[0] & 0x80)
                fields["information"] = int.from_bytes(body[2:10], "big", signed=True)
            elif kind == 0x01 and len(body) >= 10:  # command-specific information
                fields["command_info"] = int.from_bytes(body[2:10], "big")
            elif kind == 0x02 and len(body) >= 5:  # sense-key specific
                fields.update(cls._decode_sense_key_specific(body[2:5]))
            elif kind in (0x04, 0x05) and len(body) >= 2:  # stream commands / block commands
                fields["ili"] = bool(body[1] & 0x20)
                if kind == 0x04:
                    fields["filemark"] = bool(body[1] & 0x80)
                    fields["eom"] = bool(body[1] & 0x40)
            at += 2 + length
        return cls(**fields)

    @staticmethod
    def _decode_sense_key_specific(b: bytes) -> dict:
        return {
            "sksv": bool(b[0] & 0x80),
            "cd": bool(b[0] & 0x40),
            "bpv": bool(b[0] & 0x08),
            "bit_pointer": b[0] & 0x07,
            "field_pointer": int.from_bytes(b[1:3], "big"),
        }

    @classmethod
    def illegal_field(cls, byte: int, bit: int | None = None, in_cdb: bool = True) -> SenseData:
        """ILLEGAL REQUEST, invalid field in CDB (24/00) or in the parameter list (26/00), pointing at the field."""
        condition = INVALID_FIELD_IN_CDB if in_cdb else INVALID_FIELD_IN_PARAMETER_LIST
        return condition.sense(field_pointer=byte, bit=bit, in_cdb=in_cdb)


# --- exceptions -------------------------------------------------------------------------------------------------


class ScsiError(DeviceError):
    """A command ended in CHECK CONDITION; `sense` says why. The message is one line, caller context included."""

    completed = False  # True where the command's effect happened despite the CHECK CONDITION
    partial: bytes = b""  # whole blocks a fixed-mode READ transferred before stopping (set by the tape driver)

    def __init__(
        self,
        sense: SenseData,
        command: str = "",
        device: str = "",
        cartridge: str | None = None,
        text: str = "",
        hint: str = "",
    ) -> None:
        super().__init__()
        self.sense = sense
        self.command = command
        self.device = device
        self.cartridge = cartridge
        self.text = text or f"{KEY_NAMES.get(sense.key, 'sense key')}, additional sense {sense.asc:02X}/{sense.ascq:02X}"
        self.hint = hint

    @property
    def residue(self) -> int:
        """INFORMATION when VALID: bytes (variable mode) or blocks (fixed mode) not transferred; else 0."""
        return self.sense.information if self.sense.valid else 0

    @property
    def field_pointer(self) -> int | None:
        return self.sense.field_pointer if self.sense.sksv else None

    def detail(self) -> str:
        return ""

    def __str__(self) -> str:
        parts = [p for p in (self.device, self.command) if p]
        message = f"{self.text}{self.detail()} ({self.sense.code})"
        if self.cartridge:
            message += f" on cartridge {self.cartridge}"
        return ": ".join([*parts, message])

    def with_context(
        self, device: str | None = None, cartridge: str | None = None, command: str | None = None
    ) -> ScsiError:
        """A copy naming the device, the loaded cartridge or the command, for a caller that knows them."""
        other = copy.copy(self)
        if device is not None:
            other.device = device
        if cartridge is not None:
            other.cartridge = cartridge
        if command is not None:
            other.command = command
        return other

    def __reduce__(self):
        return (_rebuild, (type(self), self.sense, self.command, self.device, self.cartridge, self.text, self.hint))


def _rebuild(cls, *args):
    return cls(*args)


class NotReady(ScsiError):
    pass


class NoMedium(NotReady):
    pass


class CleaningCartridge(NotReady):
    pass


class LogicalUnitOffline(NotReady):
    """02/04/12: unlike 02/04/01 (becoming ready), waiting does not help; an operator brings the drive online."""


class MediumError(ScsiError):
    pass


class IncompatibleMedium(MediumError):
    pass


class HardwareError(ScsiError):
    pass


class IllegalRequest(ScsiError):
    def detail(self) -> str:
        if not self.sense.sksv:
            return ""
        where = "CDB" if self.sense.cd else "parameter data"
        bit = f" bit {self.sense.bit_pointer}" if self.sense.bpv else ""
        return f" at {where} byte {self.sense.field_pointer}{bit}"


class InvalidOpcode(IllegalRequest):
    pass


class InvalidElement(IllegalRequest):
    pass


class SourceEmpty(IllegalRequest):
    pass


class DestinationFull(IllegalRequest):
    pass


class RemovalPrevented(IllegalRequest):
    pass


class UnitAttention(ScsiError):
    pass


class WriteProtected(ScsiError):
    pass


class BlankCheck(ScsiError):
    pass


EndOfData = BlankCheck


class VolumeOverflow(ScsiError):
    """Physical end of the partition: the data of this command was NOT written."""


class AbortedCommand(ScsiError):
    pass


class FilemarkDetected(ScsiError):
    """READ or SPACE ran into a filemark; the position is past it (forward). `residue` = what was not done."""


class EndOfMedium(ScsiError):
    """Early warning on WRITE or WRITE FILEMARKS: the data WAS written; finish the file and change tapes."""

    completed = True


class IncorrectLength(ScsiError):
    """The block differs from the requested length; `residue` = requested - actual (negative: block was longer)."""

    def detail(self) -> str:
        return f", residue {self.residue}" if self.sense.valid else ""


class BeginningOfMedium(ScsiError):
    pass


class CleaningRequired(ScsiError):
    completed = True


class StatusError(DeviceError):
    """The device answered with a status other than GOOD or CHECK CONDITION."""

    def __init__(self, status: int, command: str = "", device: str = "", text: str = "") -> None:
        self.status = status
        super().__init__(": ".join(p for p in (device, command, f"{text} (status {status:#04x})") if p))


class TargetBusy(StatusError):
    pass


class ReservationConflict(StatusError):
    pass


# --- the named table --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    text: str
    key: int
    asc: int
    ascq: int
    error: type[ScsiError]
    filemark: bool = False
    eom: bool = False
    ili: bool = False
    hint: str = ""

    def sense(
        self,
        information: int | None = None,
        field_pointer: int | None = None,
        bit: int | None = None,
        in_cdb: bool = True,
    ) -> SenseData:
        """The sense data a target returns for this condition; `information` sets VALID."""
        return SenseData(
            key=self.key,
            asc=self.asc,
            ascq=self.ascq,
            filemark=self.filemark,
            eom=self.eom,
            ili=self.ili,
            valid=information is not None,
            information=information or 0,
            sksv=field_pointer is not None,
            cd=field_pointer is not None and in_cdb,
            bpv=bit is not None,
            bit_pointer=bit or 0,
            field_pointer=field_pointer or 0,
        )


_C = Condition
NO_SENSE = _C("no sense", 0x0, 0x00, 0x00, ScsiError)
INCORRECT_LENGTH = _C("incorrect length", 0x0, 0x00, 0x00, IncorrectLength, ili=True)
FILEMARK_DETECTED = _C("filemark detected", 0x0, 0x00, 0x01, FilemarkDetected, filemark=True)
EARLY_WARNING = _C(
    "end of medium early warning (data written)", 0x0, 0x00, 0x02, EndOfMedium, eom=True,
    hint="finish the current file and continue on another cartridge",
)  # fmt: skip
BEGINNING_OF_MEDIUM = _C("beginning of medium", 0x0, 0x00, 0x04, BeginningOfMedium, eom=True)
PROGRAMMABLE_EARLY_WARNING = _C("programmable early warning", 0x0, 0x00, 0x07, EndOfMedium, eom=True)
CLEANING_REQUESTED = _C("cleaning requested", 0x0, 0x00, 0x17, CleaningRequired, hint="load a cleaning cartridge")
CLEANING_REQUESTED_UA = _C("cleaning requested", 0x6, 0x00, 0x17, CleaningRequired, hint="load a cleaning cartridge")
VENDOR_CLEANING_REQUESTED = _C("cleaning requested", 0x0, 0x82, 0x82, CleaningRequired, hint="load a cleaning cartridge")
NO_MEDIUM = _C("no medium present", 0x2, 0x3A, 0x00, NoMedium, hint="load a cartridge")
BECOMING_READY = _C("becoming ready", 0x2, 0x04, 0x01, NotReady, hint="wait and retry")
INITIALIZATION_REQUIRED = _C("initializing command required", 0x2, 0x04, 0x02, NotReady)
LOGICAL_UNIT_OFFLINE = _C(
    "logical unit offline", 0x2, 0x04, 0x12, LogicalUnitOffline, hint="bring the drive online at the library"
)
MANUAL_INTERVENTION = _C(
    "manual intervention required", 0x2, 0x04, 0x03, NotReady, hint="close the door or mail slot"
)
CLEANING_CARTRIDGE = _C(
    "cleaning cartridge installed", 0x2, 0x30, 0x03, CleaningCartridge, hint="unload it; it cannot hold data"
)
MEDIUM_CHANGED = _C("medium may have changed", 0x6, 0x28, 0x00, UnitAttention)
IMPORT_EXPORT_ACCESSED = _C("import or export element accessed", 0x6, 0x28, 0x01, UnitAttention)
POWER_ON_RESET = _C("power on, reset or bus device reset", 0x6, 0x29, 0x00, UnitAttention)
MODE_PARAMETERS_CHANGED = _C("mode parameters changed", 0x6, 0x2A, 0x01, UnitAttention)
WRITE_PROTECTED = _C(
    "write protected", 0x7, 0x27, 0x00, WriteProtected, hint="move the write-protect tab or use another cartridge"
)
WORM_OVERWRITE = _C("WORM medium: overwrite attempted", 0x7, 0x30, 0x0C, WriteProtected)
END_OF_DATA = _C("end of data", 0x8, 0x00, 0x05, BlankCheck)
VOLUME_OVERFLOW = _C(
    "end of medium, data not written", 0xD, 0x00, 0x02, VolumeOverflow, eom=True,
    hint="write the rest on another cartridge",
)  # fmt: skip
UNRECOVERED_READ_ERROR = _C("unrecovered read error", 0x3, 0x11, 0x00, MediumError, hint="retire the cartridge")
WRITE_ERROR = _C("write error", 0x3, 0x0C, 0x00, MediumError, hint="retire the cartridge")
RECORDED_ENTITY_NOT_FOUND = _C("recorded entity not found", 0x3, 0x14, 0x00, MediumError)
MEDIUM_FORMAT_CORRUPTED = _C("medium format corrupted", 0x3, 0x31, 0x00, MediumError)
POSITIONING_ERROR = _C("mechanical positioning error", 0x3, 0x3B, 0x00, MediumError)
INCOMPATIBLE_MEDIUM = _C(
    "incompatible medium installed", 0x5, 0x30, 0x00, IncompatibleMedium,
    hint="use a cartridge generation this drive reads and writes",
)  # fmt: skip
INCOMPATIBLE_MEDIUM_ERROR = _C("incompatible medium installed", 0x3, 0x30, 0x00, IncompatibleMedium)
DIAGNOSTIC_FAILURE = _C("diagnostic failure", 0x4, 0x40, 0x00, HardwareError)
INTERNAL_TARGET_FAILURE = _C("internal target failure", 0x4, 0x44, 0x00, HardwareError, hint="call service")
LOAD_EJECT_FAILED = _C("medium load or eject failed", 0x4, 0x53, 0x00, HardwareError)
INVALID_OPCODE = _C("invalid command operation code", 0x5, 0x20, 0x00, InvalidOpcode)
INVALID_ELEMENT = _C("invalid element address", 0x5, 0x21, 0x01, InvalidElement)
INVALID_FIELD_IN_CDB = _C("invalid field in CDB", 0x5, 0x24, 0x00, IllegalRequest)
LUN_NOT_SUPPORTED = _C("logical unit not supported", 0x5, 0x25, 0x00, IllegalRequest)
INVALID_FIELD_IN_PARAMETER_LIST = _C("invalid field in parameter list", 0x5, 0x26, 0x00, IllegalRequest)
PARAMETER_LIST_LENGTH_ERROR = _C("parameter list length error", 0x5, 0x1A, 0x00, IllegalRequest)
DESTINATION_FULL = _C("medium destination element full", 0x5, 0x3B, 0x0D, DestinationFull)
SOURCE_EMPTY = _C("medium source element empty", 0x5, 0x3B, 0x0E, SourceEmpty)
REMOVAL_PREVENTED = _C(
    "medium removal prevented", 0x5, 0x53, 0x02, RemovalPrevented, hint="allow medium removal (unlock) first"
)
ABORTED = _C("command aborted", 0xB, 0x00, 0x00, AbortedCommand, hint="retry")
del _C

CONDITIONS: tuple[Condition, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Condition))
_BY_CODE: dict[tuple[int, int, int], Condition] = {}
_BY_ASC: dict[tuple[int, int], Condition] = {}
_CANONICAL: dict[type[ScsiError], Condition] = {}
for _cond in CONDITIONS:
    if (_cond.key, _cond.asc, _cond.ascq) != (KEY_NO_SENSE, 0, 0):  # 0/00/00 is matched by its flags alone
        _BY_CODE.setdefault((_cond.key, _cond.asc, _cond.ascq), _cond)
    _BY_ASC.setdefault((_cond.key, _cond.asc), _cond)
    _CANONICAL.setdefault(_cond.error, _cond)
del _cond

_KEY_ERRORS: dict[int, type[ScsiError]] = {
    KEY_NOT_READY: NotReady,
    KEY_MEDIUM_ERROR: MediumError,
    KEY_HARDWARE_ERROR: HardwareError,
    KEY_ILLEGAL_REQUEST: IllegalRequest,
    KEY_UNIT_ATTENTION: UnitAttention,
    KEY_DATA_PROTECT: WriteProtected,
    KEY_BLANK_CHECK: BlankCheck,
    KEY_ABORTED_COMMAND: AbortedCommand,
    KEY_VOLUME_OVERFLOW: VolumeOverflow,
}


def sense_for(what: type[ScsiError] | Condition, **kwargs) -> SenseData:
    """Sense data for a condition, or for an exception class's canonical condition (`sense_for(SourceEmpty)`)."""
    condition = what if isinstance(what, Condition) else _CANONICAL[what]
    return condition.sense(**kwargs)


def condition_of(sense: SenseData) -> Condition | None:
    """The table row this sense matches: the stream flags first (sense key 0), then key/ASC/ASCQ, then key/ASC."""
    if sense.key == KEY_NO_SENSE:
        if sense.filemark:
            return FILEMARK_DETECTED
        if sense.eom:
            return BEGINNING_OF_MEDIUM if (sense.asc, sense.ascq) == (0x00, 0x04) else _BY_CODE.get(
                (sense.key, sense.asc, sense.ascq), EARLY_WARNING
            )
        if sense.ili:
            return INCORRECT_LENGTH
    found = _BY_CODE.get((sense.key, sense.asc, sense.ascq))
    if found is not None:
        return found
    related = _BY_ASC.get((sense.key, sense.asc))
    return related if related is not None and sense.asc != 0 else None


def error_for(sense: SenseData, command: str = "", device: str = "", cartridge: str | None = None) -> ScsiError:
    condition = condition_of(sense)
    if condition is not None:  # matched by its flags (sense key 0) or by key and ASC alone
        return condition.error(sense, command, device, cartridge, condition.text, condition.hint)
    return _KEY_ERRORS.get(sense.key, ScsiError)(sense, command, device, cartridge)


def raise_for_result(result: ScsiResult, command: str, device: str = "", cartridge: str | None = None) -> None:
    """Return when the command succeeded (RECOVERED ERROR included); raise the typed error otherwise."""
    status = result.status
    if status in (GOOD, CONDITION_MET):
        return
    if status == CHECK_CONDITION:
        if not result.sense:
            raise ScsiError(SenseData(), command, device, cartridge, "CHECK CONDITION without sense data")
        sense = SenseData.decode(result.sense)
        if sense.key == KEY_RECOVERED_ERROR:
            return
        if sense.key == KEY_NO_SENSE and condition_of(sense) in (None, NO_SENSE):
            return
        raise error_for(sense, command, device, cartridge)
    if status in (BUSY, TASK_SET_FULL):
        raise TargetBusy(status, command, device, "device busy; retry when its current operation ends")
    if status == RESERVATION_CONFLICT:
        raise ReservationConflict(status, command, device, "reserved by another initiator; release it there first")
    raise StatusError(status, command, device, "unexpected SCSI status")
