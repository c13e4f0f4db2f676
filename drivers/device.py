"""`ScsiDevice`: what `MediaChanger` (drivers/changer.py) and `TapeDrive` (drivers/tape.py) share: a transport opened
from a device URL, a label that names the device in every error, and one command run with UNIT ATTENTION retried.

Invariants:
- UNIT ATTENTION (medium changed, reset, mode parameters changed, mail slot accessed) is retried up to `UA_RETRIES`
  times, as mtx does: reporting it clears the condition on the device. `_unit_attention()` runs before each retry, so
  a subclass can forget what the condition may have changed.
- A result with GOOD status comes back without any sense decoding; any other is decoded once by
  `drivers.scsi.sense.raise_for_result`, and its error raised unless `_accept(err)` takes it, in which case the
  result comes back as if the command had succeeded.
"""

from __future__ import annotations

from typing import Self

from drivers.scsi.cdb import Cdb
from drivers.scsi.sense import ScsiError, UnitAttention, raise_for_result
from drivers.transport.base import DEFAULT_TIMEOUT, GOOD, ScsiResult, Transport, open_transport

UA_RETRIES = 5


class ScsiDevice:
    def __init__(self, device: str | Transport, label: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.transport: Transport = open_transport(device) if isinstance(device, str) else device
        self.label = label or self.transport.url
        self.timeout = timeout

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
                raise_for_result(result, table.name, self.label, cartridge)
            except UnitAttention:
                if attempt == UA_RETRIES:
                    raise
                self._unit_attention()
                continue
            except ScsiError as err:
                if not self._accept(err):
                    raise
            return result
        raise AssertionError("unreachable")

    def _unit_attention(self) -> None:
        """Called before a command is retried after UNIT ATTENTION: forget what a new medium or a reset changes."""

    def _accept(self, err: ScsiError) -> bool:
        """True when `err` reports a condition the command succeeded despite; by default none."""
        return False
