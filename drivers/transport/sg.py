"""The `sg` transport: SCSI commands through the Linux SG_IO ioctl on a `/dev/sgN` node (`sg:///dev/sg3`).

Invariants (reference/scsi.md §1):
* `SgIoHdr` is the kernel's `sg_io_hdr_t` on x86-64, 88 bytes; ctypes pads it as gcc does.
* The node is opened O_RDWR (as mtx does) and must answer SG_GET_VERSION_NUM with 30000 or more; anything else is
  "not an sg device".
* One command at a time per transport (a lock): the header, CDB, sense and data buffers are per call.
* A command reaches the caller as a `ScsiResult` whenever the device answered: status, the sense bytes it wrote,
  the data actually transferred (resid trimmed). Transport and adapter failures (ioctl errors, host_status,
  driver_status other than OK/SENSE) are `TransportError`s naming the device. Sense is never interpreted here:
  RECOVERED ERROR, UNIT ATTENTION and the rest are for `drivers.scsi` and the caller (unlike mtx, which ignores
  host and driver status when the SCSI status is GOOD).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import threading
from array import array
from ctypes import c_int, c_ubyte, c_uint, c_ushort, c_void_p

from drivers.errors import DeviceNotFound, TransportError
from drivers.transport.base import CHECK_CONDITION, DEFAULT_TIMEOUT, ScsiResult, split_url

SG_IO = 0x2285
SG_GET_VERSION_NUM = 0x2282
BLKSECTGET = 0x1267  # on an sg node: the most bytes one command may move (the host adapter's limit)
ONE_BLOCK = 256 * 1024  # what a command may move when the node does not say (Tapeline's block)
SG_MIN_VERSION = 30000

SG_DXFER_NONE = -1
SG_DXFER_TO_DEV = -2
SG_DXFER_FROM_DEV = -3

SENSE_BUFFER = 64  # fixed-format sense is 18 bytes, descriptor sense may be longer
DRIVER_SENSE = 0x08

HOST_STATUS = {
    1: "DID_NO_CONNECT: no device at this address (is it powered and cabled?)",
    2: "DID_BUS_BUSY: the bus stayed busy",
    3: "DID_TIME_OUT: the adapter timed out the command",
    4: "DID_BAD_TARGET: bad target",
    5: "DID_ABORT: the command was aborted",
    6: "DID_PARITY: parity error on the bus",
    7: "DID_ERROR: internal adapter error",
    8: "DID_RESET: the bus or device was reset",
    9: "DID_BAD_INTR: unexpected interrupt",
    10: "DID_PASSTHROUGH",
    11: "DID_SOFT_ERROR: the adapter asks for a retry",
    12: "DID_IMM_RETRY",
    13: "DID_REQUEUE",
    14: "DID_TRANSPORT_DISRUPTED: the transport link was disrupted",
    15: "DID_TRANSPORT_FAILFAST: the transport link failed",
}
DRIVER_STATUS = {
    1: "DRIVER_BUSY",
    2: "DRIVER_SOFT",
    3: "DRIVER_MEDIA",
    4: "DRIVER_ERROR",
    5: "DRIVER_INVALID",
    6: "DRIVER_TIMEOUT: the command timed out",
    7: "DRIVER_HARD",
}


class NotSgDevice(DeviceNotFound):
    """The node opened but is not an sg device (or its sg driver is too old for SG_IO)."""


class SgIoHdr(ctypes.Structure):
    _fields_ = [
        ("interface_id", c_int),  # 'S'
        ("dxfer_direction", c_int),  # SG_DXFER_*
        ("cmd_len", c_ubyte),
        ("mx_sb_len", c_ubyte),  # size of the sense buffer
        ("iovec_count", c_ushort),
        ("dxfer_len", c_uint),
        ("dxferp", c_void_p),
        ("cmdp", c_void_p),
        ("sbp", c_void_p),
        ("timeout", c_uint),  # milliseconds
        ("flags", c_uint),
        ("pack_id", c_int),
        ("usr_ptr", c_void_p),
        ("status", c_ubyte),  # SCSI status byte as the device sent it
        ("masked_status", c_ubyte),  # (status >> 1) & 0x7f
        ("msg_status", c_ubyte),
        ("sb_len_wr", c_ubyte),  # sense bytes actually written
        ("host_status", c_ushort),
        ("driver_status", c_ushort),
        ("resid", c_int),  # dxfer_len minus the bytes actually transferred
        ("duration", c_uint),  # milliseconds
        ("info", c_uint),
    ]


def sg_path(url: str) -> str:
    """`sg:///dev/sg3` -> `/dev/sg3`."""
    parts = split_url(url)
    if parts.scheme != "sg" or not parts.path or parts.netloc:
        raise DeviceNotFound(f"{url!r} is not an sg URL: give one like sg:///dev/sg3 (three slashes)")
    return parts.path


def open_sg(path: str, url: str) -> int:
    """Open an sg node and check it is one; the errors say which node and why."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError as exc:
        raise DeviceNotFound(f"{url}: {path} does not exist; list the SCSI generic devices with `lsscsi -g`") from exc
    except PermissionError as exc:
        raise TransportError(f"{url}: no permission to open {path} read-write; run as root or add the user to the "
                             f"group that owns it (ls -l {path})") from exc
    except OSError as exc:
        raise TransportError(f"{url}: cannot open {path}: {exc.strerror}") from exc
    version = array("i", [0])
    try:
        fcntl.ioctl(fd, SG_GET_VERSION_NUM, version, True)
    except OSError:
        os.close(fd)
        raise NotSgDevice(f"{url}: {path} is not an sg device (it does not answer SG_GET_VERSION_NUM); give a "
                             f"/dev/sgN node from `lsscsi -g`") from None
    if version[0] < SG_MIN_VERSION:
        os.close(fd)
        raise NotSgDevice(f"{url}: {path} has sg driver version {version[0]}, below {SG_MIN_VERSION}: "
                             f"an old sg driver; SG_IO needs a newer kernel")
    return fd


