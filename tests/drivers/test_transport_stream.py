"""The stream transport: exact frame bytes, codec round trips, and real connections (TCP loopback, socketpair, pty)."""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DeviceNotFound, TransportError
from drivers.transport import stream
from drivers.transport.base import open_transport
from drivers.transport.stream import (
    ErrorReply,
    FrameError,
    FrameReader,
    Request,
    Response,
    StreamTransport,
    decode_request,
    decode_response,
    encode_error,
    encode_request,
    encode_response,
    parse_stream_url,
    serve_connection,
)

WRITE6 = bytes([0x0A, 0x00, 0x00, 0x00, 0x04, 0x00])


# ---------------------------------------------------------------------------------------------------------------
# Exact bytes


def test_request_frame_bytes():
    frame = encode_request(Request(7, "drive0", WRITE6, b"abcd", 0, 300_000))
    assert frame == bytes.fromhex(
        "544c5354"  # magic TLST
        "01" "01" "0000"  # version 1, kind request, reserved
        "00000007"  # request id
        "0000001c"  # body: 12 fixed + 6 name + 6 CDB + 4 data
        "06" "06" "0000" "00000000" "000493e0"  # name len, CDB len, reserved, data_in_len 0, timeout 300000 ms
    ) + b"drive0" + WRITE6 + b"abcd"


def test_response_frame_bytes():
    sense = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xC0, 0, 2])
    frame = encode_response(Response(9, 0x02, sense, b"xy", -3))
    assert frame == bytes.fromhex(
        "544c5354" "01" "02" "0000" "00000009" "0000001c"  # body: 8 fixed + 18 sense + 2 data
        "02" "12" "0000" "fffffffd"  # CHECK CONDITION, 18 sense bytes, reserved, resid -3
    ) + sense + b"xy"


def test_error_frame_bytes():
    frame = encode_error(ErrorReply(3, stream.UNKNOWN_DEVICE, "no drive7"))
    assert frame == bytes.fromhex("544c5354" "01" "03" "0000" "00000003" "0000000b" "0005") + b"no drive7"


# ---------------------------------------------------------------------------------------------------------------
# Round trips

names = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)
u32 = st.integers(0, 2**32 - 1)


@given(u32, names, st.binary(min_size=1, max_size=32), st.binary(max_size=4096), st.integers(0, stream.MAX_DATA), u32)
def test_request_round_trip(request_id, device, cdb, data_out, data_in_len, timeout_ms):
    req = Request(request_id, device, cdb, data_out, data_in_len, timeout_ms)
    assert decode_request(encode_request(req)) == req


@given(u32, st.integers(0, 255), st.binary(max_size=255), st.binary(max_size=4096), st.integers(-(2**31), 2**31 - 1))
def test_response_round_trip(request_id, status, sense, data, resid):
    resp = Response(request_id, status, sense, data, resid)
    assert decode_response(encode_response(resp)) == resp


@given(u32, st.integers(0, 65535), st.text(max_size=200).map(lambda t: t.replace("\n", " ")))
def test_error_round_trip(request_id, code, message):
    reply = ErrorReply(request_id, code, message)
    assert decode_response(encode_error(reply)) == reply


@given(st.binary(max_size=64))
def test_garbage_is_a_frame_error_never_a_crash(junk):
    try:
        stream.decode_frame(junk)
    except FrameError:
        pass


