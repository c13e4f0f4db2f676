"""A month of offsite rotation as issue 9's "Done when" puts it: the real appliance with a simulated library of two
mail slots, on a simulated clock, run by an operator who does exactly what the pick lists say.

The appliance is `Appliance(settings, driven=True)` (its schedule run by whoever moves the clock, as
tests/appliance/week_harness.py drives it) behind its real API on its socket; the operator types `tapeline ...`
commands (the real CLI, in process, so it shares the clock) and acts at the mail slot with `tapeline-vtl mailslot`.
The library is the simulator in process (`local://`), reached by the appliance through its device URLs.

The month (local time, from Monday 2 March 2026): group `files` is written to tape every day at 01:00 into pool
`daily` (the recovery point of 00:30; a new media set each job, kept 7 days, verified), which rotates to vault `ironvault`. On Mondays two
extra sets are written by hand, so three cartridges leave through two mail slots. Each day at 09:00 the operator:
reads the library's pick list, runs `vault export` and empties the mail slots whenever the job waits; hands the
cartridges to the courier; confirms yesterday's arrivals at the vault (`vault receive`), except one cartridge the
courier loses; runs `vault recall`, reads the vault's pick list, confirms the vault sent those back (`vault
sent-back`), and the next day puts the returns into the mail slots (two at a time) and runs `vault import`.

`Record` is the truth the test keeps by itself: where each cartridge physically is.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import time_machine
from click.testing import CliRunner

from appliance import config
from appliance.api.app import create_app
from appliance.api.server import bind_socket, make_server
from appliance.cli import cli as cli_main
from appliance.daemon import Appliance
from appliance.ops.job_records import list_jobs
from tests.engine_harness import settle
from simulators.vtl.cli import main as vtl_main

MONTH = datetime(2026, 3, 2).astimezone()  # a Monday, 00:00 local time
DAYS = 30
LOST = 9  # the day whose first exported cartridge the courier loses
MAILSLOTS = 2


@dataclass
class Record:
    """Where the operator put each cartridge: 'library', 'courier', 'vault', 'lost', 'returning'."""
    place: dict[str, str] = field(default_factory=dict)
    exported: dict[int, list[str]] = field(default_factory=dict)  # day -> barcodes, in pick-list order
    pick_lists: dict[int, list[str]] = field(default_factory=dict)  # day -> the library pick list's barcodes
    catalog_backups: dict[int, list[str]] = field(default_factory=dict)  # day -> the export's catalog backup tapes
    waits: int = 0  # times an export waited for the operator to empty the mail slots
    returned: list[str] = field(default_factory=list)
    lost: str | None = None

    def where(self, place: str) -> set[str]:
        return {b for b, p in self.place.items() if p == place}


@dataclass
class Month:
    record: Record
    final: dict  # what the reports and commands say at the end: name -> parsed output
    jobs: list
    seconds: float


class Operator:
    def __init__(self, config_file: Path, vtl: Path):
        self.config_file, self.vtl = config_file, vtl
        self.runner = CliRunner()

    def run(self, *args: str, ok=(0,)) -> str:
        result = self.runner.invoke(cli_main, ["--config", str(self.config_file), *args], catch_exceptions=False)
        assert result.exit_code in ok, f"tapeline {shlex.join(args)} exited {result.exit_code}: {result.output}"
        return result.output

    def json(self, *args: str, ok=(0,)):
        return json.loads(self.run("--json", *args, ok=ok))

    def report(self, name: str, *args: str) -> list[dict]:
        content = self.json("report", name, *args, "--format", "csv")["content"]
        return list(csv.DictReader(io.StringIO(content)))

    def mailslot(self, *action: str) -> None:
        assert vtl_main(["mailslot", str(self.vtl), *action]) == 0, action

    def full_mailslots(self) -> list[int]:
        from drivers.changer import MediaChanger
        with MediaChanger(f"local://{self.vtl}/changer") as c:
            return [e.mailslot_number for e in c.inventory().mailslots if e.full]


def run_month(work: Path) -> Month:
    started = time.monotonic()
    src = work / "files"
    src.mkdir()
    for i in range(30):
        (src / f"doc-{i}.txt").write_text(f"document {i}\n" * 200)
    vtl = work / "vtl"
    assert vtl_main(["init", str(vtl), "--slots", "40", "--drives", "1", "--mailslots", str(MAILSLOTS),
                     "--capacity", str(256 * 1024 * 1024)]) == 0
    cfg = work / "tapeline.toml"
    cfg.write_text("\n".join([
        f'data_dir = "{work / "data"}"', "[api]", f'socket = "{work / "data"}/run/tapeline.sock"',
        'group = "tapeline-none"', "[defaults]", "points = []", "[jobs]", "retries = 0"]) + "\n")
    settings = config.load(cfg)
    app = Appliance(settings, driven=True)
    op = Operator(cfg, vtl)
    record = Record()
    with time_machine.travel(MONTH - timedelta(hours=1), tick=True) as clock:
        app.open()
        app.start()
        sock = bind_socket(settings.socket_path, None)
        server = make_server(create_app(app), "warning")
        serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        serving.start()
        try:
            app.register_library("vtl", f"local://{vtl}/changer", lambda i: f"local://{vtl}/drive{i}")
            record.place.update({c["barcode"]: "library" for c in op.json("media", "list")
                                 if c["state"] != "cleaning"})
            op.run("group", "create", "files", "--source", str(src), "--sync", "1d", "--points", "00:30")
            op.run("pool", "create", "daily", "--library", "vtl", "--retention", "7d", "--allocation", "always")
            op.run("vault", "create", "ironvault", "--contact", "Iron Vault, +1 555 0100")
            op.run("pool", "set", "daily", "--vault", "ironvault")
            op.run("group", "set", "files", "--tape-pool", "daily", "--tape-full", "01:00")
            couriered: list[str] = []  # handed to the courier yesterday
            recalled: list[str] = []  # the vault sent these back yesterday
            for day in range(DAYS):
                midnight = MONTH + timedelta(days=day)
                (src / "daily.txt").write_text(f"day {day}\n" * 100)
                _step(app, clock, midnight + timedelta(minutes=30))  # the day's recovery point
                _step(app, clock, midnight + timedelta(hours=1))  # the scheduled tape job
                _step(app, clock, midnight + timedelta(hours=9))
                if midnight.weekday() == 0:
                    for _ in range(2):
                        op.run("tape", "backup", "files", "--pool", "daily", "--wait")
                _arrivals(op, record, couriered, day)
                _returns(op, record, recalled)
                couriered = _export(op, app, record, day)
                recalled = _recall(op, record)
                _step(app, clock, midnight + timedelta(hours=23, minutes=30))  # the day's sync
            final = {
                "vault-inventory": op.report("vault-inventory"),
                "discrepancies": op.report("discrepancies"),
                "pick-list-vault": op.report("pick-list-vault"),
                "media": op.json("media", "list"),
                "forecast": op.json("vault", "forecast", "--weeks", "2", ok=(0, 3)),
                "plan": op.run("vault", "plan"),
                "library": _library_truth(vtl),
            }
            jobs = list_jobs(app.catalog, limit=10_000)
        finally:
            server.should_exit = True
            serving.join(timeout=30)
            app.stop()
    return Month(record, final, jobs, time.monotonic() - started)


def _step(app: Appliance, clock, when: datetime) -> None:
    clock.move_to(when)
    app.scheduler.run_due()
    settle(app)


def _export(op: Operator, app: Appliance, record: Record, day: int) -> list[str]:
    """The library's pick list, then `vault export`, emptying the mail slots whenever the job waits for it."""
    picked = [row["barcode"] for row in op.report("pick-list-library")]
    record.pick_lists[day] = picked
    job = op.json("vault", "export")["job"]
    job_id = job["id"] if isinstance(job, dict) else job
    taken: list[str] = []
    while True:
        state = op.json("job", str(job_id))
        if state["state"] in ("completed", "completed with warnings", "failed", "cancelled"):
            break
        if len(op.full_mailslots()) == MAILSLOTS:  # the job waits for the operator to empty them
            record.waits += 1
            taken += _empty_mailslots(op)
        time.sleep(0.2)
    assert state["state"] == "completed", state
    record.catalog_backups[day] = [b for tape in state["result"]["catalog_backups"] for b in tape["cartridges"]]
    taken += _empty_mailslots(op)
    record.exported[day] = taken
    for barcode in taken:
        record.place[barcode] = "courier"
    return taken


