"""The API client's connection: one kept alive for a command's many requests (a --wait's), and a daemon that ends the
connection before its answer is named as such, not as a daemon that is not running."""

from __future__ import annotations

import socket
import threading

import pytest

from appliance.api.client import Client
from appliance.errors import DaemonUnreachable

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\": 1}\r\n"


class Server:
    """A Unix socket that answers each request with ANSWER (or closes without answering), counting connections."""

    def __init__(self, path, answer: bool = True) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen()
        self.answer, self.connections = answer, 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
                while b"\r\n\r\n" in data:  # the client's requests here have no body
                    _, data = data.split(b"\r\n\r\n", 1)
                    if not self.answer:
                        return
                    conn.sendall(ANSWER)


def test_a_commands_requests_share_one_connection(tmp_path):
    server = Server(tmp_path / "api.sock")
    with Client(tmp_path / "api.sock") as client:
        assert client.status() == {"ok": 1}
        first = client._http.sock
        assert client.status() == {"ok": 1}
        assert client._http.sock is first
    assert server.connections == 1


def test_a_daemon_that_ends_the_connection_before_answering_is_named_so(tmp_path):
    Server(tmp_path / "api.sock", answer=False)
    with Client(tmp_path / "api.sock") as client, pytest.raises(DaemonUnreachable) as caught:
        client.status()
    assert "closed the connection before answering" in caught.value.message
    assert "journalctl -u tapeline" in caught.value.fix