def test_malformed_frames_are_named():
    good = encode_request(Request(1, "changer", b"\x00" * 6))
    with pytest.raises(FrameError, match="bad magic") as bad:
        decode_request(b"XXXX" + good[4:])
    assert bad.value.fatal
    with pytest.raises(FrameError, match="version 9 is not supported") as version:
        decode_request(good[:4] + b"\x09" + good[5:])
    assert version.value.code == stream.BAD_VERSION and not version.value.fatal
    with pytest.raises(FrameError, match="header says"):
        decode_request(good[:-1])
    too_big = good[:12] + struct.pack(">I", stream.MAX_BODY + 1)
    with pytest.raises(FrameError, match="exceeds") as large:
        stream.decode_header(too_big)
    assert large.value.fatal
    no_cdb = stream.HEADER.pack(stream.MAGIC, 1, 1, 0, 5, 12 + 1) + stream.REQUEST_FIXED.pack(1, 0, 0, 0, 0) + b"a"
    with pytest.raises(FrameError, match="empty CDB"):
        decode_request(no_cdb)


def test_encoder_refuses_what_the_decoder_would_refuse():
    with pytest.raises(ValueError, match="device name"):
        encode_request(Request(1, "drive 0", WRITE6))
    with pytest.raises(ValueError, match="CDB of 0 bytes"):
        encode_request(Request(1, "drive0", b""))


# ---------------------------------------------------------------------------------------------------------------
# URLs


def test_urls_name_the_device():
    assert parse_stream_url("stream+socket://127.0.0.1:7101/changer") == stream.StreamAddress(
        "socket://127.0.0.1:7101", "changer")
    assert parse_stream_url("stream+socket://h:1#drive1").device == "drive1"
    assert parse_stream_url("stream+serial:///dev/ttyUSB0?baudrate=115200#drive0") == stream.StreamAddress(
        "/dev/ttyUSB0", "drive0", 115200)
    with pytest.raises(DeviceNotFound, match="no device named; give it as the path"):
        parse_stream_url("stream+socket://127.0.0.1:7101")
    with pytest.raises(DeviceNotFound, match=r"as a fragment \(#changer\)"):
        parse_stream_url("stream+serial:///dev/ttyUSB0")


# ---------------------------------------------------------------------------------------------------------------
# Over real connections


