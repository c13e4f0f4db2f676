"""Recovery (F3): pick a group; its recovery points and tape sets day by day; browse the tree of any point; find a
file by name across the points; every version of a file; restore to the original place or elsewhere.

The data comes from the API as the CLI's `points`, `tape sets`, `ls`, `find` and `versions` read it; a restore is
`tapeline restore` (or `tape restore` for a tape set), after the restore dialog has listed what will be written and
overwritten. A tape set's dialog names the cartridges it needs (an incremental's and those of the sets it builds
on) and where each one is (`/v1/media/{barcode}`). Enter goes deeper in every table (day, point, directory, file);
Backspace goes up a directory.
"""

from __future__ import annotations

import os
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from appliance.text import plural, size
from tui.format import clock, parse_time
from tui.messages import JobsRefreshed, StatusRefreshed
from tui.screens.area import AreaScreen
from tui.tables import cursor_key, refill
from tui.widgets.restore import RestoreDialog
from tui.widgets.tape_backup import send_to_tape

KIND_MARK = {"dir": "▸ ", "symlink": "↪ ", "file": "  ", "other": "· "}


def mtime_text(ns: int, now: datetime) -> str:
    return clock(datetime.fromtimestamp(ns / 1e9).astimezone().isoformat(), now) if ns else "-"


def chain_of(tape: dict, sets: list[dict]) -> list[dict]:
    """The sets a restore of `tape` reads: an incremental and the sets it builds on, full first (as the restore
    reads them, and as the restore-needs report lists them)."""
    by_id = {s["id"]: s for s in sets}
    chain = [tape]
    while chain[-1]["kind"] == "incremental" and chain[-1].get("base_set") in by_id:
        chain.append(by_id[chain[-1]["base_set"]])
    return chain[::-1]


def cartridge_need(tape: dict, cart: dict) -> str:
    """One cartridge a restore reads: which set, where it is, and (the report's words) when it must come back first."""
    away = cart["location"] not in ("slot", "drive")  # as restore-needs counts it: a mail slot is not mountable
    return (f"{cart['barcode']} (tape set {tape['id']}, {tape['kind']}): {cart['where']}"
            + (f" of library {cart['library']}" if cart.get("library") and not away else "")
            + (": not in the library, recall or fetch it first" if away else ""))


def days_of(points: list[dict], sets: list[dict]) -> list[tuple[str, list[dict], list[dict]]]:
    """(day, points, tape sets), newest day first, in the local zone."""
    days: dict[str, tuple[list, list]] = {}
    for p in points:
        days.setdefault(parse_time(p["time"]).astimezone().strftime("%Y-%m-%d %a"), ([], []))[0].append(p)
    for s in sets:
        days.setdefault(parse_time(s["created"]).astimezone().strftime("%Y-%m-%d %a"), ([], []))[1].append(s)
    return [(day, *days[day]) for day in sorted(days, reverse=True)]


