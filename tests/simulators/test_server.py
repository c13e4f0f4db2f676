"""`tapeline-vtl serve` over stream+socket: commands, several clients, malformed frames that must not stop it, and only
clients that prove the library's token."""

from __future__ import annotations

import re
import socket
import stat
import struct
import threading

import pytest

from drivers.errors import DeviceNotFound, TransportError
from drivers.scsi import smc, spc, ssc
from drivers.transport import frames as stream
from drivers.transport import token as tokens
from drivers.transport.stream import StreamTransport
from simulators.vtl.server import Server
from tests.simulators.conftest import DRIVE0, SLOT0, code


@pytest.fixture
def server(library):
    with Server(library, "127.0.0.1", 0) as srv:
        yield srv


def url(server, device: str) -> str:
    return f"stream+socket://127.0.0.1:{server.port}/{device}"


def test_full_cycle_over_the_socket(server):
    changer, drive = StreamTransport(url(server, "changer")), StreamTransport(url(server, "drive0"))
    try:
        assert code(changer.execute(smc.MOVE_MEDIUM.encode(source=SLOT0, destination=DRIVE0))) == "GOOD"
        assert code(drive.execute(spc.TEST_UNIT_READY.encode())) == "6/28/00"
        block = bytes(range(256)) * 1024
        assert code(drive.execute(ssc.WRITE_6.encode(length=len(block)), block)) == "GOOD"
        drive.execute(ssc.REWIND.encode())
        r = drive.execute(ssc.READ_6.encode(length=len(block) + 100), b"", len(block) + 100)
        assert (code(r), bytes(r.data) == block, r.resid) == ("0/00/00", True, 100)  # ILI, 100 short
        r = changer.execute(smc.READ_ELEMENT_STATUS.encode(voltag=1, element_type=4, start=DRIVE0, count=2,
                                                           alloc=200), b"", 200)
        assert smc.decode_element_status(r.data).elements[0].primary_tag == "A00000L8"
    finally:
        changer.close()
        drive.close()


def test_unknown_device_is_named(server):
    t = StreamTransport(url(server, "drive9"))
    with pytest.raises(DeviceNotFound, match="no device 'drive9'"):
        t.execute(spc.TEST_UNIT_READY.encode())
    t.close()


def greet(s: socket.socket) -> stream.FrameReader:
    """The client's half of the handshake, by hand, with the library's own token."""
    reader = stream.FrameReader(s)
    s.sendall(stream.encode_hello())
    challenge = reader.read_frame()
    token = tokens.read_token(challenge.token_path)
    s.sendall(stream.encode_proof(stream.Proof(tokens.proof(token, challenge.nonce))))
    assert isinstance(reader.read_frame(), stream.Welcome)
    return reader


