"""The stream transport: exact frame bytes, codec round trips, the token handshake, and real connections (TCP loopback,
socketpair, pty)."""

from __future__ import annotations

import os
import re
import socket
import struct
import stat
import threading
import time
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DeviceNotFound, TransportError
from drivers.transport import frames as stream
from drivers.transport import token as tokens
from drivers.transport.base import open_transport
from drivers.transport.frames import (
    Challenge,
    Credential,
    ErrorReply,
    FrameError,
    FrameReader,
    Proof,
    Request,
    Response,
    Welcome,
    decode_request,
    decode_response,
    encode_error,
    encode_proof,
    encode_request,
    encode_response,
    serve_connection,
)
from drivers.transport.stream import TOKEN_ENV, StreamAddress, StreamTransport, parse_stream_url

WRITE6 = bytes([0x0A, 0x00, 0x00, 0x00, 0x04, 0x00])


# ---------------------------------------------------------------------------------------------------------------
# Exact bytes


def test_request_frame_bytes():
    frame = encode_request(Request(7, "drive0", WRITE6, b"abcd", 0, 300_000))
    assert frame == bytes.fromhex(
        "544c5354"  # magic TLST
        "02" "01" "0000"  # version 2, kind request, reserved
        "00000007"  # request id
        "0000001c"  # body: 12 fixed + 6 name + 6 CDB + 4 data
        "06" "06" "0000" "00000000" "000493e0"  # name len, CDB len, reserved, data_in_len 0, timeout 300000 ms
    ) + b"drive0" + WRITE6 + b"abcd"


def test_response_frame_bytes():
    sense = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xC0, 0, 2])
    frame = encode_response(Response(9, 0x02, sense, b"xy", -3))
    assert frame == bytes.fromhex(
        "544c5354" "02" "02" "0000" "00000009" "0000001c"  # body: 8 fixed + 18 sense + 2 data
        "02" "12" "0000" "fffffffd"  # CHECK CONDITION, 18 sense bytes, reserved, resid -3
    ) + sense + b"xy"


def test_error_frame_bytes():
    frame = encode_error(ErrorReply(3, stream.UNKNOWN_DEVICE, "no drive7"))
    assert frame == bytes.fromhex("544c5354" "02" "03" "0000" "00000003" "0000000b" "0005") + b"no drive7"


def test_handshake_frame_bytes():
    nonce = bytes(range(32))
    assert stream.encode_hello() == bytes.fromhex("544c5354" "02" "04" "0000" "00000000" "00000000")
    assert stream.encode_challenge(Challenge(nonce, "/lib/token")) == bytes.fromhex(
        "544c5354" "02" "05" "0000" "00000000" "0000002a") + nonce + b"/lib/token"  # 32 nonce + 10 path
    assert encode_proof(Proof(b"p" * 32)) == bytes.fromhex(
        "544c5354" "02" "06" "0000" "00000000" "00000020") + b"p" * 32
    assert stream.encode_welcome() == bytes.fromhex("544c5354" "02" "07" "0000" "00000000" "00000000")
    challenge = Challenge(nonce, "/lib/token")
    assert stream.decode_frame(stream.encode_challenge(challenge)) == challenge


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
    no_cdb = stream.HEADER.pack(stream.MAGIC, 2, 1, 0, 5, 12 + 1) + stream.REQUEST_FIXED.pack(1, 0, 0, 0, 0) + b"a"
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
    assert parse_stream_url("stream+socket://127.0.0.1:7101/changer") == StreamAddress(
        "socket://127.0.0.1:7101", "changer")
    assert parse_stream_url("stream+socket://h:1#drive1").device == "drive1"
    assert parse_stream_url("stream+serial:///dev/ttyUSB0?baudrate=115200#drive0") == StreamAddress(
        "/dev/ttyUSB0", "drive0", 115200)


def test_urls_name_the_token_file_apart_from_what_pyserial_gets():
    assert parse_stream_url("stream+socket://h:7101/changer?token=/lib/token") == StreamAddress(
        "socket://h:7101", "changer", None, "/lib/token")
    assert parse_stream_url("stream+socket://h:7101/drive0?logging=debug&token=/t") == StreamAddress(
        "socket://h:7101?logging=debug", "drive0", None, "/t")
    assert parse_stream_url("stream+serial:///dev/ttyS0?baudrate=9600&token=/t#changer") == StreamAddress(
        "/dev/ttyS0", "changer", 9600, "/t")
    with pytest.raises(DeviceNotFound, match="token= names no file"):
        parse_stream_url("stream+socket://h:7101/changer?token=")
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
def credential(tmp_path) -> Credential:
    """The token of a served library, as `tapeline-vtl serve` holds it: <library>/token, 0600."""
    path = tokens.create_token(tmp_path / "token")
    return Credential(tokens.read_token(path), str(path))


def greet(conn: socket.socket, credential: Credential) -> FrameReader:
    """The client's half of the handshake, by hand: answer the challenge with the proof of the token."""
    reader = FrameReader(conn)
    conn.sendall(stream.encode_hello())
    challenge = reader.read_frame()
    assert isinstance(challenge, Challenge) and challenge.token_path == credential.path
    conn.sendall(encode_proof(Proof(tokens.proof(credential.token, challenge.nonce))))
    assert isinstance(reader.read_frame(), Welcome)
    return reader


@pytest.fixture
def server(credential):
    lib = EchoLibrary()
    listener = socket.create_server(("127.0.0.1", 0))
    stop = False

    def accept() -> None:
        while not stop:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_connection, args=(conn, lib.handle, credential), daemon=True).start()

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


