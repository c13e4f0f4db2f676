"""The virtual tape library that `tapeline up` runs beside the daemon (the "embedded defaults").

The library is a separate process, `tapeline-vtl serve`, exactly as `tapeline-vtl.service` runs it in production: the
appliance never imports the simulator (ARCHITECTURE.md, "Processes"), it reaches it through `stream+socket://` like
any other process would, proving the library's token (`<library>/token`, which `tapeline-vtl init` writes 0600). The
child dies with the daemon (PR_SET_PDEATHSIG), so a killed `tapeline up` leaves no library server holding the
directory lock.

Invariants:
- The child's stderr is read for as long as it runs, line by line, into the daemon's log (logger `tapeline.vtl`):
  a child that logs a lot (a flood of refused clients, each a warning) never blocks on a full pipe.
- `start` returns once the library answers an INQUIRY through the stream transport, with its token, not after a
  guess of how long a start takes; a child that exits first, or does not answer within `timeout`, costs one warning
  line naming the cause (its last line of stderr, or the timeout), and is stopped.
- A library that cannot start costs that warning, not the daemon: disk protection does not need it.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from drivers.errors import DeviceError
from drivers.scsi import spc
from drivers.scsi.status import GOOD
from drivers.transport.stream import StreamTransport
from drivers.transport.token import TOKEN_NAME

log = logging.getLogger("tapeline.vtl")

PR_SET_PDEATHSIG = 1
START_TIMEOUT = 20.0  # seconds for the library to answer; an init of a large library is the slow part, done before


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tool() -> str:
    beside = Path(sys.executable).with_name("tapeline-vtl")
    return str(beside) if beside.exists() else (shutil.which("tapeline-vtl") or "tapeline-vtl")


class EmbeddedLibrary:
    def __init__(self, directory: Path, listen: str, tool: str | None = None, timeout: float = START_TIMEOUT):
        self.directory = directory
        self.listen = listen
        self.tool = tool or _tool()
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self._last_lines: deque[str] = deque(maxlen=5)
        self._drain: threading.Thread | None = None

    @property
    def changer_url(self) -> str:
        return f"stream+socket://{self.listen}/changer"

    @property
    def client_url(self) -> str:
        """The changer URL with the library's token file, as the daemon's own clients use it."""
        return f"{self.changer_url}?token={self.directory.resolve() / TOKEN_NAME}"

    def drive_url(self, number: int) -> str:
        """Drive `number`'s URL with the library's token file, as the daemon's own clients use it."""
        return f"stream+socket://{self.listen}/drive{number}?token={self.directory.resolve() / TOKEN_NAME}"

    def start(self) -> bool:
        if not (self.directory / "state.json").exists():
            made = subprocess.run([self.tool, "init", str(self.directory)], capture_output=True, text=True)
            if made.returncode != 0:
                log.warning("virtual tape library not created in %s: %s", self.directory, made.stderr.strip())
                return False
        self.process = subprocess.Popen([self.tool, "serve", str(self.directory), "--listen", self.listen],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, errors="replace", preexec_fn=_die_with_parent)
        self._drain = threading.Thread(target=self._forward, args=(self.process,), daemon=True, name="vtl-stderr")
        self._drain.start()
        problem = self._wait_until_answering()
        if problem is not None:
            log.warning("virtual tape library not started: %s", problem)
            self.stop()
            return False
        log.info("virtual tape library %s: changer %s (drives: %s)", self.directory, self.changer_url,
                 self.changer_url.replace("/changer", "/drive0") + ", ...")
        return True

    def _forward(self, process: subprocess.Popen) -> None:
        """The child's stderr, line by line, into the daemon's log, until the child closes it."""
        assert process.stderr is not None
        for line in process.stderr:
            line = line.rstrip()
            if line:
                self._last_lines.append(line)
                log.info("%s", line)

    def _wait_until_answering(self) -> str | None:
        """None once the library answers INQUIRY; otherwise why it does not (one line)."""
        deadline = time.monotonic() + self.timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if self._drain is not None:
                    self._drain.join(timeout=5)  # the child's last words explain its exit
                said = self._last_lines[-1] if self._last_lines else f"exit status {self.process.returncode}"
                return said.removeprefix("tapeline-vtl: ").removeprefix("tapeline-vtl serve: ")
            try:
                with StreamTransport(self.client_url) as changer:
                    answer = changer.execute(spc.INQUIRY.encode(alloc=36), data_in_len=36, timeout=5)
                if answer.status == GOOD:
                    return None
                last_error = f"INQUIRY ended with SCSI status {answer.status:#04x}"
            except DeviceError as exc:
                last_error = str(exc)
            time.sleep(0.05)
        return (f"{self.changer_url} did not answer within {self.timeout:g} s (last: {last_error}); see "
                f"`tapeline-vtl serve {self.directory} --listen {self.listen}` run by hand")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._drain is not None:
            self._drain.join(timeout=5)
        self.process = None
