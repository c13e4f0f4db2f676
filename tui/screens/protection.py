"""Protection (F2): the groups, their sources, state and lag against their schedule; create and edit a group in a
form; pause, resume; sync or make a recovery point now.

The groups' settings come from `/v1/groups` (read when the screen shows, after every change, and when the poll sees a
group appear or go); their state (last sync, newest point, running job) from the poll's `/v1/status`. A group's lag
is how much longer ago its newest recovery point is than its sync interval: 0 while it keeps to its schedule.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from appliance.text import format_duration
from tui.format import clock, duration, since
from tui.messages import JobsRefreshed, StatusRefreshed
from tui.screens.area import AreaScreen
from tui.tables import cursor_key, refill
from tui.widgets.group_form import GroupForm, GroupPlan
from tui.widgets.tape_backup import send_to_tape


def lag(group: dict, state: dict | None, now) -> float | None:
    """Seconds behind schedule (0: on time), None when the group has no recovery point yet."""
    age = since((state or {}).get("latest_point"), now)
    return None if age is None else max(0.0, age - group["sync_seconds"])


class ProtectionScreen(AreaScreen):
    AREA = "Protection"
    BINDINGS = [
        Binding("n", "new_group", "New group", tooltip="Protect directories: a new group"),
        Binding("e", "edit_group", "Edit", tooltip="Change the group under the cursor"),
        Binding("s", "sync_now", "Sync now", tooltip="Sync the group under the cursor now"),
        Binding("p", "point_now", "Point now", tooltip="Make a recovery point of the group now"),
        Binding("space", "toggle_pause", "Pause/Resume", tooltip="Pause the group's schedule, or resume it"),
        Binding("t", "tape_backup", "Tape backup", tooltip="Send the group's newest recovery point to tape now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[dict] = []
        self.states: dict[str, dict] = {}
        self.running: dict[str, dict] = {}  # group name -> its running or queued job

    def compose_body(self) -> ComposeResult:
        with Vertical(id="groups-pane", classes="pane"):
            yield Label("Protection groups", classes="pane-title")
            yield DataTable(id="groups", cursor_type="row", zebra_stripes=True)
            yield Static("No groups yet: press n to protect a directory.", id="groups-empty", classes="empty")
        with Vertical(id="group-pane", classes="pane"):
            yield Label("Group", classes="pane-title", id="group-title")
            yield Static(id="group-detail")

    def on_mount(self) -> None:
        self.query_one("#groups", DataTable).add_columns("Group", "State", "Sources", "Sync every", "Last sync",
                                                         "Newest point", "Lag", "Points", "Tape")
        self.query_one("#groups").display = False
        self.query_one("#groups-empty").display = False

    def catch_up(self) -> None:
        latest = self.app.latest
        if latest["status"] is not None:
            self._take_status(latest["status"])
        if latest["jobs"] is not None:
            self._take_jobs(latest["jobs"])
        self.load_groups()

    def load_groups(self) -> None:
        self.call("Read the groups", self.app.daemon.groups, done=self.show_groups)

    def on_status_refreshed(self, message: StatusRefreshed) -> None:
        # Against the last status, not self.groups: a status may come while the groups' read is still on its way.
        known = set(self.states)
        self._take_status(message.status)
        if set(self.states) != known:
            self.load_groups()
        else:
            self.show_groups(self.groups)

    def on_jobs_refreshed(self, message: JobsRefreshed) -> None:
        self._take_jobs(message.jobs)

    def _take_status(self, status: dict) -> None:
        self.states = {g["name"]: g for g in status["groups"]}

    def _take_jobs(self, jobs: list[dict]) -> None:
        self.running = {}
        for j in sorted(jobs, key=lambda j: (j["state"] == "running", j["id"])):  # a running job wins
            if j["state"] in ("running", "queued") and j.get("group_name"):
                self.running[j["group_name"]] = j

    # -- drawing ----------------------------------------------------------------------------------------------------

    def show_groups(self, groups: list[dict]) -> None:
        self.groups = sorted(groups, key=lambda g: g["name"])
        table = self.query_one("#groups", DataTable)
        now = self.app.now()
        rows = []
        for g in self.groups:
            st = self.states.get(g["name"], {})
            rows.append((g["name"], [g["name"], self._state(g, st), self._sources(g),
                                     format_duration(g["sync_seconds"]), self._last_sync(st, now),
                                     clock(st.get("latest_point"), now),
                                     self._lag(g, st, now), str(st.get("points", "-")),
                                     (g.get("tape") or {}).get("pool") or "-"]))
        refill(table, rows)
        self.query_one("#groups-empty").display = not groups
        table.display = bool(groups)
        self.query_one("#group-pane").display = bool(groups)
        self._show_detail()

    def _state(self, g: dict, st: dict) -> Text:
        job = self.running.get(g["name"])
        if job is not None:
            return Text(f"{job['kind']} {job['state']}", "bold cyan")
        if g["paused"]:
            return Text("paused", "yellow")
        if st.get("damaged_points"):
            return Text(f"{st['damaged_points']} damaged", "bold red")
        last = st.get("last_sync")
        if last and last["state"] == "failed":
            return Text("failing", "bold red")
        return Text("protected", "green") if st.get("latest_point") else Text("never synced", "yellow")

    @staticmethod
    def _sources(g: dict) -> str:
        paths = [s["path"] for s in g["sources"]]
        return paths[0] + (f" (+{len(paths) - 1})" if len(paths) > 1 else "") if paths else "-"

    @staticmethod
    def _last_sync(st: dict, now) -> str:
        last = st.get("last_sync")
        if not last:
            return "never"
        return f"{clock(last['finished'], now)} {last['state']}" if last.get("finished") else last["state"]

    @staticmethod
    def _lag(g: dict, st: dict, now) -> Text:
        behind = lag(g, st, now)
        if behind is None:
            return Text("-")
        return Text("on time", "green") if behind < 1 else Text(duration(behind), "bold yellow")

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        g = self.current()
        detail = self.query_one("#group-detail", Static)
        if g is None:
            detail.update("")
            return
        self.query_one("#group-title", Label).update(f"Group {g['name']}")
        tape = g.get("tape")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("Sources", "\n".join(
            s["path"] + (f"  include {','.join(s['include'])}" if s["include"] else "")
            + (f"  exclude {','.join(s['exclude'])}" if s["exclude"] else "") for s in g["sources"]))
        grid.add_row("Schedule", f"sync every {format_duration(g['sync_seconds'])}; recovery points at "
                     f"{', '.join(g['point_times']) or 'no set times'}; kept {format_duration(g['keep_seconds'])}"
                     + ("; paused" if g["paused"] else ""))
        grid.add_row("Tape", (f"full sets {tape['full']}" + (f", incremental {tape['incremental']}"
                                                            if tape.get("incremental") else "")
                              + f", to pool {tape['pool']}") if tape else "no tape copies (e: set a pool)")
        detail.update(grid)

    def current(self) -> dict | None:
        name = cursor_key(self.query_one("#groups", DataTable))
        return next((g for g in self.groups if g["name"] == name), None)

    # -- actions ----------------------------------------------------------------------------------------------------

    def _picked(self) -> dict | None:
        g = self.current()
        if g is None:
            self.notify("No group yet: press n to protect a directory.", severity="warning")
        return g

    def action_new_group(self) -> None:
        self.app.push_screen(GroupForm(browse_from=self.app.browse_from), self._save)

    def action_edit_group(self) -> None:
        g = self._picked()
        if g is not None:
            self.call("Read the group", self.app.daemon.group, g["name"],
                      done=lambda full: self.app.push_screen(GroupForm(GroupPlan.of(full), self.app.browse_from),
                                                             self._save))

    def _save(self, plan: GroupPlan | None) -> None:
        if plan is not None:
            self._apply(plan)

    def _apply(self, plan: GroupPlan) -> None:
        """Create or change the group, then its tape policy; a failure reopens the form with what was typed."""
        def work(daemon):
            notes = []
            if plan.original is None:
                daemon.create_group(plan.name, plan.sources, plan.sync or None, plan.point_times(), plan.keep or None)
                notes.append(f"group {plan.name} created")
            else:
                before = [s["path"] for s in plan.original["sources"]]
                daemon.change_group(plan.name, plan.sync or None, plan.point_times(), plan.keep or None,
                                    add_sources=[p for p in plan.sources if p not in before],
                                    remove_sources=[p for p in before if p not in plan.sources])
                notes.append(f"group {plan.name} changed")
            tape = (plan.original or {}).get("tape") or {}
            wanted = (plan.tape_pool, plan.tape_full, plan.tape_incremental or None)
            if plan.tape_pool and wanted != (tape.get("pool"), tape.get("full"), tape.get("incremental")):
                daemon.tape_policy(plan.name, *wanted)
                notes.append(f"tape copies to pool {plan.tape_pool}")
            if plan.original is None:  # a new replica is made at once, as an operator expects
                notes.append(f"first sync started (job {daemon.sync(plan.name)['job']})")
            return "; ".join(notes)

        self.call("Save the group", work, self.app.daemon, done=self._saved, failed=lambda: self._reopen(plan))

    def _reopen(self, plan: GroupPlan) -> None:
        self.app.push_screen(GroupForm(plan, browse_from=self.app.browse_from), self._save)

    def _saved(self, note: str) -> None:
        self.done_note(note)
        self.load_groups()
        self.app.refresh_now()

    def action_sync_now(self) -> None:
        g = self._picked()
        if g is not None:
            self.call("Sync", self.app.daemon.sync, g["name"], done=lambda a: self._started("sync", g, a))

    def action_point_now(self) -> None:
        g = self._picked()
        if g is not None:
            self.call("Recovery point", self.app.daemon.point, g["name"],
                      done=lambda a: self._started("recovery point", g, a))

    def _started(self, what: str, g: dict, answer: dict) -> None:
        joined = " (joined the one already queued)" if answer.get("coalesced") else ""
        self.notify(f"{what.capitalize()} of {g['name']}: job {answer['job']}{joined}.", markup=False)
        self.app.refresh_now()

    def action_tape_backup(self) -> None:
        g = self._picked()
        if g is not None:
            send_to_tape(self, g)

    def action_toggle_pause(self) -> None:
        g = self._picked()
        if g is None:
            return
        method, word = (self.app.daemon.resume, "resumed") if g["paused"] else (self.app.daemon.pause, "paused")
        self.call(word.capitalize(), method, g["name"], done=lambda _g: self._toggled(g, word))

    def _toggled(self, g: dict, word: str) -> None:
        self.notify(f"Group {g['name']} {word}.", markup=False)
        self.load_groups()
