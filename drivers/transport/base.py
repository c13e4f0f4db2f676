"""How a CDB travels to a device and its answer comes back.

A transport carries one SCSI command at a time: CDB bytes out, optional data out, up to `data_in_len` bytes in,
and the SAM status, sense and residue back. It never interprets sense: `drivers.scsi.sense` does that once, for
every transport. Transports are found by URL scheme through the `tapeline.transports` entry points, so the
simulator's `local` transport registers itself and drivers never import it.

URLs: `sg:///dev/sg3`, `stream+socket://127.0.0.1:7101/changer` (any pyserial URL after `stream+`; the path after
the host names the device within the served library), `local:///var/lib/tapeline/vtl/changer`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable
from urllib.parse import SplitResult, urlsplit

from drivers.errors import DeviceNotFound
from drivers.scsi.status import BUSY, CHECK_CONDITION, GOOD, ScsiResult

__all__ = ["BUSY", "CHECK_CONDITION", "DEFAULT_TIMEOUT", "GOOD", "ScsiResult", "Transport", "open_transport",
           "scheme_of", "split_url"]

DEFAULT_TIMEOUT = 300.0  # seconds; mtx uses 5 minutes for everything but INITIALIZE ELEMENT STATUS


@runtime_checkable
class Transport(Protocol):
    url: str
    max_transfer: int  # bytes of data one command may carry (a fixed-mode WRITE of many blocks is cut to fit)

    def execute(
        self, cdb: bytes, data_out: bytes | memoryview = b"", data_in_len: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> ScsiResult: ...

    def close(self) -> None: ...


def split_url(url: str) -> SplitResult:
    """`urlsplit`, with a malformed URL (`stream+socket://[bad`) a `DeviceNotFound` that says what is wrong."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise DeviceNotFound(f"{url}: malformed device URL ({exc}); give one like sg:///dev/sg3 or "
                             f"stream+socket://127.0.0.1:7101/changer") from None


def scheme_of(url: str) -> str:
    """`stream+socket://h:p/x` -> `stream`; `sg:///dev/sg3` -> `sg`."""
    scheme = split_url(url).scheme
    if not scheme:
        raise DeviceNotFound(f"{url!r} is not a device URL: give one like sg:///dev/sg3 or local:///DIR/changer")
    return scheme.split("+", 1)[0]


def open_transport(url: str) -> Transport:
    """Open the transport named by `url`'s scheme (registered under the `tapeline.transports` entry points)."""
    scheme = scheme_of(url)
    found = [ep for ep in entry_points(group="tapeline.transports") if ep.name == scheme]
    if not found:
        known = ", ".join(sorted(ep.name for ep in entry_points(group="tapeline.transports")))
        raise DeviceNotFound(f"{url}: no transport for scheme {scheme!r} (known: {known})")
    return found[0].load()(url)
