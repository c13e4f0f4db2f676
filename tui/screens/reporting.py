"""The Reporting area."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.screens.area import AreaScreen


class ReportingScreen(AreaScreen):
    AREA = "Reporting"

    def compose_body(self) -> ComposeResult:
        yield Static("Reporting", classes="empty")
