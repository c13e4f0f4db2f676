"""The Recovery area (placeholder: the tui-recovery helper builds it on this structure)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.screens.area import AreaScreen


class RecoveryScreen(AreaScreen):
    AREA = "Recovery"

    def compose_body(self) -> ComposeResult:
        yield Static("Recovery: not built yet.", classes="empty")
