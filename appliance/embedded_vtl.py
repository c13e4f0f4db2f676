"""The virtual tape library that `tapeline up` runs beside the daemon (the "embedded defaults").

The library is a separate process, `tapeline-vtl serve`, exactly as `tapeline-vtl.service` runs it in production: the
appliance never imports the simulator (ARCHITECTURE.md, "Processes"), it reaches it through `stream+socket://` like
any other process would. The child dies with the daemon (PR_SET_PDEATHSIG), so a killed `tapeline up` leaves no
library server holding the directory lock.

A library that cannot start (port taken, directory held by another server) costs a warning, not the daemon: disk
protection does not need it.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("tapeline.vtl")

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tool() -> str:
    beside = Path(sys.executable).with_name("tapeline-vtl")
    return str(beside) if beside.exists() else (shutil.which("tapeline-vtl") or "tapeline-vtl")


class EmbeddedLibrary:
    def __init__(self, directory: Path, listen: str):
        self.directory = directory
        self.listen = listen
        self.process: subprocess.Popen | None = None

    @property
    def changer_url(self) -> str:
        return f"stream+socket://{self.listen}/changer"

    def start(self) -> bool:
        tool = _tool()
        if not (self.directory / "state.json").exists():
            made = subprocess.run([tool, "init", str(self.directory)], capture_output=True, text=True)
            if made.returncode != 0:
                log.warning("virtual tape library not created in %s: %s", self.directory, made.stderr.strip())
                return False
        self.process = subprocess.Popen([tool, "serve", str(self.directory), "--listen", self.listen],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, preexec_fn=_die_with_parent)
        time.sleep(0.3)  # a refused port or a held directory ends the child at once
        if self.process.poll() is not None:
            reason = (self.process.stderr.read() or "").strip().splitlines()
            log.warning("virtual tape library not started: %s", reason[-1] if reason else f"exit {self.process.returncode}")
            self.process = None
            return False
        log.info("virtual tape library %s: changer %s (drives: %s)", self.directory, self.changer_url,
                 self.changer_url.replace("/changer", "/drive0") + ", ...")
        return True

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
