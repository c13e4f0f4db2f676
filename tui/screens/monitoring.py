"""Monitoring (F1): the open alerts with their object and fix, and the running and recent jobs with live progress and
rates. `l` shows every alert kept instead (`tapeline alerts --all`: resolved and acknowledged ones with their state).

Keys act on the row under the cursor of their table: `a` acknowledges an alert, `f` runs its fix through the API where
the fix is a `tapeline` command the API has (else shows it, copied to the clipboard); `c` cancels a job (after a
confirmation naming it), `r` re-submits a finished one (same kind, group and parameters). Rates come from two
successive polls of the same job's progress.
"""

from __future__ import annotations

import time
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from appliance.text import alert_object, alert_state
from tui import fixes
from tui.format import clock, duration, parse_time, since
from tui.messages import AlertsChanged, JobsRefreshed
from tui.screens.area import AreaScreen
from tui.tables import cursor_key, refill
from tui.widgets.confirm import Confirm

ACTIVE = ("running", "queued")
FINISHED = ("completed", "completed with warnings", "failed", "cancelled")
BAR_WIDTH = 16
STATE_STYLE = {"failed": "bold red", "cancelled": "yellow", "completed with warnings": "yellow",
               "running": "bold cyan", "queued": "cyan", "completed": "green"}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
ALERT_COLUMNS = ("ID", "Time", "Severity", "Object", "Alert")  # and "State" when every alert is shown
OPEN_ALERTS_EMPTY = "No open alerts: every group is protected as configured."


def progress_bar(job: dict) -> Text:
    """A bar for a job that knows its total, the count for one that does not, nothing for a finished one."""
    done, total = job.get("progress_done") or 0, job.get("progress_total")
    if job["state"] == "queued":
        return Text("waiting", style="dim")
    if job["state"] != "running":
        return Text("")
    if not total:
        return Text(f"{done:,} done" if done else "working", style="cyan")
    share = min(1.0, done / total)
    filled = round(share * BAR_WIDTH)
    return Text.assemble(("█" * filled, "cyan"), ("░" * (BAR_WIDTH - filled), "grey37"), f" {share:4.0%}")


