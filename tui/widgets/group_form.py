"""The form that creates or edits a protection group: sources picked from a directory tree (or typed), the sync
interval, recovery-point times, retention and the tape policy.

Invariants: the form only collects; it dismisses with a `GroupPlan` and the Protection screen makes the calls, so
an API error (a bad duration, a path that does not exist) comes back with its fix while the form's values are kept:
the screen reopens the form with them. Blank fields mean "the daemon's default" on create and "unchanged" on edit,
except a blank tape pool on edit where the group has one: the API cannot remove a tape policy, so the form says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from appliance.text import format_duration


@dataclass
class GroupPlan:
    """What the operator asked for. `original` is the group as it was (None: a new group)."""
    name: str
    sources: list[str]
    sync: str = ""
    points: str = ""
    keep: str = ""
    tape_pool: str = ""
    tape_full: str = ""
    tape_incremental: str = ""
    original: dict | None = field(default=None, repr=False)

    @classmethod
    def of(cls, group: dict) -> "GroupPlan":
        tape = group.get("tape") or {}
        return cls(name=group["name"], sources=[s["path"] for s in group["sources"]],
                   sync=format_duration(group["sync_seconds"]), points=", ".join(group["point_times"]) or "none",
                   keep=format_duration(group["keep_seconds"]), tape_pool=tape.get("pool") or "",
                   tape_full=tape.get("full") or "", tape_incremental=tape.get("incremental") or "", original=group)

    def point_times(self) -> list[str] | None:
        text = self.points.strip()
        if not text:
            return None
        if text.lower() == "none":
            return []
        return [t.strip() for t in text.split(",") if t.strip()]


class GroupForm(ModalScreen[GroupPlan | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+l", "type_path", "Type a path", priority=True),  # as file dialogs have it
        Binding("delete", "remove_source", "Remove source", show=False),
    ]

    def __init__(self, plan: GroupPlan | None = None, browse_from: str | Path = "/"):
        super().__init__()
        self.plan = plan or GroupPlan(name="", sources=[])
        self.editing = plan is not None and plan.original is not None
        self.browse_from = Path(browse_from)
        # Focused as the form is composed, before it is drawn: keys typed as soon as it shows go there.
        self.AUTO_FOCUS = "#tree" if self.editing else "#name"

    def compose(self) -> ComposeResult:
        p = self.plan
        with Vertical(id="group-form"):
            yield Label(f"Edit group {p.name}" if self.editing else "Protect directories: a new group",
                        id="form-title")
            with Horizontal(id="form-columns"):
                with Vertical(id="form-sources"):
                    yield Label("Pick a directory (Enter), or type its path (Ctrl+L) and Add")
                    yield DirectoryTree(str(self.browse_from), id="tree")
                    with Horizontal(classes="form-row"):
                        yield Input(placeholder="/path/to/protect", id="path", compact=True)
                        yield Button("Add", id="add")
                    yield Label("Sources (Delete removes the highlighted one)")
                    yield OptionList(*[Option(s, id=s) for s in p.sources], id="sources")
                with VerticalScroll(id="form-fields"):
                    yield Label("Name")
                    yield Input(p.name, placeholder="e.g. finance", id="name", disabled=self.editing, compact=True)
                    yield Label("Sync every")
                    yield Input(p.sync, placeholder="default (15m)", id="sync", compact=True)
                    yield Label("Recovery points at (HH:MM, ... or none)")
                    yield Input(p.points, placeholder="default (08:00, 11:00, 14:00, 17:00, 20:00)", id="points", compact=True)
                    yield Label("Keep for")
                    yield Input(p.keep, placeholder="default (12d)", id="keep", compact=True)
                    yield Label("Tape pool (blank: no tape copies)")
                    yield Input(p.tape_pool, placeholder="e.g. weekly", id="tape_pool", compact=True)
                    yield Label("Full sets to tape (hourly, daily, weekly, monthly or [Mon..Fri] HH:MM)")
                    yield Input(p.tape_full, placeholder="e.g. Sun 22:00", id="tape_full", compact=True)
                    yield Label("Incremental sets to tape (blank: none)")
                    yield Input(p.tape_incremental, placeholder="e.g. Mon..Sat 22:00", id="tape_incremental", compact=True)
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Cancel (Esc)", id="cancel")
                yield Button("Save (Ctrl+S)", id="save", variant="primary")
        yield Footer()

    def action_type_path(self) -> None:
        self.query_one("#path", Input).focus()

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#path", Input).value = str(event.path)
        self._add(str(event.path))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "path":
            self._add(event.value)
        else:
            self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "add":
            self._add(self.query_one("#path", Input).value)
        elif event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def _add(self, text: str) -> None:
        path = os.path.abspath(os.path.expanduser(text.strip())) if text.strip() else ""
        error = self.query_one("#form-error", Static)
        if not path or not os.path.isdir(path):
            error.update(f"{text!r} is not a directory here: pick one in the tree or type its full path")
            return
        if path not in self.plan.sources:
            self.plan.sources.append(path)
            self.query_one("#sources", OptionList).add_option(Option(path, id=path))
        error.update("")

    def action_remove_source(self) -> None:
        sources = self.query_one("#sources", OptionList)
        if sources.has_focus and sources.highlighted is not None:
            path = sources.get_option_at_index(sources.highlighted).id
            sources.remove_option(path)
            self.plan.sources.remove(path)

    def action_save(self) -> None:
        values = {i.id: i.value.strip() for i in self.query(Input) if i.id != "path"}
        error = self.query_one("#form-error", Static)
        if not values["name"]:
            error.update("Give the group a name (letters, digits, - and _)")
            self.query_one("#name").focus()
            return
        if not self.plan.sources:
            error.update("Add at least one directory to protect: pick it in the tree and press Enter")
            self.query_one("#tree").focus()
            return
        had_pool = ((self.plan.original or {}).get("tape") or {}).get("pool")
        if had_pool and not values["tape_pool"]:
            # The API can set a tape policy but not remove one: a blank pool would be silently kept on edit.
            error.update(f"Tape copies of this group cannot be stopped here (the daemon has no way to remove a tape "
                         f"policy yet): put pool {had_pool} back to save the other changes")
            self.query_one("#tape_pool").focus()
            return
        if values["tape_pool"] and not values["tape_full"]:
            error.update("Say when full sets go to tape (e.g. Sun 22:00), or clear the tape pool")
            self.query_one("#tape_full").focus()
            return
        self.dismiss(GroupPlan(sources=list(self.plan.sources), original=self.plan.original, **values))

    def action_cancel(self) -> None:
        self.dismiss(None)
