"""The `local` transport: the simulator in the same process, as `local:///DIR/changer` or `local:///DIR/drive0`.

Invariants: opening a URL takes the library directory's lock for this process (shared by every local transport of the
process on the same directory, released with the last one); `execute` hands the CDB and data-out straight to the
target (no copies) and returns its `ScsiResult` unchanged. A malformed URL, a missing library or an unknown device
name raise `DeviceNotFound` with the fix; a library another process holds raises `DeviceBusy`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote

from drivers.errors import DeviceNotFound, TransportError
from drivers.transport.base import DEFAULT_TIMEOUT, ScsiResult
from drivers.transport.base import split_url as split_device_url
from drivers.transport.frames import MAX_DATA
from simulators.vtl import devices
from simulators.vtl.library import Library


def split_url(url: str) -> tuple[str, str]:
    """`local:///DIR/drive0` -> (`/DIR`, `drive0`)."""
    parts = split_device_url(url)
    if parts.scheme != "local" or parts.netloc not in ("", "localhost"):
        raise DeviceNotFound(f"{url!r} is not a local device URL: write local:///LIBRARY-DIR/changer or .../drive0")
    path = PurePosixPath(unquote(parts.path))
    if not path.is_absolute() or len(path.parts) < 3:
        raise DeviceNotFound(f"{url!r}: give an absolute library directory and a device, e.g. local:///var/lib/"
                             f"tapeline/vtl/changer")
    return str(path.parent), path.name


class LocalTransport:
    """A `drivers.transport.base.Transport` over the in-process target."""

    max_transfer = MAX_DATA  # as the served library takes: the same WRITEs locally and over `stream`

    def __init__(self, url: str):
        self.url = url
        directory, self.device = split_url(url)
        self._library = devices.acquire(directory)
        unit = self._library.target.unit(self.device)
        if unit is None:
            names = ", ".join(self._library.target.units)
            devices.release(self._library)
            raise DeviceNotFound(f"{url}: library {directory} has no device {self.device!r} (it has {names})")
        self._unit = unit

    @property
    def library(self) -> Library:
        return self._library

    def execute(
        self, cdb: bytes, data_out: bytes | memoryview = b"", data_in_len: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> ScsiResult:
        if self._unit is None:
            raise TransportError(f"{self.url}: transport is closed")
        return self._unit.execute(cdb, data_out, data_in_len)

    def close(self) -> None:
        if self._unit is not None:
            self._unit = None
            devices.release(self._library)

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