def judge(hdr: SgIoHdr, sense_buf: bytes, data_in: bytearray | None, url: str, cdb: bytes) -> ScsiResult:
    """Turn a header the kernel filled into a ScsiResult, or a TransportError when the command did not complete."""
    what = f"{url}: command 0x{cdb[0]:02X}"
    if hdr.host_status:
        name = HOST_STATUS.get(hdr.host_status, f"host status 0x{hdr.host_status:02X}")
        raise TransportError(f"{what} failed in the adapter: {name}")
    driver = hdr.driver_status & 0x0F
    if driver not in (0, DRIVER_SENSE):
        name = DRIVER_STATUS.get(driver, f"driver status 0x{hdr.driver_status:02X}")
        raise TransportError(f"{what} failed in the sg driver: {name}")
    sense = bytes(sense_buf[: min(hdr.sb_len_wr, len(sense_buf))])
    status = hdr.status
    if status == 0 and hdr.driver_status & DRIVER_SENSE and sense:
        # Some adapters report sense through driver_status with a GOOD status byte: it is still a CHECK CONDITION.
        status = CHECK_CONDITION
    if data_in is None:
        return ScsiResult(status, b"", sense, 0)
    resid = max(0, min(hdr.resid, len(data_in)))
    data = memoryview(data_in)[: len(data_in) - resid]
    return ScsiResult(status, data, sense, resid)


class SgCommand:
    """One SG_IO call: the header and the buffers it points into, kept alive together until the ioctl returns."""

    def __init__(self, cdb: bytes, data_out: bytes | memoryview, data_in_len: int, timeout: float) -> None:
        if len(data_out) and data_in_len:
            raise ValueError("SG_IO moves data one way per command: give data_out or data_in_len, not both")
        if not 6 <= len(cdb) <= 16:
            raise ValueError(f"CDB of {len(cdb)} bytes: SG_IO takes 6 to 16")
        self.cdb = ctypes.create_string_buffer(bytes(cdb), len(cdb))
        self.sense = ctypes.create_string_buffer(SENSE_BUFFER)
        self.data_in: bytearray | None = None
        self.hdr = hdr = SgIoHdr(interface_id=ord("S"), dxfer_direction=SG_DXFER_NONE, cmd_len=len(cdb),
                                 mx_sb_len=SENSE_BUFFER, timeout=min(int(timeout * 1000), 0xFFFFFFFF))
        hdr.cmdp = ctypes.addressof(self.cdb)
        hdr.sbp = ctypes.addressof(self.sense)
        self._keep: object = None  # the object dxferp points into
        if len(data_out):
            if isinstance(data_out, bytes):
                # The kernel only reads a TO_DEV buffer, so it may point into the immutable bytes: no copy.
                self._keep = ctypes.c_char_p(data_out)
                hdr.dxferp = ctypes.cast(self._keep, c_void_p).value
            else:
                self._keep = ctypes.create_string_buffer(bytes(data_out), len(data_out))
                hdr.dxferp = ctypes.addressof(self._keep)
            hdr.dxfer_direction, hdr.dxfer_len = SG_DXFER_TO_DEV, len(data_out)
        elif data_in_len:
            self.data_in = bytearray(data_in_len)
            self._keep = (ctypes.c_char * data_in_len).from_buffer(self.data_in)
            hdr.dxferp = ctypes.addressof(self._keep)
            hdr.dxfer_direction, hdr.dxfer_len = SG_DXFER_FROM_DEV, data_in_len


def max_transfer(fd: int) -> int:
    """The most data bytes one SG_IO may move on this node: a larger one fails with EINVAL."""
    limit = array("i", [0])
    try:
        fcntl.ioctl(fd, BLKSECTGET, limit, True)
    except OSError:
        return ONE_BLOCK
    return limit[0] if limit[0] > 0 else ONE_BLOCK


class SgTransport:
    """SCSI commands to one /dev/sgN node."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sg_path(url)
        self._fd: int | None = open_sg(self.path, url)
        self._lock = threading.Lock()
        self.max_transfer = max_transfer(self._fd)

    def execute(
        self, cdb: bytes, data_out: bytes | memoryview = b"", data_in_len: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> ScsiResult:
        cmd = SgCommand(cdb, data_out, data_in_len, timeout)
        with self._lock:
            if self._fd is None:
                raise TransportError(f"{self.url}: the transport is closed")
            try:
                fcntl.ioctl(self._fd, SG_IO, cmd.hdr, True)
            except OSError as exc:
                name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                raise TransportError(f"{self.url}: SG_IO for command 0x{cdb[0]:02X} failed: {name} "
                                     f"({exc.strerror}); check the device and the kernel log") from None
        return judge(cmd.hdr, cmd.sense.raw, cmd.data_in, self.url, bytes(cdb))

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> SgTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