class MonitoringScreen(AreaScreen):
    AREA = "Monitoring"
    BINDINGS = [
        Binding("a", "acknowledge", "Acknowledge", tooltip="Acknowledge the alert under the cursor"),
        Binding("f", "run_fix", "Run fix", tooltip="Run the alert's fix (or copy it when a person must fill it in)"),
        Binding("c", "cancel_job", "Cancel job", tooltip="Cancel the job under the cursor"),
        Binding("r", "retry_job", "Retry job", tooltip="Submit the job under the cursor again"),
        Binding("l", "all_alerts", "All alerts", tooltip="Show resolved and acknowledged alerts too (l again: open "
                "ones only)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[dict] = []
        self.all_alerts = False  # every alert kept (read from /v1/alerts?all), not the open ones the poller reads
        self.jobs: list[dict] = []
        self._samples: dict[int, tuple[float, int]] = {}  # job id -> (when polled, progress) for the rates
        self._rates: dict[int, float] = {}

    def compose_body(self) -> ComposeResult:
        with Vertical(id="alerts-pane", classes="pane"):
            yield Label("Open alerts", classes="pane-title", id="alerts-title")
            yield DataTable(id="alerts", cursor_type="row", zebra_stripes=True)
            yield Static(id="alert-fix")
            yield Static(OPEN_ALERTS_EMPTY, id="alerts-empty", classes="empty")
        with Vertical(id="jobs-pane", classes="pane"):
            yield Label("Jobs", classes="pane-title")
            yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
            yield Static("No jobs yet: protect a directory in Protection (F2), then press s to sync it now.",
                         id="jobs-empty", classes="empty")

    def on_mount(self) -> None:
        self.query_one("#alerts", DataTable).add_columns(*ALERT_COLUMNS)
        self.query_one("#jobs", DataTable).add_columns("ID", "Kind", "Group", "State", "Progress", "Rate", "Started",
                                                      "Took", "Message")
        for hidden in ("#alerts", "#alert-fix", "#alerts-empty", "#jobs", "#jobs-empty"):  # until the daemon answers
            self.query_one(hidden).display = False

    def catch_up(self) -> None:
        latest = self.app.latest
        if self.all_alerts:
            self.load_all_alerts()
        elif latest["alerts"] is not None:
            self.show_alerts(latest["alerts"])
        if latest["jobs"] is not None:
            self.show_jobs(latest["jobs"])

    def on_alerts_changed(self, message: AlertsChanged) -> None:
        if self.all_alerts:  # one raised, resolved or acknowledged: the kept ones changed too
            self.load_all_alerts()
        else:
            self.show_alerts(message.alerts)

    def load_all_alerts(self) -> None:
        self.call("Read the alerts", self.app.daemon.alerts, True,
                  done=lambda alerts: self.all_alerts and self.show_alerts(alerts))

    def on_jobs_refreshed(self, message: JobsRefreshed) -> None:
        self._measure(message.jobs)
        self.show_jobs(message.jobs)

    # -- drawing ----------------------------------------------------------------------------------------------------

    def show_alerts(self, alerts: list[dict]) -> None:
        self.alerts = alerts
        now = self.app.now()
        rows = [(alert_key(a), ["-" if a["id"] is None else str(a["id"]), clock(a["time"], now),
                                Text(a["severity"], SEVERITY_STYLE.get(a["severity"], "")), alert_object(a),
                                a["message"]] + ([alert_state(a)] if self.all_alerts else [])) for a in alerts]
        refill(self.query_one("#alerts", DataTable), rows)
        empty = self.query_one("#alerts-empty", Static)
        empty.update("No alerts kept." if self.all_alerts else OPEN_ALERTS_EMPTY)
        empty.display = not alerts
        self.query_one("#alerts").display = bool(alerts)
        self.query_one("#alert-fix").display = bool(alerts)
        self._show_fix()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "alerts":
            self._show_fix()

    def _show_fix(self) -> None:
        alert = self._current("#alerts", self.alerts, alert_key)
        fix = self.query_one("#alert-fix", Static)
        if alert is None:
            fix.update("")
            return
        runs = any(fixes.runnable(c) for c in fixes.commands(alert["fix"]))
        fix.update(Text.assemble(("Fix: ", "bold"), alert["fix"] or "none given",
                                 ("   (f runs it)" if runs else "   (f copies it)", "dim")))

    def show_jobs(self, jobs: list[dict]) -> None:
        order = {"running": 0, "queued": 1}
        self.jobs = sorted(jobs, key=lambda j: (order.get(j["state"], 2), -j["id"]))
        now = self.app.now()
        rows = []
        for j in self.jobs:
            rate = self._rates.get(j["id"])
            took = (since(j["started"], now) if j["state"] == "running" else
                    _between(j["started"], j["finished"]))
            rows.append((str(j["id"]), [
                str(j["id"]), j["kind"], j.get("group_name") or "-",
                Text(j["state"], STATE_STYLE.get(j["state"], "")), progress_bar(j),
                f"{rate:,.0f}/s" if rate and j["state"] == "running" else "",
                clock(j["started"] or j["created"], now), duration(took) if took is not None else "-",
                job_note(j)]))
        refill(self.query_one("#jobs", DataTable), rows)
        self.query_one("#jobs-empty").display = not jobs
        self.query_one("#jobs").display = bool(jobs)

    def _measure(self, jobs: list[dict]) -> None:
        at = time.monotonic()
        for j in jobs:
            if j["state"] != "running":
                self._samples.pop(j["id"], None)
                self._rates.pop(j["id"], None)
                continue
            before = self._samples.get(j["id"])
            done = j.get("progress_done") or 0
            if before is not None and at > before[0] and done >= before[1]:
                self._rates[j["id"]] = (done - before[1]) / (at - before[0])
            self._samples[j["id"]] = (at, done)

    # -- actions ----------------------------------------------------------------------------------------------------

    def _current(self, selector: str, items: list[dict], key_of=lambda i: str(i["id"])) -> dict | None:
        key = cursor_key(self.query_one(selector, DataTable))
        return next((i for i in items if key_of(i) == key), None)

    def action_acknowledge(self) -> None:
        alert = self._current("#alerts", self.alerts, alert_key)
        if alert is None:
            self.notify("No open alert to acknowledge.", severity="warning")
            return
        if alert["id"] is None:
            self.notify("This alert describes the group's state: it goes once its fix is applied.", markup=False)
            return
        if alert.get("acknowledged") or alert.get("resolved"):
            self.notify(f"Alert {alert['id']} is {alert_state(alert)} already.", markup=False)
            return
        self.call("Acknowledge", self.app.daemon.acknowledge, alert["id"], done=lambda _a: self._acknowledged(alert))

    def _acknowledged(self, alert: dict) -> None:
        self.notify(f"Alert {alert['id']} acknowledged.", markup=False)
        if self.all_alerts:
            self.load_all_alerts()
        else:
            self.show_alerts([a for a in self.alerts if a["id"] != alert["id"]])
        self.app.refresh_now()

    def action_all_alerts(self) -> None:
        self.all_alerts = not self.all_alerts
        table = self.query_one("#alerts", DataTable)
        table.clear(columns=True)
        table.add_columns(*ALERT_COLUMNS, *(["State"] if self.all_alerts else []))
        self.query_one("#alerts-title", Label).update(
            "All alerts (l: open ones only)" if self.all_alerts else "Open alerts")
        self.catch_up()

    def action_run_fix(self) -> None:
        alert = self._current("#alerts", self.alerts, alert_key)
        if alert is None:
            self.notify("No open alert whose fix to run.", severity="warning")
            return
        if alert.get("resolved"):
            self.notify(f"Alert {alert['id']} is {alert_state(alert)}: its fix is not needed now.", markup=False)
            return
        found = fixes.commands(alert["fix"])
        call = next((c for c in map(fixes.runnable, found) if c is not None), None)
        if call is None:
            shown = found[0] if found else alert["fix"]
            self.app.copy_to_clipboard(shown)
            self.notify(f"{shown}\n(copied: run it in a shell, filling in what is in capitals)", title="The fix",
                        timeout=15, markup=False)
            return
        self.call("Run fix", call, self.app.daemon, done=self._started)

    def _started(self, answer: dict) -> None:
        job = answer.get("job") if isinstance(answer, dict) else None
        self.notify(f"Job {job} started." if job else "Done.", markup=False)
        self.app.refresh_now()

    def action_cancel_job(self) -> None:
        job = self._current("#jobs", self.jobs)
        if job is None or job["state"] not in ACTIVE:
            self.notify("Pick a running or queued job to cancel.", severity="warning")
            return
        what = f"job {job['id']}: {job['kind']} of {job.get('group_name') or '-'} ({job['state']})"
        losses = [f"the work {what} has done so far (nothing half-made is kept)" if job["state"] == "running"
                  else f"{what}: it will not run"]

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("Cancel", self.app.daemon.cancel, job["id"], done=lambda _j: self._cancelled(job))
        self.app.push_screen(Confirm(f"Cancel job {job['id']}?", losses, action="Cancel the job"), answered)

    def _cancelled(self, job: dict) -> None:
        self.notify(f"Job {job['id']}: cancel requested.", markup=False)
        self.app.refresh_now()

    def action_retry_job(self) -> None:
        job = self._current("#jobs", self.jobs)
        if job is None or job["state"] not in FINISHED:
            self.notify("Pick a finished job to submit again.", severity="warning")
            return
        self.call("Retry", self.app.daemon.retry, job, done=self._started)


def job_note(job: dict) -> str:
    """What a person wants to read about a job: why it ended so, its first warning, or what it is doing now."""
    if job.get("reason"):
        return job["reason"]
    if job.get("warnings"):
        more = len(job["warnings"]) - 1
        return job["warnings"][0] + (f" (+{more} more: tapeline job {job['id']})" if more else "")
    return job.get("progress_message") or "" if job["state"] in ACTIVE else ""


def alert_key(alert: dict) -> str:
    """Stored alerts by id; those the daemon derives from the state (no id) by what they say."""
    return str(alert["id"]) if alert["id"] is not None else f"state:{alert.get('group_name')}:{alert['message']}"


def _between(start: str | None, end: str | None) -> float | None:
    ended = parse_time(end)
    return None if ended is None else since(start, ended)
