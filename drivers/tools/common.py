"""What `tapeline-mtx` and `tapeline-mt` share: device URLs, opening them with the tools' own error lines, and
running a CDB the way mtx's `SCSI_ExecuteCommand` judges it.

Invariants:
* `-f` takes any device URL; a plain path (`/dev/sg3`) means `sg:///dev/sg3`, so scripts written for the real tools
  keep working on real hardware. `mtx://X` (the appliance's URL for a changer driven by the mtx binary) means the
  device X itself: these tools are mtx, so `mtx:///dev/sg3` opens /dev/sg3 as a plain path would.
* A URL that names nothing (malformed, unknown scheme, no such device in a served library) is one line naming the
  URL and why, exit 1, whether the transport finds out at open or at the first command (`run` raises it as
  `OpenFailed`).
* `run` never raises for a SCSI failure: it returns `Outcome(ok=False, sense=...)` as mtx does (RECOVERED ERROR
  counts as success, anything else not GOOD is a failure), the sense decoded once by `drivers.scsi.sense`. A
  transport failure is also an `Outcome(ok=False)` with no sense, after printing its one-line cause to stderr, so
  the tools' exit paths stay those of the originals.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from drivers.errors import DeviceError, DeviceNotFound, TransportError
from drivers.mtx import mtx_device
from drivers.scsi.sense import KEY_RECOVERED_ERROR, SenseData
from drivers.transport.base import CHECK_CONDITION, GOOD, Transport, open_transport
from drivers.transport.sg import NotSgDevice

MINUTE = 60.0


def device_url(device: str) -> str:
    """A URL for `-f DEVICE`: URLs pass through, a plain path is an sg node."""
    return device if "://" in device else f"sg://{os.path.abspath(device)}"


def strip_mtx(device: str) -> str:
    """`mtx:///dev/sg3` -> `/dev/sg3`, `mtx://stream+socket://H:P/changer` -> the stream URL; others unchanged."""
    return mtx_device(device) if device.startswith("mtx:") else device


class OpenFailed(Exception):
    """The device could not be opened; `line` is what the tool prints before exiting 1."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def open_device(device: str, not_sg_line: str, cannot_open_line: str) -> Transport:
    """Open `-f DEVICE`. For a plain path the failures read as the real tool's (the `*_line` templates take
    `{dev}` and `{why}`); for URLs they are the transport's own one-line message."""
    try:
        device = strip_mtx(device)
        return open_transport(device_url(device))
    except NotSgDevice:
        if "://" in device:
            raise
        raise OpenFailed(not_sg_line.format(dev=device)) from None
    except DeviceError as exc:
        cause = exc.__cause__
        if "://" not in device and isinstance(cause, OSError) and cause.strerror:
            raise OpenFailed(cannot_open_line.format(dev=device, why=cause.strerror)) from None
        raise OpenFailed(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    data: bytes = b""
    sense: SenseData | None = None  # None after a transport failure, or when the device sent none mtx can read


def decode_sense(raw: bytes) -> SenseData | None:
    try:
        return SenseData.decode(raw)
    except ValueError:
        return None


def run(transport: Transport, cdb: bytes, data_in_len: int = 0, data_out: bytes = b"",
        timeout: float = 5 * MINUTE) -> Outcome:
    try:
        result = transport.execute(cdb, data_out, data_in_len, timeout)
    except DeviceNotFound as exc:  # a served library without that device: known only at the first command
        raise OpenFailed(str(exc)) from None
    except TransportError as exc:
        sys.stdout.flush()
        print(str(exc), file=sys.stderr)
        return Outcome(False)
    data = bytes(result.data)
    if result.status == GOOD:
        return Outcome(True, data)
    sense = decode_sense(bytes(result.sense))
    recovered = sense is not None and sense.key == KEY_RECOVERED_ERROR
    return Outcome(result.status == CHECK_CONDITION and recovered, data, sense)
