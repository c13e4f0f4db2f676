"""Fault injection: the faults an operator or a test plants in a library, kept with the library state.

A fault is a plain value: what (`kind`), where (a drive number or a cartridge barcode), an optional argument (block
number, byte count) and whether it fires once or until cleared. Faults are stored in the library's state file, so
`tapeline-vtl fault` in another process reaches a running `tapeline-vtl serve` (which re-reads the state when the
file changes). A one-shot fault is removed from the state when it fires.

Kinds (reference/scsi.md §2 table):
- `media-error` on a cartridge at block N: READ there gives 03/11/00, WRITE there 03/0C/00.
- `drive-offline` on a drive: every medium command gives NOT READY, offline (02/04/12); a MOVE into it fails. A
  state, not an event: it stays until `fault DIR --clear drive-offline drive0` (TEST UNIT READY does not consume it).
- `cleaning-required` on a drive: TapeAlert 0x14 (clean now) and 00/00/17 once; it stays until a cleaning cartridge
  is used in the drive (or it is cleared).
- `early-eom` on a cartridge at N bytes: the medium behaves as if its capacity were N bytes, its early-warning zone at
  least one maximum-size block (8 MiB) deep (early warning at N - 8 MiB, or at BOP when N is smaller): writes see
  00/00/02 EOM=1 (written) before 0D/00/02 (not written), whatever N and the block size.
- `load-failure` on a cartridge: a MOVE into a drive gives HARDWARE ERROR 04/53/00 and leaves it where it was.
- `write-protect` on a cartridge: its write-protect tab is set (07/27/00, TapeAlert 0x09), until cleared.

`drive-offline`, `cleaning-required` and `write-protect` are states (`UNTIL`): always persistent, listed with what
ends them; the others fire once unless planted `--persistent`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

KINDS = {
    "media-error": ("cartridge", True),  # (target type, needs an argument)
    "drive-offline": ("drive", False),
    "cleaning-required": ("drive", False),
    "early-eom": ("cartridge", True),
    "load-failure": ("cartridge", False),
    "write-protect": ("cartridge", False),
}


# State faults: what ends each (they never fire "once").
UNTIL = {
    "drive-offline": "until cleared",
    "cleaning-required": "until a cleaning cartridge is used",
    "write-protect": "until cleared",
}


class FaultError(ValueError):
    """A fault description that cannot be planted (unknown kind, wrong target, missing argument)."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    target: str  # "drive0".. or a barcode
    arg: int | None = None
    persistent: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> Fault:
        return cls(raw["kind"], raw["target"], raw.get("arg"), bool(raw.get("persistent", False)))

    def describe(self) -> str:
        arg = "" if self.arg is None else f" at {self.arg}"
        life = UNTIL.get(self.kind) or ("persistent" if self.persistent else "one-shot")
        return f"{self.kind} on {self.target}{arg} ({life})"


def make_fault(kind: str, target: str, arg: int | None, persistent: bool, drives: int, barcodes: set[str]) -> Fault:
    """Validate a fault against the library it goes into."""
    if kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r}: use one of {', '.join(KINDS)}")
    target_type, needs_arg = KINDS[kind]
    if needs_arg and arg is None:
        raise FaultError(f"fault {kind} needs --at N ({'block number' if kind == 'media-error' else 'bytes'})")
    if arg is not None and arg < 0:
        raise FaultError(f"fault {kind}: --at must be 0 or more, not {arg}")
    if target_type == "drive":
        if target not in {f"drive{i}" for i in range(drives)}:
            raise FaultError(f"fault {kind} targets a drive: give drive0..drive{drives - 1}, not {target!r}")
    elif target not in barcodes:
        raise FaultError(f"fault {kind} targets a cartridge: {target!r} is not a barcode in this library")
    return Fault(kind, target, arg, persistent or kind in UNTIL)
