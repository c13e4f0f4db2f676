"""The restore dialog: where the files go (their original place, or under another directory), whether existing files
are replaced, and, before anything starts, the list of what will be written and what will be overwritten.

Invariants: a restore puts each path under the target by its full original path (`--to /` is the original place), as
`tapeline restore` does. The console runs on the appliance, beside the daemon that writes, so what exists at each
target is looked up here, on this machine's file system. Replacing anything asks once more in `Confirm`, naming each
file replaced. The dialog answers `{"to", "overwrite"}`, or None when the operator kept everything as it is.
"""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from appliance.text import size
from tui.widgets.confirm import Confirm

SHOWN = 12  # targets listed by name; the rest are counted


def target_of(to: str, path: str) -> str:
    return os.path.join(to, path.lstrip("/")) if to != "/" else path


def outcome(path: str, kind: str, to: str, overwrite: bool) -> tuple[str, bool]:
    """What restoring `path` into `to` does to its target: the line that says so, and whether something is replaced."""
    target = target_of(to, path)
    if not os.path.lexists(target):
        return f"{target}: written (nothing there now)", False
    if kind == "dir":
        how = "files in it replaced" if overwrite else "existing files in it kept, missing ones written"
        return f"{target}/ (exists): {how}", overwrite
    if not overwrite:
        return f"{target}: exists, kept as it is (not restored)", False
    try:
        now = os.lstat(target)
        what = f"{size(now.st_size)} now"
    except OSError:
        what = "exists"
    return f"{target}: OVERWRITTEN ({what})", True


class RestoreDialog(ModalScreen[dict | None]):
    """`push_screen(RestoreDialog(title, items, needs=...), callback)`. `items`: (path, kind) pairs to restore;
    `needs`: lines about what the restore needs first (the cartridges of a tape set and where they are)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+r", "restore", "Restore")]

    def __init__(self, title: str, items: list[tuple[str, str]], needs: list[str] = (), to: str = "/"):
        super().__init__()
        self.title_text = title
        self.items = items
        self.needs = list(needs)
        self.start_to = to

    def compose(self) -> ComposeResult:
        with Vertical(id="restore"):
            yield Label(self.title_text, id="restore-title")
            if self.needs:
                yield Label("It needs:", classes="restore-lead")
                for line in self.needs:
                    yield Static(f"• {line}", classes="restore-need", markup=False)
            with RadioSet(id="restore-where"):
                yield RadioButton("To the original place", value=self.start_to == "/", id="to-original")
                yield RadioButton("Elsewhere, under the directory below", value=self.start_to != "/",
                                  id="to-elsewhere")
            yield Input(self.start_to if self.start_to != "/" else "", placeholder="/absolute/directory",
                        id="restore-to", disabled=self.start_to == "/")
            yield Checkbox("Overwrite files that exist", id="restore-overwrite")
            yield Label("What will be written:", classes="restore-lead")
            with VerticalScroll(id="restore-plan"):
                yield Static(id="restore-lines", markup=False)
            with Horizontal(id="restore-buttons"):
                yield Button("Cancel", id="restore-cancel")
                yield Button("Restore (ctrl+r)", id="restore-go", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#restore-to" if self.start_to != "/" else "#restore-go").focus()
        self.show_plan()

    @property
    def to(self) -> str | None:
        if self.query_one("#to-original", RadioButton).value:
            return "/"
        text = self.query_one("#restore-to", Input).value.strip()
        return os.path.normpath(text) if text.startswith("/") else None

    @property
    def overwrite(self) -> bool:
        return self.query_one("#restore-overwrite", Checkbox).value

    def plan(self) -> tuple[list[str], list[str]]:
        """Every line of what happens, and the lines of what is replaced."""
        lines, lost = [], []
        for path, kind in self.items:
            line, replaced = outcome(path, kind, self.to, self.overwrite)
            lines.append(line)
            if replaced:
                lost.append(line)
        return lines, lost

    def show_plan(self) -> None:
        out = self.query_one("#restore-lines", Static)
        if self.to is None:
            out.update("Give the directory as an absolute path (it is created if missing).")
            return
        lines, _ = self.plan()
        more = len(lines) - SHOWN
        out.update("\n".join(lines[:SHOWN] + ([f"... and {more} more"] if more > 0 else [])))

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        elsewhere = event.pressed.id == "to-elsewhere"
        box = self.query_one("#restore-to", Input)
        box.disabled = not elsewhere
        if elsewhere:
            box.focus()
        self.show_plan()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.show_plan()

    def on_checkbox_changed(self, _event: Checkbox.Changed) -> None:
        self.show_plan()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_restore()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "restore-go":
            self.action_restore()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_restore(self) -> None:
        to = self.to
        if to is None:
            self.notify("Give the directory to restore into as an absolute path.", severity="warning")
            return
        answer = {"to": to, "overwrite": self.overwrite}
        _, lost = self.plan()
        if not lost:
            self.dismiss(answer)
            return
        self.app.push_screen(Confirm(f"Restore over {len(lost)} existing {'entry' if len(lost) == 1 else 'entries'}?",
                                     lost, action="Overwrite"),
                             lambda yes: self.dismiss(answer) if yes else None)
