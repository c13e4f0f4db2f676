"""The form that creates a media pool, and with it the vault its cartridges rotate to: what `tapeline pool create`,
`tapeline vault create` and `tapeline pool set --vault` do, so a new operator can go from a blank library to an
export through the mail slot without the command line.

Invariants: as the group form, it only collects; it dismisses with a `PoolPlan` and the Management screen makes the
calls, reopening the form with what was typed when the daemon refuses (a bad duration, a name taken). Blank fields
mean the daemon's default. A step that succeeded is not repeated when the form comes back (`PoolPlan.done`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static


@dataclass
class PoolPlan:
    name: str
    library: str
    retention: str = ""
    allocation: str = ""
    reuse_delay: str = ""
    verify: bool = True
    vault: str = ""
    contact: str = ""
    done: set[tuple[str, str]] = field(default_factory=set, repr=False)  # what the daemon made: ("vault", name)...


def create(daemon, plan: PoolPlan) -> str:
    """Make the calls (in a worker thread); what was done, for a notification."""
    notes = []
    if plan.vault and ("vault", plan.vault) not in plan.done:
        if plan.vault not in {v["name"] for v in daemon.vaults()}:
            daemon.create_vault(plan.vault, plan.contact)
            notes.append(f"vault {plan.vault} created")
        plan.done.add(("vault", plan.vault))
    if ("pool", plan.name) not in plan.done:
        daemon.create_pool(plan.name, plan.library, plan.retention or None, plan.allocation or None,
                           verify=plan.verify, reuse_delay=plan.reuse_delay or None)
        plan.done.add(("pool", plan.name))
    notes.append(f"pool {plan.name} created")
    if plan.vault:
        daemon.pool_rotation(plan.name, vault=plan.vault)
        notes.append(f"its sets rotate to vault {plan.vault}")
    return "; ".join(notes)


class PoolForm(ModalScreen[PoolPlan | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]
    AUTO_FOCUS = "#pool-name"

    def __init__(self, plan: PoolPlan, vaults: list[str]):
        super().__init__()
        self.plan = plan
        self.vaults = vaults

    def compose(self) -> ComposeResult:
        p = self.plan
        known = f"known: {', '.join(self.vaults)}" if self.vaults else "none yet: a new name creates it"
        with Vertical(id="pool-form", classes="form"):
            yield Label("A new media pool", id="form-title")
            with VerticalScroll():
                yield Label("Name")
                yield Input(p.name, placeholder="e.g. weekly", id="pool-name", compact=True)
                yield Label("Library")
                yield Input(p.library, id="pool-library", compact=True)
                yield Label("Keep written sets for (e.g. 30d, 12w, forever)")
                yield Input(p.retention, placeholder="default (forever)", id="pool-retention", compact=True)
                yield Label("Media sets: continue (append), always (a new set each job), or a calendar event")
                yield Input(p.allocation, placeholder="default (continue)", id="pool-allocation", compact=True)
                yield Label("Expired cartridges return to scratch after")
                yield Input(p.reuse_delay, placeholder="default (media.reuse_delay in the configuration)",
                            id="pool-reuse-delay", compact=True)
                yield Checkbox("Read every set back after writing it (verify)", p.verify, id="pool-verify",
                               compact=True)
                yield Label(f"Offsite vault its sets rotate to (blank: they stay on site; {known})")
                yield Input(p.vault, placeholder="e.g. ironvault", id="pool-vault", compact=True)
                yield Label("The vault's contact (a new vault only: who to call, its address)")
                yield Input(p.contact, placeholder="e.g. Iron Vault Ltd, +44 20 7946 0000", id="pool-contact",
                            compact=True)
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Cancel (Esc)", id="cancel")
                yield Button("Save (Ctrl+S)", id="save", variant="primary")
        yield Footer()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        values = {i.id.removeprefix("pool-").replace("-", "_"): i.value.strip() for i in self.query(Input)}
        error = self.query_one("#form-error", Static)
        for key, what in (("name", "Give the pool a name (letters, digits, - and _)"),
                          ("library", "Name the library whose cartridges the pool uses")):
            if not values[key]:
                error.update(what)
                self.query_one(f"#pool-{key}").focus()
                return
        self.dismiss(PoolPlan(verify=self.query_one("#pool-verify", Checkbox).value, done=self.plan.done, **values))

    def action_cancel(self) -> None:
        self.dismiss(None)
