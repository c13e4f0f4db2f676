"""SCSI commands to a served library over any pyserial URL: the `stream` transport (client side).

The frames and the handshake are `drivers.transport.frames` (one module for both ends, so they cannot disagree).

URLs
----
`stream+<pyserial URL>` plus the name of a device within the served library (`changer`, `drive0`, ...):

* network URLs (`stream+socket://127.0.0.1:7101/changer`, `stream+rfc2217://host:port/drive0`): the path after the
  host names the device;
* a serial line or a pty (`stream+serial:///dev/ttyUSB0#drive0`, `stream+serial:///dev/pts/3?baudrate=115200#changer`):
  the fragment names the device, the path is the device node handed to pyserial;
* any URL may give the device as a `#fragment` instead of a path;
* `token=FILE` in the query names the library's token file (`stream+socket://host:7101/changer?token=/path/token`);
  `baudrate` (serial lines) is the only other key this module reads, the rest goes to pyserial.

The library's token
-------------------
A served library accepts only clients that prove its token (`drivers.transport.token`). The client takes the token
file from, in order: the URL's `token=FILE`; the `TAPELINE_VTL_TOKEN` environment variable (a file path); the path the
server names in its challenge, which is the library's own `<library>/token` and so works with nothing to type for the
user that serves the library on the same machine (and root). Any other local user cannot read that file (0600) and
is refused before any command runs.

Invariants
----------
* `StreamTransport` runs one command at a time (a lock) and, after a timeout or a broken connection, reconnects
  (handshake included) on the next command rather than risk pairing a late answer with a new request.
* A refused handshake is a `TransportError` whose one line says why and how to give the token; nothing was executed.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import serial
from serial.urlhandler import protocol_socket

from drivers.errors import DeviceNotFound, TransportError
from drivers.transport import token as tokens
from drivers.transport.base import DEFAULT_TIMEOUT, ScsiResult, split_url
from drivers.transport.frames import (
    DEVICE_NAME,
    ERROR_CODES,
    HANDSHAKE_TIMEOUT,
    MALFORMED,
    MAX_DATA,
    UNKNOWN_DEVICE,
    Challenge,
    ErrorReply,
    FrameError,
    FrameReader,
    Proof,
    Request,
    Response,
    Welcome,
    encode_hello,
    encode_proof,
    encode_request_head,
    raw_socket,
    write_parts,
)

TOKEN_ENV = "TAPELINE_VTL_TOKEN"


@dataclass(frozen=True, slots=True)
class StreamAddress:
    port_url: str  # what pyserial opens
    device: str  # the device within the served library
    baudrate: int | None = None
    token_file: str | None = None  # the URL's token=FILE


def parse_stream_url(url: str) -> StreamAddress:
    """Split `stream+...` into the pyserial URL and the device name (see the module docstring)."""
    if not url.startswith("stream+"):
        raise DeviceNotFound(f"{url}: a stream URL starts with stream+, e.g. stream+socket://127.0.0.1:7101/changer")
    inner = url[len("stream+"):]
    split_url(url)  # a malformed URL (`stream+socket://[bad`) is DeviceNotFound, not urlsplit's ValueError
    parts = urlsplit(inner)
    if not parts.scheme:
        raise DeviceNotFound(f"{url}: give a pyserial URL after stream+ (socket://HOST:PORT/DEVICE or "
                             f"serial:///dev/ttyX#DEVICE)")
    device = parts.fragment or (parts.path.lstrip("/") if parts.netloc else "")
    if not device:
        where = "as the path (socket://HOST:PORT/changer)" if parts.netloc else "as a fragment (#changer)"
        raise DeviceNotFound(f"{url}: no device named; give it {where}")
    if not DEVICE_NAME.fullmatch(device):
        raise DeviceNotFound(f"{url}: device name {device!r} must be letters, digits, _ . - (e.g. changer, drive0)")
    query = parse_qs(parts.query, keep_blank_values=True)
    token_file = query.get("token", [None])[0]
    if "token" in query and not token_file:
        raise DeviceNotFound(f"{url}: token= names no file; give the library's token file, e.g. ?token=/DIR/token")
    rest = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"])
    if parts.scheme == "serial":
        baud = query.get("baudrate", [None])[0]
        try:
            baudrate = int(baud) if baud is not None else None
        except ValueError:
            raise DeviceNotFound(f"{url}: baudrate {baud!r} is not a number") from None
        return StreamAddress(parts.path, device, baudrate, token_file)
    if parts.netloc:
        port_url = f"{parts.scheme}://{parts.netloc}"
    else:
        port_url = inner.split("#", 1)[0].split("?", 1)[0]
    return StreamAddress(port_url + (f"?{rest}" if rest else ""), device, None, token_file)


class StreamTransport:
    """The `stream` transport: SCSI commands to a device served by `tapeline-vtl serve` (or any frame server)."""

    max_transfer = MAX_DATA

    def __init__(self, url: str) -> None:
        self.url = url
        self.address = parse_stream_url(url)
        self._lock = threading.Lock()
        self._next_id = 1
        self._port: Any = None
        self._reader: FrameReader | None = None
        self._connect()

    def _connect(self) -> None:
        addr = self.address
        try:
            if addr.baudrate is not None:
                port = serial.serial_for_url(addr.port_url, baudrate=addr.baudrate)
            else:
                port = serial.serial_for_url(addr.port_url)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise self._open_error(exc) from exc
        sock = raw_socket(port)
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader(port)
        try:
            self._handshake(port, reader)
        except BaseException:
            _close_quietly(port)
            raise
        self._port, self._reader = port, reader

    def _handshake(self, port: Any, reader: FrameReader) -> None:
        """The client's half: prove the library's token (see the module docstring for where it is found)."""
        sock = raw_socket(port)
        if sock is not None:
            sock.settimeout(HANDSHAKE_TIMEOUT)
        else:
            port.timeout = port.write_timeout = HANDSHAKE_TIMEOUT
        try:
            write_parts(port, encode_hello())
            challenge = reader.read_frame()
            if isinstance(challenge, ErrorReply):
                raise TransportError(f"{self.url}: server refused the connection: {challenge.message}")
            if not isinstance(challenge, Challenge):
                raise TransportError(f"{self.url}: the server did not open with a challenge: it is not a Tapeline "
                                     f"library of this version (stream protocol 2); check the address")
            token = self._token(challenge)
            write_parts(port, encode_proof(Proof(tokens.proof(token, challenge.nonce))))
            answer = reader.read_frame()
        except (TimeoutError, socket.timeout):
            raise TransportError(f"{self.url}: no handshake within {HANDSHAKE_TIMEOUT:g} s; check that the address is "
                                 f"a tapeline-vtl serve") from None
        except (OSError, serial.SerialException, FrameError) as exc:
            raise TransportError(f"{self.url}: handshake failed ({exc}); check that the address is a "
                                 f"tapeline-vtl serve of this version") from None
        if isinstance(answer, ErrorReply):
            what = ERROR_CODES.get(answer.code, f"error {answer.code}")
            raise TransportError(f"{self.url}: server refused the connection ({what}): {answer.message}")
        if not isinstance(answer, Welcome):
            raise TransportError(f"{self.url}: the server answered the handshake with "
                                 f"{type(answer).__name__ if answer else 'nothing'}; check the address")

    def _token(self, challenge: Challenge) -> bytes:
        given = self.address.token_file or os.environ.get(TOKEN_ENV) or None
        path = given or challenge.token_path
        if not path:
            raise TransportError(f"{self.url}: the library requires its token and names no file: give "
                                 f"?token=FILE or {TOKEN_ENV}=FILE (the library's <directory>/token)")
        try:
            return tokens.read_token(path)
        except tokens.TokenError as exc:
            how = "" if given else f"; or give ?token=FILE or {TOKEN_ENV}=FILE"
            raise TransportError(f"{self.url}: the library requires its token: {exc}{how}") from None

    def _open_error(self, exc: Exception) -> Exception:
        text = str(exc)
        if "Connection refused" in text or "[Errno 111]" in text:
            where = urlsplit(self.address.port_url).netloc or "HOST:PORT"
            return TransportError(f"{self.url}: connection refused at {where}; start "
                                  f"`tapeline-vtl serve DIR --listen {where}` or check the address")
        if "No such file" in text or "[Errno 2]" in text:
            return DeviceNotFound(f"{self.url}: {self.address.port_url} does not exist; check the device node")
        if "Name or service not known" in text or "Temporary failure in name resolution" in text:
            return DeviceNotFound(f"{self.url}: unknown host in {self.address.port_url}; check the address")
        return TransportError(f"{self.url}: cannot open {self.address.port_url}: {text}")

    def execute(
        self, cdb: bytes, data_out: bytes | memoryview = b"", data_in_len: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> ScsiResult:
        with self._lock:
            if self._port is None:
                self._connect()
            request_id = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
            req = Request(request_id, self.address.device, bytes(cdb), data_out, data_in_len, int(timeout * 1000))
            try:
                head = encode_request_head(req)
            except ValueError as exc:
                raise TransportError(f"{self.url}: {exc}") from None
            try:
                answer = self._exchange(req, head, timeout)
            except (TimeoutError, socket.timeout):
                self._drop()
                raise TransportError(f"{self.url}: no answer within {timeout:g} s; the connection was reset, "
                                     f"check that the server is running") from None
            except FrameError as exc:
                self._drop()
                raise TransportError(f"{self.url}: {exc}") from None
            except (OSError, serial.SerialException, TransportError) as exc:
                self._drop()
                raise TransportError(f"{self.url}: connection lost ({exc}); the next command reconnects") from None
        if isinstance(answer, ErrorReply):
            what = ERROR_CODES.get(answer.code, f"error {answer.code}")
            if answer.code == UNKNOWN_DEVICE:
                raise DeviceNotFound(f"{self.url}: {answer.message}")
            raise TransportError(f"{self.url}: server refused the command ({what}): {answer.message}")
        if len(answer.data) > data_in_len:
            raise TransportError(f"{self.url}: server sent {len(answer.data)} bytes for {data_in_len} asked")
        return ScsiResult(answer.status, answer.data, answer.sense, answer.resid)

    def _exchange(self, req: Request, head: bytes, timeout: float) -> Response | ErrorReply:
        port, reader = self._port, self._reader
        assert reader is not None
        sock = raw_socket(port)
        # The device timeout plus slack for the trip (up to 5 s), so the device's own timeout answers first.
        wait = timeout + min(timeout, 5.0)
        if sock is not None:
            sock.settimeout(wait)
        else:
            port.timeout = wait
            port.write_timeout = wait
        write_parts(port, head, req.data_out)
        while True:
            answer = reader.read_response()
            if answer.request_id == req.request_id:
                return answer
            if answer.request_id > req.request_id:
                raise FrameError(MALFORMED, f"answer to request {answer.request_id} while {req.request_id} "
                                            f"was the last one sent", answer.request_id, fatal=True)
            # An older id is a late answer to a command abandoned before a reconnect: skip it.

    def _drop(self) -> None:
        port, self._port, self._reader = self._port, None, None
        if port is not None:
            _close_quietly(port)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> StreamTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_quietly(port: Any) -> None:
    try:
        sock = raw_socket(port) if isinstance(port, protocol_socket.Serial) else None
        if sock is not None:
            # pyserial's socket:// close sleeps 0.3 s after closing "in case of quick reconnects": every command
            # that used a drive or a changer waited for it. The library's server needs no such pause.
            port._socket, port.is_open = None, False
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()
            return
        port.close()
    except (OSError, serial.SerialException):
        pass
