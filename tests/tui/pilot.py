"""Driving the console in tests: run a scenario under Textual's Pilot, and wait for what a person would wait for.

A module of its own (not conftest.py): see tests/appliance/daemon_harness.py for why.
"""

from __future__ import annotations

import asyncio
import time

from textual.widgets import DataTable

WAIT = 60.0  # seconds: generous, the machine is shared; a test waits for a state, never for a time


def run(scenario) -> None:
    asyncio.run(scenario())


async def until(pilot, condition, what: str, timeout: float = WAIT):
    """Let the app run until `condition()` is truthy; returns its value. Fails naming `what` was never seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"never saw {what}"
        await pilot.pause(0.05)


def rows(app, selector: str) -> list[list[str]]:
    """A table of the shown screen as plain text, row by row."""
    table = app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(widget) -> str:
    return str(widget.render())
