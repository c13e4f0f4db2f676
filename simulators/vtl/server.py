"""`tapeline-vtl serve`: the library's SCSI target on a TCP port, in the `stream` transport's frame protocol.

Invariants:
- The server owns the library directory (its lock names the service URL, so a second opener is told to use it).
- Only clients that prove the library's token (`<library>/token`, mode 0600, created on first serve if `init` did not)
  reach the library: the handshake comes before any request is read (`drivers.transport.frames`). A token file others
  can read stops the server from starting, with the fix.
- One thread per client connection; commands on the library still run one at a time (`Library.mutex`).
- A malformed frame gets an error frame (and the connection closes only when the stream cannot be resynchronised);
  an unknown device name gets UNKNOWN_DEVICE; a bad CDB gets CHECK CONDITION from the target. Nothing a client sends
  stops the service (`drivers.transport.frames.serve_connection`).
- SIGTERM and SIGINT stop it cleanly: the listening socket closes and the lock is released.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path

from drivers.transport import frames
from drivers.transport import token as tokens
from simulators.vtl import devices

log = logging.getLogger(__name__)


class Server:
    """A listening socket serving one library; `start()` runs the accept loop in a thread, `serve()` in this one."""

    def __init__(self, directory: str | Path, host: str = "127.0.0.1", port: int = 7101):
        self._sock = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"stream+socket://{self.host}:{self.port}/changer"
        try:
            self.credential = _credential(Path(directory))
            self.library = devices.acquire(directory, service_url=self.url)
        except BaseException:
            self._sock.close()
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()

    def handle(self, req: frames.Request) -> frames.Response | frames.ErrorReply:
        unit = self.library.target.unit(req.device)
        if unit is None:
            names = ", ".join(self.library.target.units)
            return frames.ErrorReply(req.request_id, frames.UNKNOWN_DEVICE,
                                     f"no device {req.device!r} in this library (it has {names})")
        result = unit.execute(req.cdb, req.data_out, req.data_in_len)
        return frames.Response(req.request_id, result.status, result.sense, result.data, result.resid)

    def _client(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            frames.serve_connection(conn, self.handle, self.credential)
        finally:
            with self._clients_lock:
                self._clients.discard(conn)
            conn.close()

    def serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                break  # the socket was closed by stop()
            with self._clients_lock:
                self._clients.add(conn)
            threading.Thread(target=self._client, args=(conn,), daemon=True, name="vtl-client").start()

    def start(self) -> Server:
        self._thread = threading.Thread(target=self.serve, daemon=True, name="vtl-accept")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._clients_lock:
            for conn in list(self._clients):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        devices.release(self.library)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _credential(directory: Path) -> frames.Credential:
    if not (directory / "state.json").exists():
        return frames.Credential(b"", "")  # not a library: acquire says so, with the fix
    path = tokens.ensure_token(directory)
    return frames.Credential(tokens.read_token(path), str(path.resolve()))


def serve_forever(directory: Path, host: str, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format="tapeline-vtl: %(message)s")
    try:
        server = Server(directory, host, port)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(f"cannot listen on {host}:{port} ({why}): pick another --listen") from None
    drives = len(server.library.state.drives)
    log.info("serving %s at %s (drives: %s; token %s)", directory, server.url,
             ", ".join(server.url.replace("/changer", f"/drive{i}") for i in range(drives)), server.credential.path)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve()
    log.info("stopped")
