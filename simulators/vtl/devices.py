"""A library opened in this process: its devices (the changer and drive logical units) and the per-process registry.

This module sits above every other piece of the simulator (library state, target, units): it builds the units over a
`Library` and hands them to it (`Library.target`), so nothing below needs to import it.

Invariants:
- One `Library` (and one `Target`) per library directory per process, shared by every transport and server that opens
  it (`acquire`), closed cleanly with its last user (`release`): every drive's logical state saved, `held` cleared,
  the images closed, the directory lock dropped. An interpreter that exits without closing still closes cleanly
  (atexit).
"""

from __future__ import annotations

import atexit
import logging
import threading
from pathlib import Path

from drivers.scsi.sense import LUN_NOT_SUPPORTED
from drivers.scsi.status import CHECK_CONDITION, ScsiResult
from simulators.vtl.changer_lu import ChangerUnit
from simulators.vtl.drive_lu import DriveUnit
from simulators.vtl.library import Library
from simulators.vtl.target import LogicalUnit


class Target:
    """All logical units of one library, by name: `changer`, `drive0`, `drive1`, ..."""

    def __init__(self, library: Library):
        self.library = library
        self.drives = [DriveUnit(library, i) for i in range(len(library.state.drives))]
        self.changer = ChangerUnit(library, self.drives)
        self.units: dict[str, LogicalUnit] = {"changer": self.changer}
        self.units.update((d.name, d) for d in self.drives)

    def unit(self, name: str) -> LogicalUnit | None:
        return self.units.get(name)

    def execute(self, name: str, cdb: bytes, data_out: bytes | memoryview = b"", data_in_len: int = 0) -> ScsiResult:
        unit = self.units.get(name)
        if unit is None:
            return ScsiResult(CHECK_CONDITION, b"", LUN_NOT_SUPPORTED.sense().encode(), data_in_len)
        return unit.execute(cdb, data_out, data_in_len)

    def store(self, state) -> None:
        """Copy every drive's logical state into `state` (inside `Library.mutate`), for a clean close."""
        for drive in self.drives:
            drive.store(state)

    def close(self) -> None:
        for unit in self.units.values():
            unit.close()


_registry: dict[Path, Library] = {}
_registry_lock = threading.Lock()


def acquire(directory: str | Path, service_url: str | None = None) -> Library:
    """The process-wide `Library` for `directory`, taking the directory lock on first use."""
    path = Path(directory).resolve()
    with _registry_lock:
        lib = _registry.get(path)
        if lib is None:
            lib = Library(path, service_url)
            lib.target = Target(lib)
            _registry[path] = lib
        lib.users += 1
        return lib


def release(lib: Library) -> None:
    with _registry_lock:
        lib.users -= 1
        if lib.users <= 0:
            _registry.pop(lib.directory, None)
            _close(lib)


def _close(lib: Library) -> None:
    """Clean close: save every drive's state, clear `held`, close the images, drop the lock."""
    try:
        if lib.target is not None:
            with lib.mutate() as state:
                lib.target.store(state)
                state.held = False
    finally:
        if lib.target is not None:
            lib.target.close()
        lib.close()


@atexit.register
def _close_all_at_exit() -> None:
    """A tool that exits without closing its transports still leaves its drives' state saved, as a clean close."""
    with _registry_lock:
        libraries = list(_registry.values())
        _registry.clear()
    for lib in libraries:
        try:
            _close(lib)
        except Exception:  # noqa: BLE001 - at exit, one library's failure must not keep the others unsaved
            logging.getLogger(__name__).exception("closing library %s at exit failed", lib.directory)
