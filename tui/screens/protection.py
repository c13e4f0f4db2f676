"""The Protection area."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.screens.area import AreaScreen


class ProtectionScreen(AreaScreen):
    AREA = "Protection"

    def compose_body(self) -> ComposeResult:
        yield Static("Protection", classes="empty")
