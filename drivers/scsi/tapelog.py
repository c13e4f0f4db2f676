"""LOG SENSE pages of a tape drive: TapeAlert (0x2E) and tape capacity (0x31).

Public API:

    TAPE_ALERT_FLAGS: Mapping[int, TapeAlertFlag]      flag number 1..64 -> name, severity, suggested action
    TapeAlertFlag(number, name, severity, action)      severity is "critical", "warning" or "information"
    encode_tape_alert(flags) -> bytes                  the whole page: 64 parameters of 5 bytes, set ones = 1
    decode_tape_alert(data) -> tuple[TapeAlertFlag]    the set flags, in number order
    TapeCapacity(remaining, maximum)                   MiB per partition, as tapeinfo prints them
        .encode() -> bytes / TapeCapacity.decode(data)

Flag numbers, names and severities follow SSC-3 and reference/scsi.md §4 (the TapeAlert numbering real drives
and mhVTL use, where 0x37 is a loading failure and 0x3B/0x3C are the WORM flags). Reading the page clears the flags
on the device; that is the target's business, not the codec's.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable

from drivers.scsi.spc import LogParameter, decode_log_page, encode_log_page

PAGE_TAPE_ALERT = 0x2E
PAGE_TAPE_CAPACITY = 0x31
TAPE_ALERT_PARAMETER_CONTROL = 0xC0  # as mhVTL sends it (DU and DS set: not resettable, not saved)

CRITICAL, WARNING, INFORMATION = "critical", "warning", "information"


@dataclass(frozen=True, slots=True)
class TapeAlertFlag:
    number: int
    name: str
    severity: str
    action: str

    def __str__(self) -> str:
        return f"TapeAlert[{self.number}]: {self.name} ({self.severity}): {self.action}"


_RETIRE = "copy the data you need to another tape and retire this one"
_CLEAN = "load a cleaning cartridge into the drive"
_SERVICE = "call the drive supplier's helpline"
_C, _W, _I = CRITICAL, WARNING, INFORMATION
_TABLE = [
    (0x01, "Read warning", _W, "the drive is having trouble reading; no data lost yet"),
    (0x02, "Write warning", _W, "the drive is having trouble writing; capacity is reduced"),
    (0x03, "Hard error", _W, "a read or write error the drive could not correct stopped the operation"),
    (0x04, "Media", _C, _RETIRE),
    (0x05, "Read failure", _C, "if the tape reads in another drive, call service for this one"),
    (0x06, "Write failure", _C, "try another tape; if it fails too, call service"),
    (0x07, "Media life", _W, _RETIRE),
    (0x08, "Not data grade", _W, "replace the cartridge with a data-grade tape"),
    (0x09, "Write protect", _C, "write attempted on a write-protected cartridge: move the tab or use another"),
    (0x0A, "No removal", _I, "eject attempted while medium removal is prevented: allow removal first"),
    (0x0B, "Cleaning media", _I, "a cleaning cartridge was loaded where a data tape was expected"),
    (0x0C, "Unsupported format", _I, "the cartridge format is not supported by this drive"),
    (0x0D, "Recoverable mechanical cartridge failure", _C, "the tape snapped or cut: " + _RETIRE),
    (0x0E, "Unrecoverable mechanical cartridge failure", _C, "the cartridge is stuck: " + _SERVICE),
    (0x0F, "Memory chip in cartridge failure", _W, "the cartridge memory failed: " + _RETIRE),
    (0x10, "Forced eject", _C, "the tape was ejected during an operation: check the data, rerun the job"),
    (0x11, "Read only format", _W, "the cartridge can only be read in this drive: use a writable generation"),
    (0x12, "Tape directory corrupted on load", _W, "the directory will be rebuilt by reading the whole tape"),
    (0x13, "Nearing media life", _I, "the tape is nearing its end of life: plan to retire it"),
    (0x14, "Clean now", _C, _CLEAN + " now"),
    (0x15, "Clean periodic", _W, _CLEAN + " soon (routine cleaning)"),
    (0x16, "Expired cleaning media", _C, "the cleaning cartridge is used up: replace it"),
    (0x17, "Invalid cleaning tape", _C, "the cleaning cartridge is not valid for this drive: use a supported one"),
    (0x18, "Retension requested", _W, "retension the tape (read it to the end and rewind)"),
    (0x19, "Dual-port interface error", _W, "one interface port failed: check the cabling"),
    (0x1A, "Cooling fan failure", _W, "a fan failed: " + _SERVICE),
    (0x1B, "Power supply failure", _W, "a redundant power supply failed: " + _SERVICE),
    (0x1C, "Power consumption", _W, "the drive draws more power than specified: " + _SERVICE),
    (0x1D, "Drive maintenance", _W, "preventive maintenance is due: " + _SERVICE),
    (0x1E, "Hardware A", _C, "the drive has a hardware fault: reset or power-cycle it, then retry"),
    (0x1F, "Hardware B", _C, "the drive has a hardware fault: power-cycle it; if it persists, " + _SERVICE),
    (0x20, "Interface", _W, "the drive has a problem with the host interface: check cables and termination"),
    (0x21, "Eject media", _C, "the operation failed: eject the tape or magazine, reinsert it and restart"),
    (0x22, "Download fail", _W, "the firmware download failed: check the image and retry"),
    (0x23, "Drive humidity", _W, "the drive's humidity is out of range"),
    (0x24, "Drive temperature", _W, "the drive is too hot: check cooling"),
    (0x25, "Drive voltage", _W, "the drive's supply voltage is out of range"),
    (0x26, "Predictive failure", _C, "a hardware failure is predicted: " + _SERVICE),
    (0x27, "Diagnostics required", _W, "the drive may have a fault: run extended diagnostics"),
    (0x28, "Loader hardware A", _C, "obsolete changer flag: check the library"),
    (0x29, "Loader stray tape", _C, "obsolete changer flag: check the library"),
    (0x2A, "Loader hardware B", _W, "obsolete changer flag: check the library"),
    (0x2B, "Loader door", _C, "obsolete changer flag: close the library door"),
    (0x2C, "Loader hardware C", _C, "obsolete changer flag: check the library"),
    (0x2D, "Loader magazine", _C, "obsolete changer flag: check the magazine"),
    (0x2E, "Loader predictive failure", _W, "obsolete changer flag: check the library"),
    (0x2F, "Encryption communication failure", _W, "the external key manager could not be reached"),
    (0x30, "Encryption key manager error", _W, "the external key manager returned an error"),
    (0x31, "Diminished native capacity", _I, "the cartridge holds less than its native capacity"),
    (0x32, "Lost statistics", _W, "media statistics were lost at some time in the past"),
    (0x33, "Tape directory invalid at unload", _W, "the tape directory will be rebuilt on the next load"),
    (0x34, "Tape system area write failure", _C, "the tape may be damaged: " + _RETIRE),
    (0x35, "Tape system area read failure", _C, "the tape may be damaged: " + _RETIRE),
    (0x36, "No start of data", _C, "the start of data could not be found: check it is the right tape"),
    (0x37, "Loading failure", _C, "the tape could not be loaded: try another tape; if that fails, " + _SERVICE),
    (0x38, "Unrecoverable unload failure", _C, "the tape cannot be unloaded: " + _SERVICE),
    (0x39, "Automation interface failure", _C, "the library interface failed: check the connection"),
    (0x3A, "Firmware failure", _W, "the firmware failed: reset the drive; if it persists, " + _SERVICE),
    (0x3B, "WORM medium integrity check failed", _W, "the WORM cartridge failed its integrity check: retire it"),
    (0x3C, "WORM medium overwrite attempted", _W, "data on a WORM cartridge cannot be overwritten: append instead"),
]
TAPE_ALERT_FLAGS = MappingProxyType(
    {
        n: TapeAlertFlag(n, *next(((name, sev, act) for num, name, sev, act in _TABLE if num == n),
                                  (f"Reserved flag {n:#04x}", _I, "none defined")))
        for n in range(1, 65)
    }
)  # fmt: skip
del _C, _W, _I


def encode_tape_alert(flags: Iterable[int]) -> bytes:
    on = set(flags)
    if on - set(TAPE_ALERT_FLAGS):
        raise ValueError(f"TapeAlert flags are 1..64, not {sorted(on - set(TAPE_ALERT_FLAGS))}")
    params = [LogParameter(n, bytes([n in on]), TAPE_ALERT_PARAMETER_CONTROL) for n in range(1, 65)]
    return encode_log_page(PAGE_TAPE_ALERT, params)


def decode_tape_alert(data: bytes | bytearray | memoryview) -> tuple[TapeAlertFlag, ...]:
    page, params = decode_log_page(data)
    if page != PAGE_TAPE_ALERT:
        raise ValueError(f"log page {page:#04x} is not TapeAlert (0x2E)")
    return tuple(TAPE_ALERT_FLAGS[p.code] for p in params if p.code in TAPE_ALERT_FLAGS and p.value[:1] != b"\0")


@dataclass(frozen=True, slots=True)
class TapeCapacity:
    """Log page 0x31, in MiB: remaining and maximum capacity of partitions 0 and 1 (parameters 1-2 and 3-4)."""

    remaining: tuple[int, ...]
    maximum: tuple[int, ...]

    def encode(self) -> bytes:
        if len(self.remaining) != len(self.maximum) or not 1 <= len(self.remaining) <= 2:
            raise ValueError("tape capacity has one or two partitions, with a remaining and a maximum for each")
        remaining = [LogParameter(1 + i, v.to_bytes(4, "big")) for i, v in enumerate(self.remaining)]
        maximum = [LogParameter(3 + i, v.to_bytes(4, "big")) for i, v in enumerate(self.maximum)]
        return encode_log_page(PAGE_TAPE_CAPACITY, remaining + maximum)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> TapeCapacity:
        page, params = decode_log_page(data)
        if page != PAGE_TAPE_CAPACITY:
            raise ValueError(f"log page {page:#04x} is not tape capacity (0x31)")
        values = {p.code: p.number for p in params}
        parts = 2 if 2 in values or 4 in values else 1
        return cls(
            tuple(values.get(1 + i, 0) for i in range(parts)), tuple(values.get(3 + i, 0) for i in range(parts))
        )
