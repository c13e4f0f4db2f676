"""`ScsiDevice`: what `MediaChanger` (drivers/changer.py) and `TapeDrive` (drivers/tape.py) share: a transport opened
from a device URL, a label that names the device in every error, and one command run with UNIT ATTENTION retried.

Invariants:
- The label is the caller's, or else built from the device itself the first time a message needs it (`_describe`:
  "LTO-8 drive 0 (URL)", "IBM 3573-TL (URL)"): no command is spent on it until then. If the device cannot say what
  it is, the URL alone names it (and the device is asked again next time).
- The cartridge an error names is the caller's, or else `_cartridge_for_error()`, asked only once a command failed.
- UNIT ATTENTION (medium changed, reset, mode parameters changed, mail slot accessed) is retried up to `UA_RETRIES`
  times, as mtx does: reporting it clears the condition on the device. `_unit_attention()` runs before each retry, so
  a subclass can forget what the condition may have changed.
- A result with GOOD status comes back without any sense decoding; any other is decoded once by
  `drivers.scsi.sense.raise_for_result`, and its error raised unless `_accept(err)` takes it, in which case the
  result comes back as if the command had succeeded.
"""

from __future__ import annotations

from typing import Self

from drivers.errors import DeviceError
from drivers.scsi import spc
from drivers.scsi.cdb import Cdb
from drivers.scsi.sense import ScsiError, StatusError, UnitAttention, raise_for_result
from drivers.transport.base import DEFAULT_TIMEOUT, GOOD, ScsiResult, Transport, open_transport

UA_RETRIES = 5


class ScsiDevice:
    def __init__(self, device: str | Transport, label: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.transport: Transport = open_transport(device) if isinstance(device, str) else device
        self._label = label
        self.timeout = timeout

    @property
    def label(self) -> str:
        if self._label is None:
            described = self._describe()
            if described is None:
                return self.transport.url
            self._label = described
        return self._label

    @label.setter
    def label(self, value: str) -> None:
        self._label = value

    def _describe(self) -> str | None:
        """What the device calls itself, for messages; None when it cannot tell. By default none."""
        return None

    def _identity(self) -> spc.InquiryData | None:
        """Standard INQUIRY run straight on the transport (no error handling: it serves the error path)."""
        try:
            result = self.transport.execute(spc.INQUIRY.encode(alloc=96), b"", 96, self.timeout)
            return spc.InquiryData.decode(result.data) if result.status == GOOD else None
        except (DeviceError, ValueError):
            return None

    def _cartridge_for_error(self) -> str | None:
        """The cartridge an error names when the caller gave none; by default none."""
        return None

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _command(
        self,
        table: Cdb,
        cdb: bytes,
        data_in_len: int = 0,
        data_out: bytes = b"",
        timeout: float | None = None,
        cartridge: str | None = None,
    ) -> ScsiResult:
        """Run `cdb` (built from `table`); errors name this device, `table.name` and `cartridge`."""
        for attempt in range(UA_RETRIES + 1):
            result = self.transport.execute(cdb, data_out, data_in_len, timeout or self.timeout)
            if result.status == GOOD:
                return result
            try:
                raise_for_result(result, table.name, "", None)
            except UnitAttention as err:
                if attempt == UA_RETRIES:
                    raise self._named(err, cartridge)
                self._unit_attention()
                continue
            except ScsiError as err:
                if not self._accept(err):
                    raise self._named(err, cartridge)
            except StatusError:
                raise_for_result(result, table.name, self.label)
            return result
        raise AssertionError("unreachable")

    def _named(self, err: ScsiError, cartridge: str | None = None) -> ScsiError:
        """`err` naming this device and the cartridge concerned (the caller's, else `_cartridge_for_error()`)."""
        err.device = self.label
        err.cartridge = cartridge or self._cartridge_for_error()
        return err

    def _unit_attention(self) -> None:
        """Called before a command is retried after UNIT ATTENTION: forget what a new medium or a reset changes."""

    def _accept(self, err: ScsiError) -> bool:
        """True when `err` reports a condition the command succeeded despite; by default none."""
        return False