def test_closing_a_drive_ends_its_connection_at_once(server, monkeypatch):
    """pyserial's socket:// close sleeps 0.3 s after closing: every tape command paid it once per device."""
    from serial.urlhandler import protocol_socket

    def no_pause(seconds):
        raise AssertionError(f"close paused {seconds} s")

    _, port = server
    drive = StreamTransport(f"stream+socket://127.0.0.1:{port}/drive0")
    assert drive.execute(bytes(6)).status == 0
    sock = stream.raw_socket(drive._port)
    monkeypatch.setattr(protocol_socket, "time", types.SimpleNamespace(sleep=no_pause))
    drive.close()
    assert sock.fileno() == -1  # closed
    with StreamTransport(f"stream+socket://127.0.0.1:{port}/drive0") as again:  # and the library takes the next
        assert again.execute(bytes(6)).status == 0


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
        # (had the 0.2 s timeout not fired, the answer would have come after the 1 s delay, and no error)
        with pytest.raises(TransportError, match=re.escape(f"{url}: no answer within 0.2 s")):
            drive.execute(bytes(6), timeout=0.2)
        lib.delay = 0.0
        assert drive.execute(bytes(6), data_in_len=6).data == b"drive0"


def test_server_answers_bad_magic_and_closes(credential):
    a, b = socket.socketpair()
    threading.Thread(target=serve_connection, args=(b, lambda r: Response(r.request_id, 0), credential),
                     daemon=True).start()
    reader = greet(a, credential)
    a.sendall(b"GET / HTTP/1.1\r\n\r\n")
    reply = reader.read_response()
    assert isinstance(reply, ErrorReply) and reply.code == stream.BAD_MAGIC
    a.settimeout(2)
    try:  # closed, since the stream cannot be resynchronised (a reset: the rest of the junk was never read)
        assert a.recv(1) == b""
    except ConnectionResetError:
        pass
    a.close()


def test_server_answers_bad_version_and_carries_on(credential):
    a, b = socket.socketpair()
    threading.Thread(target=serve_connection, args=(b, lambda r: Response(r.request_id, 0), credential),
                     daemon=True).start()
    reader = greet(a, credential)
    good = encode_request(Request(1, "changer", bytes(6)))
    a.sendall(good[:4] + b"\x01" + good[5:])
    reply = reader.read_response()
    assert isinstance(reply, ErrorReply) and reply.code == stream.BAD_VERSION and reply.request_id == 1
    a.sendall(encode_request(Request(2, "changer", bytes(6))))
    assert reader.read_response() == Response(2, 0)
    a.close()


def test_commands_travel_over_a_pty(credential):
    master, slave = os.openpty()
    server_end = os.fdopen(master, "r+b", buffering=0)
    lib = EchoLibrary()
    threading.Thread(target=serve_connection, args=(server_end, lib.handle, credential), daemon=True).start()
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



# ---------------------------------------------------------------------------------------------------------------
# The library's token (issue 6: any local user could load, write and erase cartridges through the port)


def test_a_client_that_skips_the_handshake_is_refused_before_any_command(server, credential):
    lib, port = server
    with socket.create_connection(("127.0.0.1", port)) as conn:
        reader = FrameReader(conn)
        conn.sendall(encode_request(Request(1, "drive0", WRITE6, b"\x55" * 1024)))
        reply = reader.read_frame()
        assert isinstance(reply, ErrorReply) and reply.code == stream.AUTH_FAILED
        assert reply.message.startswith("no proof of the token before the first command: this library requires its "
                                        f"token file ({credential.path})")
        conn.settimeout(2)
        assert conn.recv(1) == b""  # closed
    assert lib.seen == []


def test_a_wrong_token_is_refused_with_the_cause_and_the_fix(server, tmp_path):
    lib, port = server
    other = tokens.create_token(tmp_path / "other-token")
    url = f"stream+socket://127.0.0.1:{port}/drive0?token={other}"
    with pytest.raises(TransportError) as refused:
        StreamTransport(url)
    assert str(refused.value).startswith(f"{url}: server refused the connection (authentication failed): wrong token:")
    assert "give ?token=FILE or TAPELINE_VTL_TOKEN" in str(refused.value)
    assert lib.seen == []


def test_the_token_is_found_in_the_url_or_the_environment_when_the_server_names_none(tmp_path, monkeypatch):
    path = tokens.create_token(tmp_path / "token")
    nameless = Credential(tokens.read_token(path), "")  # e.g. a client on another machine: the hint is useless
    lib = EchoLibrary()
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        for _ in range(3):
            conn, _ = listener.accept()
            threading.Thread(target=serve_connection, args=(conn, lib.handle, nameless), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    url = f"stream+socket://127.0.0.1:{listener.getsockname()[1]}/changer"
    with pytest.raises(TransportError, match=re.escape(f"{url}: the library requires its token and names no file: "
                                                       f"give ?token=FILE or {TOKEN_ENV}=FILE")):
        StreamTransport(url)
    with StreamTransport(f"{url}?token={path}") as changer:
        assert changer.execute(bytes(6)).status == 0
    monkeypatch.setenv(TOKEN_ENV, str(path))
    with StreamTransport(url) as changer:
        assert changer.execute(bytes(6)).status == 0
    listener.close()


def test_token_files_are_0600_and_one_others_can_read_is_refused(tmp_path):
    path = tokens.create_token(tmp_path / "token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(rb"[0-9a-f]{64}", tokens.read_token(path))
    path.chmod(0o644)
    with pytest.raises(tokens.TokenError, match=re.escape(f"token file {path} is readable by other users (mode 0644): "
                                                          f"run `chmod 600 {path}`")):
        tokens.read_token(path)


def test_a_file_that_is_not_a_token_is_never_proved(tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    secret.chmod(0o600)
    with pytest.raises(tokens.TokenError, match="is not a Tapeline library token"):
        tokens.read_token(secret)
