"""A simulated library for tests that reach it from other processes: `tapeline-vtl init` a directory, serve it with
`tapeline-vtl serve` on a free loopback port, and put its cartridges back where `init` placed them.

Invariants:
- `served_library` yields only once the service accepts connections, and stops it when the block ends, whatever
  happened inside (terminate, then kill after 10 s): no test leaves a server behind.
- `init_library` returns the layout `init` gave (barcode -> mtx slot number), read through the in-process
  `local://` changer before any service owns the directory; `restore_layout` moves cartridges by element address
  until the library matches it again.

A module of its own, not conftest.py: every tests/ folder has a conftest, and `from conftest import` picks whichever
came first on sys.path. tests/ is on sys.path because tests/conftest.py sits there (pytest's default import mode).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.changer import KIND_DRIVE, MediaChanger

BIN = Path(sys.executable).parent
START_TIMEOUT = 20.0  # seconds for `tapeline-vtl serve` to accept connections
STOP_TIMEOUT = 10.0  # seconds for it to exit on SIGTERM before it is killed


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def init_library(directory: Path) -> dict[str, int]:
    """`tapeline-vtl init DIRECTORY`; the layout it made: barcode -> mtx slot number (mail slots included)."""
    subprocess.run([BIN / "tapeline-vtl", "init", directory], check=True, capture_output=True)
    with MediaChanger(f"local://{directory}/changer") as c:
        inv = c.inventory()
    return {e.barcode: e.number for e in inv.slots + inv.mailslots if e.full}


@contextmanager
def served_library(directory: Path) -> Iterator[str]:
    """The library in `directory` behind `tapeline-vtl serve` on a free loopback port, as its base URL
    "stream+socket://127.0.0.1:PORT" (+ "/changer", "/drive0", ...); a test failure when it does not start."""
    port = free_port()
    # Its output goes to a file, not a pipe nobody reads while it runs: a full pipe would block the server.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([BIN / "tapeline-vtl", "serve", directory, "--listen", f"127.0.0.1:{port}"],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                server.wait()
                log.seek(0)
                pytest.fail(f"tapeline-vtl serve did not start: {log.read()!r}")
            time.sleep(0.05)
    try:
        yield f"stream+socket://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def restore_layout(changer: str, layout: dict[str, int]) -> None:
    """Every cartridge back in its slot of `layout`, drives empty, through a `MediaChanger` on `changer`."""
    with MediaChanger(changer) as c:
        inv = c.inventory()
        for _ in range(4 * len(layout)):
            wrong = [e for e in inv.slots + inv.mailslots + inv.drives
                     if e.full and (e.kind == KIND_DRIVE or e.number != layout[e.barcode])]
            if not wrong:
                return
            home = inv.slot(layout[wrong[0].barcode])
            if home.full:  # its slot is taken: park the occupant where no cartridge belongs
                spare = next(s for s in inv.slots + inv.mailslots if not s.full and s.number not in layout.values())
                inv = c.move(home.address, spare.address)
            else:
                inv = c.move(wrong[0].address, home.address)
        raise AssertionError(f"could not restore {changer} to its initial layout: {inv}")
