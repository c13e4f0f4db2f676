"""The confirmation every destructive action asks for: it names exactly what will be lost, and defaults to No."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class Confirm(ModalScreen[bool]):
    """`push_screen(Confirm(title, losses, action="Erase"), callback)`: the callback gets True only when the operator
    chose the action; Escape or No gives False. `losses` is the list of what the action destroys or overwrites."""

    BINDINGS = [Binding("escape", "answer(False)", "Keep everything"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, title: str, losses: list[str], action: str = "Confirm"):
        super().__init__()
        self.title_text = title
        self.losses = losses
        self.action_label = action

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.title_text, id="confirm-title")
            yield Label("This will be lost:" if self.losses else "Nothing is lost.", classes="confirm-lead")
            with VerticalScroll(id="confirm-losses"):
                for item in self.losses:
                    yield Static(f"• {item}", classes="confirm-loss", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("No, keep it", id="confirm-no", variant="primary")
                yield Button(f"{self.action_label} (y)", id="confirm-yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
