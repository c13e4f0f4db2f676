"""`tapeline up` runs the virtual tape library beside the daemon, reachable as any other process would reach it."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from daemon_harness import Daemon

from appliance.embedded_vtl import EmbeddedLibrary
from drivers.scsi import spc
from drivers.transport import frames
from drivers.transport.stream import StreamTransport

MTX = str(Path(sys.executable).with_name("tapeline-mtx"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def up_with_library(tmp_path: Path) -> tuple[Daemon, int]:
    data, port = tmp_path / "data", free_port()
    config = tmp_path / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\ngroup = "tapeline-none"\n'
                      f'[vtl]\nlisten = "127.0.0.1:{port}"\n')
    return Daemon(data, config, ["--config", str(config), "up"]).start(), port


def test_up_serves_a_default_library_that_mtx_scripts_can_drive(tmp_path):
    d, port = up_with_library(tmp_path)
    try:
        status = subprocess.run([MTX, "-f", f"stream+socket://127.0.0.1:{port}/changer", "status"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0] == f"  Storage Changer stream+socket://127.0.0.1:{port}/changer:2 Drives, 28 Slots ( 4 Import/Export )"
        assert any("VolumeTag=CLN" in line for line in lines)  # a cleaning cartridge, as an operator expects
    finally:
        assert d.stop(signal.SIGINT) == 0
    assert refused(port)  # the library stops with the daemon
    assert (d.data / "vtl" / "state.json").exists()  # and its cartridges stay for the next start


def test_a_killed_daemon_takes_its_library_server_with_it(tmp_path):
    d, port = up_with_library(tmp_path)
    d.kill()
    deadline = time.monotonic() + 10
    while not refused(port):
        assert time.monotonic() < deadline, "the library server outlived a kill -9 of the daemon"
        time.sleep(0.1)


def test_a_flood_on_the_childs_stderr_does_not_block_the_library(tmp_path):
    """Each client refused for want of the token is a warning on the child's stderr: 3,000 of them (some 300 KB, far
    more than a pipe holds) are drained into the daemon's log while the library keeps answering."""
    d, port = up_with_library(tmp_path)
    try:
        for request_id in range(3000):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                frames.write_request(s, frames.Request(request_id, "changer", spc.TEST_UNIT_READY.encode()))
                assert frames.FrameReader(s).read_frame().code == frames.AUTH_FAILED
        status = subprocess.run([MTX, "-f", f"stream+socket://127.0.0.1:{port}/changer", "status"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
    finally:
        assert d.stop(signal.SIGINT) == 0
    logged = d.log.read_text()
    assert logged.count("tapeline-vtl: refused a client at 127.0.0.1:") == 3000
    assert "tapeline-vtl: stopped" in logged  # the child ended cleanly: its last line was not stuck in a full pipe


def test_up_is_ready_only_once_the_library_answers(tmp_path):
    library = EmbeddedLibrary(tmp_path / "vtl", f"127.0.0.1:{free_port()}")
    try:
        assert library.start()
        with StreamTransport(library.client_url) as changer:  # at once: no sleep, no retry
            assert changer.execute(spc.INQUIRY.encode(alloc=36), data_in_len=36).status == 0
    finally:
        library.stop()


def test_a_library_that_never_answers_is_one_clear_line_after_the_timeout(tmp_path, caplog):
    directory, listen = tmp_path / "vtl", f"127.0.0.1:{free_port()}"
    subprocess.run([Path(sys.executable).with_name("tapeline-vtl"), "init", directory], check=True,
                   capture_output=True)
    hung = tmp_path / "hung-tapeline-vtl"
    hung.write_text("#!/bin/sh\nexec sleep 60\n")  # a server that starts and never listens
    hung.chmod(0o755)
    library = EmbeddedLibrary(directory, listen, tool=str(hung), timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="tapeline.vtl"):
        assert not library.start()
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.startswith(f"virtual tape library not started: stream+socket://{listen}/changer did not answer "
                           f"within 0.5 s (last: stream+socket://{listen}/changer?token=")
    assert "connection refused" in line and "\n" not in line
    assert library.process is None  # the hung child was stopped


def test_a_library_that_cannot_listen_says_why(tmp_path, caplog):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with caplog.at_level(logging.WARNING, logger="tapeline.vtl"):
            assert not EmbeddedLibrary(tmp_path / "vtl", listen).start()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"virtual tape library not started: cannot listen on {listen} (Address already in use): pick another --listen"]