def test_malformed_frames_get_error_frames_and_the_service_lives_on(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        reader = greet(s)
        # A request whose device name and CDB run past its body: MALFORMED, the connection stays usable.
        body = stream.REQUEST_FIXED.pack(200, 6, 0, 0, 1000) + b"changer"
        s.sendall(stream.HEADER.pack(stream.MAGIC, stream.VERSION, stream.KIND_REQUEST, 0, 7, len(body)) + body)
        reply = reader.read_frame(fresh=True)
        assert isinstance(reply, stream.ErrorReply) and reply.code == stream.MALFORMED and reply.request_id == 7
        # An empty CDB and a CDB with a bad field: answered by the target, not a crash.
        stream.write_request(s, stream.Request(8, "changer", bytes([0xB8, 0x1F]), b"", 64))
        reply = reader.read_frame(fresh=True)
        assert isinstance(reply, stream.Response) and reply.status == 2
        # Garbage: BAD_MAGIC, then the server closes this connection.
        s.sendall(b"GET / HTTP/1.0\r\n\r\n"[:16])
        reply = reader.read_frame(fresh=True)
        assert isinstance(reply, stream.ErrorReply) and reply.code == stream.BAD_MAGIC
        assert s.recv(1) == b""  # closed: the stream cannot be resynchronised
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:  # an oversized frame
        reader = greet(s)
        s.sendall(struct.pack(">4sBBHII", stream.MAGIC, 2, 1, 0, 9, stream.MAX_BODY + 1))
        reply = reader.read_frame(fresh=True)
        assert reply.code == stream.TOO_LARGE
    t = StreamTransport(url(server, "changer"))
    assert code(t.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
    t.close()


def test_several_clients_at_once(server):
    changer = StreamTransport(url(server, "changer"))
    for i in range(2):
        changer.execute(smc.MOVE_MEDIUM.encode(source=SLOT0 + i, destination=DRIVE0 + i))
    changer.close()
    errors: list[str] = []

    def writer(n: int) -> None:
        t = StreamTransport(url(server, f"drive{n}"))
        t.execute(spc.TEST_UNIT_READY.encode())
        for i in range(200):
            block = bytes([n, i % 256]) * 4096
            r = t.execute(ssc.WRITE_6.encode(length=len(block)), block)
            if r.status:
                errors.append(f"drive{n} block {i}: {code(r)}")
        t.execute(ssc.REWIND.encode())
        for i in range(200):
            r = t.execute(ssc.READ_6.encode(length=8192), b"", 8192)
            if bytes(r.data) != bytes([n, i % 256]) * 4096:
                errors.append(f"drive{n} block {i} read back wrong")
        t.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_a_stopped_service_leaves_the_drive_where_it_was(library):
    with Server(library, "127.0.0.1", 0) as srv:  # leaving the block is what SIGTERM does: a clean close
        changer, drive = StreamTransport(url(srv, "changer")), StreamTransport(url(srv, "drive0"))
        try:
            assert code(changer.execute(smc.MOVE_MEDIUM.encode(source=SLOT0, destination=DRIVE0))) == "GOOD"
            assert code(drive.execute(spc.TEST_UNIT_READY.encode())) == "6/28/00"
            for _ in range(3):
                drive.execute(ssc.WRITE_6.encode(length=3), b"abc")
            assert code(drive.execute(ssc.WRITE_FILEMARKS_6.encode(count=1))) == "GOOD"
        finally:
            changer.close()
            drive.close()
    with Server(library, "127.0.0.1", 0) as srv:  # the next start: no power-on attention, same position
        drive = StreamTransport(url(srv, "drive0"))
        try:
            assert code(drive.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
            r = drive.execute(ssc.READ_POSITION.encode(service_action=ssc.READ_POSITION_LONG), b"", 32)
            at = ssc.Position.decode(r.data, ssc.READ_POSITION_LONG)
            assert (at.block, at.file) == (4, 1)
        finally:
            drive.close()


# ---- the library's token (issue 6: any local user could load, write and erase cartridges through the port) -------


def test_init_writes_a_token_only_its_user_can_read_and_serving_uses_it(server, library):
    token = library / "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert server.credential.path == str(token.resolve())
    assert server.credential.token == tokens.read_token(token)


def test_serving_a_library_made_before_tokens_creates_one(library):
    (library / "token").unlink()
    with Server(library, "127.0.0.1", 0) as srv:
        assert stat.S_IMODE((library / "token").stat().st_mode) == 0o600
        with StreamTransport(url(srv, "changer")) as changer:  # its user needs nothing more
            assert code(changer.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"


def test_a_client_without_the_token_moves_no_cartridge(server, library):
    before = (library / "state.json").read_bytes()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:  # straight to MOVE MEDIUM
        reader = stream.FrameReader(s)
        stream.write_request(s, stream.Request(1, "changer", smc.MOVE_MEDIUM.encode(source=SLOT0, destination=DRIVE0)))
        reply = reader.read_frame(fresh=True)
        assert isinstance(reply, stream.ErrorReply) and reply.code == stream.AUTH_FAILED
        assert s.recv(1) == b""
    assert (library / "state.json").read_bytes() == before


def test_a_client_with_another_token_is_refused_and_with_the_library_token_works(server, library, tmp_path):
    other = tokens.create_token(tmp_path / "stolen-guess")
    refused = f"{url(server, 'changer')}?token={other}"
    with pytest.raises(TransportError, match=re.escape(f"{refused}: server refused the connection (authentication "
                                                       f"failed): wrong token: this library requires its token file "
                                                       f"({library.resolve() / 'token'})")):
        StreamTransport(refused)
    with StreamTransport(f"{url(server, 'changer')}?token={library / 'token'}") as changer:
        assert code(changer.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"


def test_a_token_others_can_read_stops_the_server_with_the_fix(library):
    tokens.create_token(library / "token").chmod(0o640)
    with pytest.raises(tokens.TokenError, match=re.escape(f"token file {library / 'token'} is readable by other "
                                                          f"users (mode 0640): run `chmod 600 {library / 'token'}`")):
        Server(library, "127.0.0.1", 0)
