"""Declarative CDB layouts: one field table drives both encoding (initiator) and decoding (target).

Public API (the simulator reads this):

    Field(byte, width=1, mask=None, signed=False)   a field at `byte`, `width` bytes big-endian; `mask` selects bits
                                                     of that big-endian value (the value is shifted down to bit 0)
    Cdb(name, opcode, length, fields)                a command layout; `control` (the last byte) is always a field
    cdb.encode(**values) -> bytes                    unnamed fields are 0; out-of-range values raise CdbFieldError
    cdb.decode(data) -> dict[str, int]               every field, signed fields sign-extended; wrong opcode or a
                                                     short CDB raise CdbFieldError
    cdb.pointer(name) -> (byte, bit | None)          where a field starts, for an ILLEGAL REQUEST field pointer:
                                                     `SenseData.illegal_field(*INQUIRY.pointer("page_code"))`

The command tables themselves live in `drivers.scsi.spc` (both device types), `drivers.scsi.smc` (changer) and
`drivers.scsi.ssc` (tape); `drivers.scsi.commands.by_opcode(device_type, opcode)` finds one for a target to dispatch
on (0x2B is LOCATE(10) on a tape and POSITION TO ELEMENT on a changer).

Invariants: `decode(encode(**v))` gives back `v` (plus zeros for the fields not named) for every in-range value;
encoding never silently truncates a value; bits that no field covers are zero on encode and ignored on decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


class CdbFieldError(ValueError):
    """A value does not fit its field, or CDB bytes do not match the layout (wrong opcode, too short)."""


@dataclass(frozen=True, slots=True)
class Field:
    byte: int  # offset of the first (most significant) byte
    width: int = 1  # bytes, big-endian
    mask: int | None = None  # bits of the big-endian value; None = all of them
    signed: bool = False  # two's complement over the masked bits

    @property
    def bits(self) -> int:
        return self.mask if self.mask is not None else (1 << (8 * self.width)) - 1

    @property
    def shift(self) -> int:
        bits = self.bits
        return (bits & -bits).bit_length() - 1

    @property
    def size(self) -> int:
        """Number of bits the value occupies."""
        return (self.bits >> self.shift).bit_length()

    def value_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.size - 1)), (1 << (self.size - 1)) - 1
        return 0, (1 << self.size) - 1


@dataclass(frozen=True)
class Cdb:
    name: str
    opcode: int
    length: int
    fields: Mapping[str, Field] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.length not in (6, 10, 12, 16):
            raise ValueError(f"{self.name}: a CDB is 6, 10, 12 or 16 bytes, not {self.length}")
        table = dict(self.fields)
        table.setdefault("control", Field(self.length - 1))
        for fname, f in table.items():
            if f.byte < 1 or f.byte + f.width > self.length:
                raise ValueError(f"{self.name}.{fname}: bytes {f.byte}..{f.byte + f.width - 1} outside the CDB")
        object.__setattr__(self, "fields", MappingProxyType(table))
        # Decoding runs once per command on the target's hot path: precompute each field's slice and bit layout.
        plan = tuple(
            (fname, f.byte, f.byte + f.width, f.bits, f.shift, f.size if f.signed else 0) for fname, f in table.items()
        )
        object.__setattr__(self, "_plan", plan)

    def encode(self, **values: int) -> bytes:
        out = bytearray(self.length)
        out[0] = self.opcode
        for fname, value in values.items():
            f = self.fields.get(fname)
            if f is None:
                raise CdbFieldError(f"{self.name}: no field {fname!r} (fields: {', '.join(self.fields)})")
            low, high = f.value_range()
            value = int(value)
            if not low <= value <= high:
                raise CdbFieldError(f"{self.name}: {fname}={value} does not fit (allowed {low}..{high})")
            raw = (value & ((1 << f.size) - 1)) << f.shift
            current = int.from_bytes(out[f.byte : f.byte + f.width], "big")
            out[f.byte : f.byte + f.width] = ((current & ~f.bits) | raw).to_bytes(f.width, "big")
        return bytes(out)

    def decode(self, data: bytes | bytearray | memoryview) -> dict[str, int]:
        if len(data) < self.length:
            raise CdbFieldError(f"{self.name}: CDB is {len(data)} bytes, needs {self.length}")
        if data[0] != self.opcode:
            raise CdbFieldError(f"{self.name}: opcode {data[0]:#04x} is not {self.opcode:#04x}")
        result = {}
        for fname, start, end, bits, shift, signed_size in self._plan:  # type: ignore[attr-defined]
            raw = (int.from_bytes(data[start:end], "big") & bits) >> shift
            if signed_size and raw >> (signed_size - 1):
                raw -= 1 << signed_size
            result[fname] = raw
        return result

    def pointer(self, name: str) -> tuple[int, int | None]:
        """(byte, bit) of a field for sense-key-specific field pointers; bit is None for whole-byte fields."""
        f = self.fields[name]
        if f.mask is None:
            return f.byte, None
        # The byte holding the field's most significant bit, and that bit within it.
        top = f.bits.bit_length() - 1
        return f.byte + f.width - 1 - top // 8, top % 8
