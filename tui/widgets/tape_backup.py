"""The "send to tape" dialog: which pool, and a full, incremental or direct set, for a group's newest point or a
chosen one. Enter (or Ctrl+S) sends, Escape cancels; the dialog only chooses, the screen starts the job."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

KINDS = [  # the API's kind, how the dialog names it
    ("full", "Full: the whole point, on its own"),
    ("incremental", "Incremental: what changed since the group's last good tape set"),
    ("direct", "Direct: straight from the sources, no disk point in between"),
]


@dataclass
class TapeChoice:
    pool: str
    kind: str


class TapeBackupDialog(ModalScreen[TapeChoice | None]):
    DEFAULT_CSS = """
    TapeBackupDialog { align: center middle; }
    #tape-backup { width: 80; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    #tape-pools { height: auto; max-height: 8; margin-bottom: 1; }
    #tape-kind { width: 100%; margin-bottom: 1; }
    .tape-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "send", "Send to tape")]

    def __init__(self, group: str, point: str | None, pools: list[dict], suggested: str | None = None):
        super().__init__()
        self.group = group
        self.point = point
        self.pools = pools
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        what = f"recovery point {self.point}" if self.point else "its newest recovery point"
        with Vertical(id="tape-backup"):
            yield Label(f"Send group {self.group} to tape: {what}", id="tape-title")
            yield Label("Pool (Up/Down):")
            yield OptionList(*[Option(f"{p['name']} (library {p['library']})", id=p["name"]) for p in self.pools],
                             id="tape-pools")
            with RadioSet(id="tape-kind"):
                for i, (_kind, shown) in enumerate(KINDS):
                    yield RadioButton(shown, value=i == 0)
            yield Static("Tab moves between the pool and the kind; Enter or Ctrl+S sends, Escape cancels.",
                         classes="tape-hint")

    def on_mount(self) -> None:
        pools = self.query_one("#tape-pools", OptionList)
        names = [p["name"] for p in self.pools]
        pools.highlighted = names.index(self.suggested) if self.suggested in names else 0
        pools.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_send()

    def action_send(self) -> None:
        pools = self.query_one("#tape-pools", OptionList)
        kind = self.query_one("#tape-kind", RadioSet).pressed_index
        self.dismiss(TapeChoice(self.pools[pools.highlighted or 0]["name"], KINDS[max(kind, 0)][0]))


def send_to_tape(screen, group: dict | str, point: str | None = None) -> None:
    """From an area screen (`AreaScreen.call`): read the pools, ask in the dialog, start the tape backup job and
    say which. `group` is the group's name, or its record (whose tape policy's pool is offered first)."""
    name = group if isinstance(group, str) else group["name"]
    suggested = None if isinstance(group, str) else (group.get("tape") or {}).get("pool")
    daemon = screen.app.daemon

    def chosen(choice: TapeChoice | None) -> None:
        if choice is None:
            return
        screen.call(f"Tape backup of {name}", daemon.tape_backup, name, choice.pool, point, choice.kind,
                    done=lambda answer: started(choice, answer))

    def started(choice: TapeChoice, answer: dict) -> None:
        screen.notify(f"{choice.kind.capitalize()} tape backup of {name} to pool {choice.pool}: job {answer['job']} "
                      "(Monitoring, F1, shows it).", markup=False)
        screen.app.refresh_now()

    def asked(pools: list[dict]) -> None:
        if not pools:
            screen.notify("No pool yet: create one in Management (F5), its Pools tab, n; then send it again.",
                          severity="warning", markup=False)
            return
        screen.app.push_screen(TapeBackupDialog(name, point, pools, suggested), chosen)
    screen.call("Read the pools", daemon.pools, done=asked)