class EchoLibrary:
    """A frame server for tests: INQUIRY-like answers; `changer` and `drive0` exist."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, int]] = []
        self.delay = 0.0

    def handle(self, req: Request) -> Response | ErrorReply:
        if req.device not in ("changer", "drive0"):
            return ErrorReply(req.request_id, stream.UNKNOWN_DEVICE, f"no device {req.device!r} in this library")
        if req.cdb[0] == 0xFF:
            raise RuntimeError("handler bug")
        time.sleep(self.delay)
        self.seen.append((req.device, bytes(req.cdb), len(req.data_out)))
        if req.cdb[0] == 0x03:  # REQUEST SENSE-ish: answer CHECK CONDITION with sense
            return Response(req.request_id, 0x02, bytes([0x70, 0, 6, 0, 0, 0, 0, 10] + [0] * 4 + [0x28, 0, 0, 0, 0, 0]))
        data = (req.device.encode() * 1000)[: req.data_in_len]
        return Response(req.request_id, 0, b"", data, req.data_in_len - len(data))


@pytest.fixture
def server():
    lib = EchoLibrary()
    listener = socket.create_server(("127.0.0.1", 0))
    stop = False

    def accept() -> None:
        while not stop:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_connection, args=(conn, lib.handle), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield lib, listener.getsockname()[1]
    stop = True
    listener.close()


def test_commands_travel_over_tcp(server):
    lib, port = server
    with open_transport(f"stream+socket://127.0.0.1:{port}/drive0") as drive:
        result = drive.execute(WRITE6, b"\x55" * 262144)
        assert result.status == 0 and result.resid == 0
        read = drive.execute(bytes([0x08, 0, 0, 0, 0x10, 0]), data_in_len=20)
        assert bytes(read.data) == b"drive0drive0drive0dr"
        check = drive.execute(bytes([0x03, 0, 0, 0, 18, 0]))
        assert check.status == 0x02 and check.sense[12] == 0x28
    assert lib.seen[0] == ("drive0", WRITE6, 262144)


def test_unknown_device_is_named(server):
    _, port = server
    with StreamTransport(f"stream+socket://127.0.0.1:{port}/drive7") as drive:
        with pytest.raises(DeviceNotFound, match=r"drive7.*no device 'drive7' in this library"):
            drive.execute(bytes(6))


def test_server_failure_is_reported_and_the_connection_survives(server):
    _, port = server
    with StreamTransport(f"stream+socket://127.0.0.1:{port}/changer") as changer:
        with pytest.raises(TransportError, match="server failure.*RuntimeError: handler bug"):
            changer.execute(bytes([0xFF, 0, 0, 0, 0, 0]))
        assert changer.execute(bytes(6)).status == 0


def test_refused_connection_says_what_to_start():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    url = f"stream+socket://127.0.0.1:{port}/changer"
    with pytest.raises(TransportError, match=re.escape(f"{url}: connection refused at 127.0.0.1:{port}; start `tapeline-vtl serve DIR --listen 127.0.0.1:{port}`")):
        StreamTransport(url)


def test_timeout_names_the_url_and_the_next_command_reconnects(server):
    lib, port = server
    url = f"stream+socket://127.0.0.1:{port}/drive0"
    with StreamTransport(url) as drive:
        lib.delay = 1.0
        started = time.monotonic()
        with pytest.raises(TransportError, match=re.escape(f"{url}: no answer within 0.2 s")):
            drive.execute(bytes(6), timeout=0.2)
        assert time.monotonic() - started < 0.9
        lib.delay = 0.0
        assert drive.execute(bytes(6), data_in_len=6).data == b"drive0"


def test_server_answers_bad_magic_and_closes():
    a, b = socket.socketpair()
    threading.Thread(target=serve_connection, args=(b, lambda r: Response(r.request_id, 0)), daemon=True).start()
    a.sendall(b"GET / HTTP/1.1\r\n\r\n")
    reply = FrameReader(a).read_response()
    assert isinstance(reply, ErrorReply) and reply.code == stream.BAD_MAGIC
    a.settimeout(2)
    try:  # closed, since the stream cannot be resynchronised (a reset: the rest of the junk was never read)
        assert a.recv(1) == b""
    except ConnectionResetError:
        pass
    a.close()


def test_server_answers_bad_version_and_carries_on():
    a, b = socket.socketpair()
    threading.Thread(target=serve_connection, args=(b, lambda r: Response(r.request_id, 0)), daemon=True).start()
    good = encode_request(Request(1, "changer", bytes(6)))
    a.sendall(good[:4] + b"\x02" + good[5:])
    reader = FrameReader(a)
    reply = reader.read_response()
    assert isinstance(reply, ErrorReply) and reply.code == stream.BAD_VERSION and reply.request_id == 1
    a.sendall(encode_request(Request(2, "changer", bytes(6))))
    assert reader.read_response() == Response(2, 0)
    a.close()


def test_commands_travel_over_a_pty():
    master, slave = os.openpty()
    server_end = os.fdopen(master, "r+b", buffering=0)
    lib = EchoLibrary()
    threading.Thread(target=serve_connection, args=(server_end, lib.handle), daemon=True).start()
    url = f"stream+serial://{os.ttyname(slave)}#changer"
    try:
        with open_transport(url) as changer:
            result = changer.execute(bytes([0x12, 0, 0, 0, 56, 0]), data_in_len=56)
            assert bytes(result.data) == (b"changer" * 8)[:56]
            assert changer.execute(WRITE6, b"z" * 3000).status == 0
        assert lib.seen == [("changer", bytes([0x12, 0, 0, 0, 56, 0]), 0), ("changer", WRITE6, 3000)]
    finally:
        os.close(slave)
        server_end.close()


def test_missing_serial_node_is_named():
    with pytest.raises(DeviceNotFound, match=r"/dev/ttyNOPE does not exist"):
        StreamTransport("stream+serial:///dev/ttyNOPE#drive0")