class RecoveryScreen(AreaScreen):
    AREA = "Recovery"
    BINDINGS = [
        Binding("r", "restore", "Restore", tooltip="Restore what is under the cursor to its original place"),
        Binding("e", "restore_elsewhere", "Restore to…", tooltip="Restore what is under the cursor into "
                "another directory"),
        Binding("v", "versions", "Versions", tooltip="Every version of the file under the cursor"),
        Binding("slash", "search", "Find file", tooltip="Find a file by name across the group's points"),
        Binding("backspace", "up", "Up", tooltip="Browse the parent directory"),
        Binding("g", "groups", "Groups", tooltip="Pick another group"),
        Binding("t", "send_to_tape", "To tape", tooltip="Write the recovery point under the cursor to tape"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.group: str | None = None
        self.group_names: list[str] = []
        self.latest_point: str | None = None
        self.points: list[dict] = []
        self.sets: list[dict] = []
        self.days: list[tuple[str, list[dict], list[dict]]] = []
        self.point: dict | None = None  # the point browsed
        self.cwd: str | None = None  # the directory browsed; None: the group's sources
        self.roots: list[str] = []  # the group's sources (Backspace in one goes back to them)
        self.entries: list[dict] = []
        self.found: list[dict] = []
        self.file: str | None = None  # the file whose versions are shown
        self.versions: list[dict] = []
        self._tape_jobs: dict[int, str] = {}  # tape-backup job -> its state when last polled

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="recovery"):
            with Vertical(id="recovery-groups", classes="pane"):
                yield Label("Groups", classes="pane-title")
                yield OptionList(id="rgroups")
                yield Static("No groups yet: protect a directory in Protection (F2).", id="rgroups-empty",
                             classes="empty")
            with TabbedContent(id="recovery-tabs", initial="calendar"):
                with TabPane("Calendar", id="calendar"):
                    yield Label("Pick a group on the left.", id="calendar-title", classes="pane-title")
                    yield DataTable(id="days", cursor_type="row", zebra_stripes=True)
                    yield DataTable(id="day", cursor_type="row", zebra_stripes=True)
                with TabPane("Browse", id="browse"):
                    yield Label("Pick a recovery point in the calendar (Enter).", id="browse-where",
                                classes="pane-title")
                    yield DataTable(id="entries", cursor_type="row", zebra_stripes=True)
                with TabPane("Find", id="find"):
                    yield Input(placeholder="a file name, part of one, or a pattern such as *.conf", id="pattern")
                    yield DataTable(id="found", cursor_type="row", zebra_stripes=True)
                    yield Static(id="found-note", classes="empty")
                with TabPane("Versions", id="versions"):
                    yield Label("Pick a file (Enter in Browse or Find).", id="versions-of", classes="pane-title")
                    yield DataTable(id="file-versions", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#days", DataTable).add_columns("Day", "Disk points", "Tape sets")
        self.query_one("#day", DataTable).add_columns("Time", "What", "ID", "Kind", "Files", "Size", "State")
        self.query_one("#entries", DataTable).add_columns("Name", "Type", "Size", "Modified")
        self.query_one("#found", DataTable).add_columns("Path", "Size", "Modified", "In points", "Last point", "")
        self.query_one("#file-versions", DataTable).add_columns("From point", "Time", "To point", "Time", "Size",
                                                                "Modified", "")

    # -- groups ---------------------------------------------------------------------------------------------------

    def catch_up(self) -> None:
        if self.app.latest["status"] is not None:
            self.show_groups(self.app.latest["status"])

    def on_status_refreshed(self, message: StatusRefreshed) -> None:
        self.show_groups(message.status)

    def show_groups(self, status: dict) -> None:
        groups = status.get("groups", [])
        names = [g["name"] for g in groups]
        if names != self.group_names:
            self.group_names = names
            box = self.query_one("#rgroups", OptionList)
            box.clear_options()
            box.add_options([Option(n, id=n) for n in names])
            if self.group in names:
                box.highlighted = names.index(self.group)
        self.query_one("#rgroups-empty").display = not names
        self.query_one("#rgroups").display = bool(names)
        if self.group is None and names:
            self.pick_group(names[0])
        mine = next((g for g in groups if g["name"] == self.group), None)
        if mine is not None and mine.get("latest_point") != self.latest_point:
            self.latest_point = mine.get("latest_point")
            self.load_calendar()  # a new point (or a pruned one): the calendar follows

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.pick_group(event.option.id)
        self.query_one("#days", DataTable).focus()

    def on_jobs_refreshed(self, message: JobsRefreshed) -> None:
        """A tape backup of the group shown that ended since the last poll: its set joins the calendar."""
        ended = False
        for job in message.jobs:
            if job["kind"] == "tape-backup":
                was = self._tape_jobs.get(job["id"])
                ended |= (was in ("queued", "running") and job["state"] not in ("queued", "running")
                          and job.get("group_name") == self.group)
                self._tape_jobs[job["id"]] = job["state"]
        if ended:
            self.load_calendar()

    def pick_group(self, name: str) -> None:
        if name == self.group:
            return
        self.group, self.point, self.cwd, self.file = name, None, None, None
        # The calendar read below is as new as this point: a poll that sees the same one reads nothing again.
        status = self.app.latest["status"] or {}
        self.latest_point = next((g.get("latest_point") for g in status.get("groups", []) if g["name"] == name), None)
        self.found, self.versions, self.entries = [], [], []
        for table in ("#entries", "#found", "#file-versions", "#day"):
            self.query_one(table, DataTable).clear()
        self.query_one("#browse-where", Label).update("Pick a recovery point in the calendar (Enter).")
        self.query_one("#versions-of", Label).update("Pick a file (Enter in Browse or Find).")
        box = self.query_one("#rgroups", OptionList)
        if name in self.group_names:
            box.highlighted = self.group_names.index(name)
        self.load_calendar()

    def action_groups(self) -> None:
        box = self.query_one("#rgroups", OptionList)
        if self.group in self.group_names:  # the cursor starts on the group shown
            box.highlighted = self.group_names.index(self.group)
        box.focus()

    # -- calendar -------------------------------------------------------------------------------------------------

    def load_calendar(self) -> None:
        group = self.group
        daemon = self.app.daemon

        def both():
            return daemon.points(group), daemon.tape_sets(group)
        self.call(f"read group {group}'s points", both, done=lambda got: self.show_calendar(group, *got))

    def show_calendar(self, group: str, points: list[dict], sets: list[dict]) -> None:
        if group != self.group:
            return
        self.points, self.sets = points, sets
        self.days = days_of(points, sets)
        title = self.query_one("#calendar-title", Label)
        if not points and not sets:
            title.update(f"Group {group} has no recovery point yet: sync it in Protection (F2), or run "
                         f"`tapeline sync {group} --wait`.")
        else:
            title.update(f"Group {group}: {len(points)} recovery points, {len(sets)} tape sets, by day")
        rows = []
        for day, pts, tape in self.days:
            times = " ".join(parse_time(p["time"]).astimezone().strftime("%H:%M") for p in pts[-6:])
            rows.append((day, [day, f"{len(pts)}  {'… ' if len(pts) > 6 else ''}{times}" if pts else "-",
                               ", ".join(f"{s['id']} ({s['kind']})" for s in tape) or "-"]))
        refill(self.query_one("#days", DataTable), rows)
        self.show_day()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "days":
            self.show_day()

    def show_day(self) -> None:
        table = self.query_one("#day", DataTable)
        day = cursor_key(self.query_one("#days", DataTable))
        table.clear()
        match = next((d for d in self.days if d[0] == day), None)
        if match is None:
            return
        _, pts, tape = match
        now = self.app.now()
        rows = [(p["time"], f"p{p['id']}", [clock(p["time"], now), "disk point", str(p["id"]), p["kind"],
                                            f"{p['files']:,}", size(p["bytes"]), p["state"]]) for p in pts]
        rows += [(s["created"], f"t{s['id']}", [clock(s["created"], now), Text("tape set", "bold cyan"), str(s["id"]),
                                                s["kind"], f"{s['files']:,}", size(s["bytes"]),
                                                " ".join(c["barcode"] for c in s["cartridges"])]) for s in tape]
        for _, key, cells in sorted(rows, key=lambda r: r[0], reverse=True):
            table.add_row(*cells, key=key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        which = event.data_table.id
        if which == "days":
            self.query_one("#day", DataTable).focus()
        elif which == "day" and key.startswith("p"):
            self.point = next(p for p in self.points if f"p{p['id']}" == key)
            self.browse(None)
        elif which == "day":
            self.action_restore()
        elif which == "entries":
            entry = next(e for e in self.entries if e["path"] == key)
            if entry["kind"] == "dir":
                self.browse(entry["path"])
            else:
                self.show_versions(entry["path"])
        elif which == "found":
            self.show_versions(self.found[int(key)]["path"])

    # -- browsing -------------------------------------------------------------------------------------------------

    def browse(self, path: str | None) -> None:
        group, point = self.group, self.point
        self.call(f"browse {path or 'group ' + group}", self.app.daemon.tree, group, path, point["id"],
                  done=lambda answer: self.show_entries(group, answer))

    def show_entries(self, group: str, answer: dict) -> None:
        if group != self.group:
            return
        self.cwd, self.entries = answer["path"], answer["entries"]
        if self.cwd is None:
            self.roots = [e["path"] for e in self.entries]
        p = answer["point"]
        where = self.cwd or "the group's sources"
        self.query_one("#browse-where", Label).update(
            f"{where}  ·  recovery point {p['id']} ({clock(p['time'], self.app.now())})  ·  Enter opens, Backspace "
            f"goes up, r restores")
        table = self.query_one("#entries", DataTable)
        table.clear()
        now = self.app.now()
        for e in self.entries:
            table.add_row(Text(KIND_MARK.get(e["kind"], "") + e["name"] + ("/" if e["kind"] == "dir" else ""),
                               "bold" if e["kind"] == "dir" else ""), e["kind"],
                          size(e["size"]) if e["kind"] == "file" else "", mtime_text(e["mtime_ns"], now),
                          key=e["path"])
        self.query_one("#recovery-tabs", TabbedContent).active = "browse"
        table.focus()

    def action_up(self) -> None:
        if self.point is None or self.cwd is None:
            return
        self.browse(None if self.cwd in self.roots else os.path.dirname(self.cwd))

    # -- finding and versions -------------------------------------------------------------------------------------

    def action_search(self) -> None:
        self.query_one("#recovery-tabs", TabbedContent).active = "find"
        self.query_one("#pattern", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "pattern" or self.group is None or not event.value.strip():
            return
        group, pattern = self.group, event.value
        self.call(f"find {pattern!r}", self.app.daemon.find, group, pattern,
                  done=lambda answer: self.show_found(group, answer))

    def show_found(self, group: str, answer: dict) -> None:
        if group != self.group:
            return
        self.found = answer["versions"]
        table = self.query_one("#found", DataTable)
        table.clear()
        now = self.app.now()
        for i, v in enumerate(self.found):
            table.add_row(v["path"], size(v["size"]) if v["kind"] == "file" else v["kind"],
                          mtime_text(v["mtime_ns"], now), str(v["points"]),
                          f"{v['last_point']['id']} ({clock(v['last_point']['time'], now)})",
                          "current" if v["current"] else "", key=str(i))
        note = self.query_one("#found-note", Static)
        if not self.found:
            note.update(f"No file named like {answer['pattern']!r} in group {group}'s recovery points.")
        elif answer["truncated"]:
            note.update(f"The first {len(self.found)} versions: give a narrower pattern for the rest.")
        else:
            note.update("Enter shows every version of the file; r restores the one under the cursor.")
        if self.found:
            table.focus()

    def action_versions(self) -> None:
        path = self._selected_path()
        if path:
            self.show_versions(path)

    def show_versions(self, path: str) -> None:
        group = self.group
        self.call(f"read the versions of {path}", self.app.daemon.versions, path,
                  done=lambda found: self.fill_versions(group, path, found))

    def fill_versions(self, group: str, path: str, found: list[dict]) -> None:
        if group != self.group:
            return
        self.file = path
        self.versions = [v for v in found if v["group"] == group]
        self.query_one("#versions-of", Label).update(
            f"{path}: {plural(len(self.versions), 'version')} in group {group}  ·  r restores the one under the cursor")
        table = self.query_one("#file-versions", DataTable)
        table.clear()
        now = self.app.now()
        for i, v in enumerate(reversed(self.versions)):  # newest first: the one usually wanted
            table.add_row(str(v["first_point"]["id"]), clock(v["first_point"]["time"], now),
                          str(v["last_point"]["id"]), clock(v["last_point"]["time"], now),
                          size(v["size"]) if v["kind"] == "file" else v["kind"], mtime_text(v["mtime_ns"], now),
                          "current" if v["current"] else "", key=str(len(self.versions) - 1 - i))
        self.query_one("#recovery-tabs", TabbedContent).active = "versions"
        table.focus()

    # -- restoring ------------------------------------------------------------------------------------------------

    def action_restore(self) -> None:
        self._restore("/")

    def action_restore_elsewhere(self) -> None:
        self._restore("")

    def _restore(self, to: str) -> None:
        """What the cursor is on, in the tab shown: a point or tape set (all of it), an entry, a found version, a
        version of the file."""
        tab = self.query_one("#recovery-tabs", TabbedContent).active
        group = self.group
        if group is None:
            return
        if tab == "calendar":
            key = cursor_key(self.query_one("#day", DataTable))
            if key is None:
                return
            if key.startswith("t"):
                tape = next(s for s in self.sets if f"t{s['id']}" == key)
                return self._restore_tape(group, tape, to)
            point = next(p for p in self.points if f"p{p['id']}" == key)
            return self._ask(group, point, [], to)
        if tab == "browse" and self.point is not None:
            key = cursor_key(self.query_one("#entries", DataTable))
            entry = next((e for e in self.entries if e["path"] == key), None)
            if entry is not None:
                paths = [] if self.cwd is None else [(entry["path"], entry["kind"])]
                return self._ask(group, self.point, paths, to)
        if tab == "find":
            key = cursor_key(self.query_one("#found", DataTable))
            if key is not None:
                v = self.found[int(key)]
                return self._ask(group, v["last_point"], [(v["path"], v["kind"])], to)
        if tab == "versions":
            key = cursor_key(self.query_one("#file-versions", DataTable))
            if key is not None:
                v = self.versions[int(key)]
                return self._ask(group, v["last_point"], [(v["path"], v["kind"])], to)

    def _ask(self, group: str, point: dict, items: list[tuple[str, str]], to: str) -> None:
        what = items[0][0] if len(items) == 1 else "the whole recovery point"
        title = f"Restore {what} from recovery point {point['id']} ({clock(point['time'], self.app.now())})"
        paths = [p for p, _ in items]
        if not items:  # a whole point: its sources, as they stand now
            def listed(answer):
                shown = [(e["path"], e["kind"]) for e in answer["entries"]]
                self.app.push_screen(RestoreDialog(title, shown, to=to or ""),
                                     lambda chosen: self._start(group, point, paths, chosen))
            self.call("read the point's sources", self.app.daemon.tree, group, None, point["id"], done=listed)
            return
        self.app.push_screen(RestoreDialog(title, items, to=to or ""),
                             lambda chosen: self._start(group, point, paths, chosen))

    def _start(self, group: str, point: dict, paths: list[str], chosen: dict | None) -> None:
        if chosen is None:
            return
        self.call("restore", self.app.daemon.restore, group, chosen["to"], str(point["id"]), None, paths,
                  chosen["overwrite"], done=lambda answer: self._started(answer, "restore"))

    def _restore_tape(self, group: str, tape: dict, to: str) -> None:
        title = f"Restore tape set {tape['id']} ({tape['kind']}, {clock(tape['created'], self.app.now())}) " \
                f"of group {group}"
        chain = chain_of(tape, self.sets)
        daemon = self.app.daemon

        # The sources as the set's own point held them (not the newest point's); a point pruned from disk since:
        # the newest (the sources are the group's either way).
        point = tape.get("point") if tape.get("point") in {p["id"] for p in self.points} else None

        def read():  # and where each cartridge the restore reads is now
            carts = {c["barcode"]: daemon.cartridge(c["barcode"]) for st in chain for c in st["cartridges"]}
            needs = [cartridge_need(st, carts[c["barcode"]]) for st in chain for c in st["cartridges"]]
            return daemon.tree(group, None, point), needs

        def listed(got):
            answer, needs = got
            shown = [(e["path"], e["kind"]) for e in answer["entries"]]
            self.app.push_screen(RestoreDialog(title, shown, needs=needs, to=to or ""),
                                 lambda chosen: chosen and self.call(
                                     "restore from tape", self.app.daemon.tape_restore, group, chosen["to"],
                                     tape["id"], None, [], chosen["overwrite"],
                                     done=lambda answer: self._started(answer, "restore from tape")))
        self.call("read the tape set's sources and cartridges", read, done=listed)

    def _started(self, answer: dict, what: str) -> None:
        self.notify(f"{what} started: job {answer['job']} (Monitoring, F1, shows its progress)", title=what)
        self.app.refresh_now()

    PRIMARY = {"calendar": "#days", "browse": "#entries", "find": "#pattern", "versions": "#file-versions"}

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # The pane shown takes the keys: a widget of a pane still hidden may have refused focus a moment before.
        self.query_one(self.PRIMARY[event.pane.id]).focus()

    def action_send_to_tape(self) -> None:
        key = cursor_key(self.query_one("#day", DataTable))
        if self.group is None or key is None or not key.startswith("p"):
            return self.notify("Pick a disk point in the calendar first (a day, then its point).", severity="warning")
        send_to_tape(self, self.group, key[1:])

    def _selected_path(self) -> str | None:
        tab = self.query_one("#recovery-tabs", TabbedContent).active
        if tab == "browse":
            key = cursor_key(self.query_one("#entries", DataTable))
            return key if key and self.cwd is not None else None
        if tab == "find":
            key = cursor_key(self.query_one("#found", DataTable))
            return self.found[int(key)]["path"] if key is not None else None
        return self.file

