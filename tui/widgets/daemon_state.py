"""The banner every area shows while the daemon cannot be reached: why, and the command that starts it."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static


class DaemonState(Static):
    """Hidden while the daemon answers; otherwise the client's error and its fix (e.g. `tapeline up --data DIR`)."""

    def show_lost(self, error: str, fix: str) -> None:
        self.update(f"[b]Daemon not running[/b]: {escape(error)}\n{escape(fix)}")
        self.display = True

    def show_found(self) -> None:
        self.display = False
