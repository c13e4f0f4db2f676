"""Reporting (F4): every report the daemon has (`/v1/reports`), shown in place, exported to a file, mailed now.

A report about one group (restore-needs: `takes_group`) is produced for the group picked with `g` (the first group
until then), as `tapeline report restore-needs GROUP` is.

The report is produced by the daemon (the same text `tapeline report NAME` prints); an export asks the daemon for the
format the file's name ends in (.csv, .html, else text) and writes it here, atomically (a temp file renamed), after
asking before it replaces a file that exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from appliance.errors import TapelineError
from appliance.files import write_atomically
from appliance.text import plural
from tui.screens.area import AreaScreen
from tui.widgets.confirm import Confirm
from tui.widgets.prompt import Prompt

PERIODS = (7, 30, 90, 1)  # days; `d` steps through them
FORMATS = {".csv": "csv", ".html": "html", ".htm": "html"}


def format_for(path: str) -> str:
    return FORMATS.get(Path(path).suffix.lower(), "text")


class ReportingScreen(AreaScreen):
    AREA = "Reporting"
    BINDINGS = [
        Binding("x", "export", "Export", tooltip="Write the report to a file (.txt, .csv or .html)"),
        Binding("m", "mail", "Mail now", tooltip="Mail the report to the configured recipients now"),
        Binding("d", "period", "Period", tooltip="Report over the last 7, 30, 90 days or 1 day"),
        Binding("r", "reload", "Refresh", tooltip="Produce the report again"),
        Binding("g", "group", "Group", tooltip="The group a report about one group (restore-needs) is for"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[dict] = []
        self.days = PERIODS[0]
        self.shown: dict | None = None
        # The report asked for last (not `self.loading`: Textual's reactive of that name covers the screen).
        self.asked: str | None = None
        self.group: str | None = None  # the group of the reports about one group

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="reporting"):
            with Vertical(id="report-list-pane", classes="pane"):
                yield Label("Reports", classes="pane-title")
                yield OptionList(id="report-list")
            with Vertical(id="report-pane", classes="pane"):
                yield Label("", classes="pane-title", id="report-title")
                yield TextArea("", id="report", read_only=True, soft_wrap=False, show_line_numbers=False)
                yield Static("", id="report-empty", classes="empty")

    def on_mount(self) -> None:
        self.query_one("#report").display = False

    def catch_up(self) -> None:
        if not self.reports:
            self.call("List the reports", self.app.daemon.reports, done=self.show_list)

    def show_list(self, reports: list[dict]) -> None:
        self.reports = reports
        options = self.query_one("#report-list", OptionList)
        options.clear_options()
        options.add_options([Option(f"{r['name']}\n[dim]{r['description']}[/dim]", id=r["name"]) for r in reports])
        if reports:
            options.highlighted = 0  # may raise no OptionHighlighted (already 0): the first is loaded here
            options.focus()
            self.load(reports[0]["name"])
        else:
            self._empty("The daemon offers no reports.")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "report-list" and event.option.id and event.option.id != self.asked:
            self.load(event.option.id)

    def takes_group(self, name: str) -> bool:
        return any(r["name"] == name and r.get("takes_group") for r in self.reports)

    def group_for(self, name: str) -> str | None:
        """The group a report about one group is for (None for the others): the one picked, else the first."""
        if not self.takes_group(name):
            return None
        if self.group is None:
            groups = (self.app.latest["status"] or {}).get("groups") or []
            self.group = groups[0]["name"] if groups else None
        return self.group

    def load(self, name: str) -> None:
        self.asked = name
        group = self.group_for(name)
        if self.takes_group(name) and group is None:
            self.query_one("#report-title", Label).update(name)
            self._empty(f"The {name} report is about one group, and there is none yet: protect a directory in "
                        "Protection (F2).")
            return
        self.query_one("#report-title", Label).update(f"{name}: producing…")
        self.call(f"Report {name}", self.app.daemon.report, name, "text", self.days, group,
                  done=self.show_report)

    def show_report(self, report: dict) -> None:
        if report["name"] != self.asked:
            return  # the operator moved on while it was produced
        self.shown = report
        attention = "  (needs attention)" if report.get("needs_attention") else ""
        group = self.group_for(report["name"])
        about = f" of group {group} (g picks another)" if group else \
            f": last {plural(report['days'], 'day')}"
        self.query_one("#report-title", Label).update(f"{report['title']}{about}{attention}")
        area = self.query_one("#report", TextArea)
        area.load_text(report["content"])
        area.display = True
        self.query_one("#report-empty").display = False

    def _empty(self, text: str) -> None:
        self.query_one("#report").display = False
        empty = self.query_one("#report-empty", Static)
        empty.update(text)
        empty.display = True

    def current_name(self) -> str | None:
        options = self.query_one("#report-list", OptionList)
        if options.highlighted is None:
            return None
        return options.get_option_at_index(options.highlighted).id

    # -- actions ----------------------------------------------------------------------------------------------------

    def action_reload(self) -> None:
        name = self.current_name()
        if name:
            self.load(name)

    def action_group(self) -> None:
        name = self.current_name()
        if name is None or not self.takes_group(name):
            self.notify("Only a report about one group (restore-needs) takes a group.", severity="warning")
            return
        names = [g["name"] for g in (self.app.latest["status"] or {}).get("groups") or []]
        self.app.push_screen(Prompt(f"The {name} report for group", self.group or "",
                                    f"One of: {', '.join(names)}" if names else ""), self._group_picked)

    def _group_picked(self, group: str | None) -> None:
        if group:
            self.group = group
            self.action_reload()

    def action_period(self) -> None:
        self.days = PERIODS[(PERIODS.index(self.days) + 1) % len(PERIODS)]
        self.action_reload()

    def action_export(self) -> None:
        name = self.current_name()
        if name is None:
            self.notify("Pick a report first.", severity="warning")
            return
        day = self.app.now().astimezone().date().isoformat()
        default = str(Path.cwd() / f"tapeline-{name}-{day}.txt")
        self.app.push_screen(Prompt(f"Export the {name} report (last {self.days} days) to", default,
                                    "The format follows the name: .txt text, .csv CSV, .html HTML."),
                             lambda path: self._export_to(name, path))

    def _export_to(self, name: str, text: str | None) -> None:
        if not text:
            return
        path = Path(os.path.expanduser(text)).absolute()
        if not path.parent.is_dir():
            self.notify(f"{path.parent} is not a directory: give a file in a directory that exists.",
                        title="Export failed", severity="error", markup=False)
            return
        if path.exists():
            self.app.push_screen(Confirm(f"Replace {path}?", [f"the file {path} as it is now "
                                                              f"({path.stat().st_size} bytes)"], action="Replace"),
                                 lambda yes: yes and self._write(name, path))
        else:
            self._write(name, path)

    def _write(self, name: str, path: Path) -> None:
        days, group = self.days, self.group_for(name)

        def work(daemon):
            report = daemon.report(name, format_for(str(path)), days, group)
            try:
                write_atomically(path, report["content"])
            except OSError as exc:
                raise TapelineError(f"cannot write the report to {path} ({exc.strerror})",
                                    "give a file in a directory you may write to") from None
            return path

        self.call("Export", work, self.app.daemon,
                  done=lambda p: self.notify(f"Wrote {p}.", title="Exported", markup=False))

    def action_mail(self) -> None:
        name = self.current_name()
        if name is None:
            self.notify("Pick a report first.", severity="warning")
            return
        if self.takes_group(name):
            self.notify(f"The {name} report is produced when needed, not mailed: export it (x) and send the file.",
                        severity="warning", markup=False)
            return
        self.call("Mail", self.app.daemon.mail_report, name, self.days, done=self._mailed)

    def _mailed(self, answer: dict) -> None:
        self.notify(f"{answer['subject']}: queued for {', '.join(answer['recipients'])}.", title="Mailed",
                    markup=False)