def _empty_mailslots(op: Operator) -> list[str]:
    from drivers.changer import MediaChanger
    with MediaChanger(f"local://{op.vtl}/changer") as c:
        full = [(e.mailslot_number, e.barcode) for e in c.inventory().mailslots if e.full]
    if not full:
        return []
    op.mailslot("open")
    for number, _ in full:
        op.mailslot("remove", str(number))
    op.mailslot("close")
    return [barcode for _, barcode in full]


def _arrivals(op: Operator, record: Record, couriered: list[str], day: int) -> None:
    """The vault confirms what the courier brought; on day LOST the courier loses the first cartridge."""
    arrived = list(couriered)
    if day == LOST + 1 and arrived:
        record.lost = arrived.pop(0)
        record.place[record.lost] = "lost"
    if arrived:
        op.run("vault", "receive", *arrived, "--vault", "ironvault")
        for barcode in arrived:
            record.place[barcode] = "vault"


def _recall(op: Operator, record: Record) -> list[str]:
    """`vault recall`, then the vault's pick list: what it lists, the vault hands to the courier."""
    op.run("vault", "recall", ok=(0, 3))
    listed = [row["barcode"] for row in op.report("pick-list-vault")]
    if listed:
        op.run("vault", "sent-back", *listed)
        for barcode in listed:
            record.place[barcode] = "returning"
    return listed


def _returns(op: Operator, record: Record, recalled: list[str]) -> None:
    """Yesterday's returns into the mail slots, as many at a time as there are slots, each batch imported."""
    for i in range(0, len(recalled), MAILSLOTS):
        batch = recalled[i:i + MAILSLOTS]
        op.mailslot("open")
        for barcode in batch:
            op.mailslot("insert", barcode)
        op.mailslot("close")
        job = op.json("vault", "import", "--wait", ok=(0, 3))
        assert job["state"] in ("completed", "completed with warnings"), job
        for barcode in batch:
            record.place[barcode] = "library"
            record.returned.append(barcode)


def _library_truth(vtl: Path) -> set[str]:
    from drivers.changer import MediaChanger
    with MediaChanger(f"local://{vtl}/changer") as c:
        inv = c.inventory()
    return {e.barcode for e in inv.slots + inv.drives + inv.mailslots if e.full and e.barcode
            and not e.barcode.startswith("CLN")}
