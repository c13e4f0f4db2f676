"""256 KiB WRITE commands over `stream+socket://` loopback to `tapeline-vtl serve`, beside a raw-socket peer.

Usage: .venv/bin/python bench/transport_stream.py [MiB]   (default 1024)

Starts a library (`tapeline-vtl init`) and its server in a subprocess, loads a cartridge into drive0, writes the
blocks through StreamTransport and reports MB/s beside the goal (400 MB/s) and beside a plain `sendall` of the same
bytes over loopback to a reader that discards them, measured in the same run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from drivers.transport.stream import StreamTransport

BLOCK = 256 * 1024
GOAL = 400.0
BIN = Path(sys.executable).parent


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"tapeline-vtl serve did not listen on 127.0.0.1:{port}")


def raw_peer(total: int) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def drain() -> None:
        conn, _ = server.accept()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while conn.recv_into(view):
            pass
        conn.close()

    reader = threading.Thread(target=drain)
    reader.start()
    block = bytes(BLOCK)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.perf_counter()
        for _ in range(total // BLOCK):
            sock.sendall(block)
        sock.shutdown(socket.SHUT_WR)
        reader.join()
        elapsed = time.perf_counter() - start
    server.close()
    return total / elapsed / 1e6


def main() -> None:
    total = int(sys.argv[1]) * 1024 * 1024 if len(sys.argv) > 1 else 1024 * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp, socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
        probe.close()
        library = Path(tmp) / "library"
        subprocess.run([BIN / "tapeline-vtl", "init", library], check=True, capture_output=True)
        server = subprocess.Popen([BIN / "tapeline-vtl", "serve", library, "--listen", f"127.0.0.1:{port}"])
        try:
            wait_for(port)
            subprocess.run([BIN / "tapeline-mtx", "-f", f"stream+socket://127.0.0.1:{port}/changer", "load", "1", "0"],
                           check=True, capture_output=True)
            block = bytes(range(256)) * (BLOCK // 256)
            write6 = bytes([0x0A, 0x00, *BLOCK.to_bytes(3, "big"), 0x00])  # one variable-length block
            with StreamTransport(f"stream+socket://127.0.0.1:{port}/drive0") as drive:
                for _ in range(5):  # the load leaves a UNIT ATTENTION (medium may have changed): clear it
                    if drive.execute(bytes(6)).status == 0:
                        break
                start = time.perf_counter()
                for _ in range(total // BLOCK):
                    result = drive.execute(write6, block)
                    if result.status != 0:
                        raise SystemExit(f"WRITE failed: status {result.status}, sense {bytes(result.sense).hex()}")
                elapsed = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait()
    stream = total / elapsed / 1e6
    raw = raw_peer(total)
    print(f"stream transport, 256 KiB WRITEs to tapeline-vtl serve: {stream:8.0f} MB/s  (goal {GOAL:.0f} MB/s: "
          f"{'met' if stream >= GOAL else 'NOT met'})")
    print(f"raw socket peer, sendall of the same bytes:               {raw:8.0f} MB/s  "
          f"(stream/raw = {stream / raw:.2f})")


if __name__ == "__main__":
    main()
