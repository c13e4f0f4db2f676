"""One daemon per data directory: an exclusive lock on `<data_dir>/tapeline.pid`, which holds the owner's PID.

Invariants: the lock is an flock on an open descriptor, so it dies with its process (a killed daemon leaves a file,
never a lock: the next start takes it over). A second daemon is refused before it opens the catalog or the store, in
one line naming the first one's PID and the fix.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from appliance.errors import Conflict

LOCK_NAME = "tapeline.pid"


class DataDirLock:
    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(f"another Tapeline daemon (PID {owner}) is running on the data directory "
                           f"{self.path.parent}", f"use that one, or stop it first (`systemctl stop tapeline`, or "
                           f"`kill {owner}`); a second daemon needs its own --data DIR") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the file stays: the PID of the last owner, harmless
            self._fd = None
