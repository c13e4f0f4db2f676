"""The Monitoring area."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.screens.area import AreaScreen


class MonitoringScreen(AreaScreen):
    AREA = "Monitoring"

    def compose_body(self) -> ComposeResult:
        yield Static("Monitoring", classes="empty")
