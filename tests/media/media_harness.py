"""Helpers for the media tests (a module of its own, not conftest.py: `from conftest import` picks whichever
conftest came first on sys.path)."""

from __future__ import annotations

import threading
from pathlib import Path

from simulators.vtl.cli import main as vtl_main

CAPACITY = 64 * 1024 * 1024  # small cartridges: fast to write and erase


class Job:
    """What the engine hands a job body (JobContext): an id, parameters, a progress callback, a cancel Event."""

    def __init__(self, job_id: int = 1, **params):
        self.job_id = job_id
        self.params = params
        self.cancel = threading.Event()
        self.progressed: list[str] = []

    def progress(self, done: int, total: int | None, message: str) -> None:
        self.progressed.append(message)


def fault(directory: Path, *args: str) -> None:
    """Plant (or clear) a fault as an operator would: `tapeline-vtl fault DIR ...`."""
    assert vtl_main(["fault", str(directory), *args]) == 0
