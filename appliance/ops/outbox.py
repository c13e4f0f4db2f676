"""The outbox: notifications waiting to leave, one file each, kept until delivered (docs/notifications.md).

Invariants: a file is complete or absent (written to `tmp/`, fsynced, renamed into place); names sort in the order
the notifications were made (nanosecond time, then a counter); a file is removed only after its delivery succeeded,
so a daemon stopped or killed at any moment loses nothing, at worst sends one notification twice.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path


class Outbox:
    def __init__(self, root: Path):
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)  # alert texts name protected files
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def put(self, kind: str, data: bytes) -> str:
        """Store `data` for the `kind` channel ("mail", "webhook"); returns its name."""
        with self._lock:
            name = f"{time.time_ns():020d}-{next(self._counter):06d}.{kind}"
        tmp = self._tmp / name
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / name)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return name

    def names(self, kind: str) -> list[str]:
        return sorted(p.name for p in self.root.glob(f"*.{kind}"))

    def made(self, name: str) -> datetime:
        """When the notification `name` was put in: its name says it; a file put there by hand under another name
        (a copy to send again) by its modification time, so it never stops the outbox's status or its delivery."""
        stamp = name.split("-", 1)[0]
        if stamp.isascii() and stamp.isdigit():
            return datetime.fromtimestamp(int(stamp) / 1e9, timezone.utc)
        try:
            return datetime.fromtimestamp((self.root / name).stat().st_mtime, timezone.utc)
        except FileNotFoundError:  # delivered meanwhile
            return datetime.now(timezone.utc)

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)
