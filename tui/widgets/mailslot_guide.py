"""The guided export and import through the mail slots: a dialog that says, step by step, what the operator's hands
do at the library while the vault job runs, and goes on by itself when the library shows it done.

Export: the cartridges ready to go (`/v1/vault/offsite-ready`); Enter starts `vault export`; while the job waits
for the operator it says "take the cartridges out of the mail slots" with their barcodes; once the job has ended,
the last batch is still in the mail slots: the dialog says so, and takes a fast inventory each look until they are
gone. Import: what is expected back (courier-retrieve) and what is in the mail slots now (a fast inventory each
look); Enter starts `vault import`; its end says what was put away and any discrepancy.

Invariants: the dialog only reads and starts jobs; Escape closes it at any step and the job goes on (Monitoring
shows it). Every look at the daemon runs in a thread worker; a failed look is shown in the dialog, not raised.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from appliance.errors import TapelineError
from appliance.text import plural

LOOK_SECONDS = 1.0
RUNNING = ("queued", "running")


def listed(carts: list[dict]) -> str:
    """Cartridges one a line: barcode, where, pool, vault."""
    lines = [f"  {c['barcode']:<10} {c.get('where') or '-':<14} {c.get('pool') or '-':<10} {c.get('vault') or ''}"
             for c in carts]
    return "\n".join(line.rstrip() for line in lines) or "  (none)"


class MailSlotGuide(ModalScreen[None]):
    DEFAULT_CSS = """
    MailSlotGuide { align: center middle; }
    #guide { width: 96; height: auto; max-height: 90%; border: thick $primary; background: $surface; padding: 1 2; }
    #guide-title { text-style: bold; margin-bottom: 1; }
    #guide-step { text-style: bold; color: $warning; margin-bottom: 1; }
    #guide-detail { height: auto; max-height: 20; }
    .guide-hint { color: $text-muted; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("enter", "start", "Start", priority=True)]

    def __init__(self, kind: str, library: str | None):
        super().__init__()
        self.kind = kind  # "export" or "import"
        self.library = library  # the library an import takes from (None: the only one)
        self.job_id: int | None = None
        self.ejected: list[str] = []  # the export's cartridges, once it has ended
        self.stage = "intro"  # intro, running, ended, done
        self.seen: dict = {}

    def compose(self) -> ComposeResult:
        title = ("Export to the vault through the mail slots" if self.kind == "export" else
                 f"Import through the mail slots of library {self.library or '(the only one)'}")
        with Vertical(id="guide"):
            yield Label(title, id="guide-title")
            yield Static("Looking at the library…", id="guide-step", markup=False)
            with VerticalScroll(id="guide-scroll"):
                yield Static("", id="guide-detail", markup=False)
            yield Static("", id="guide-hint", classes="guide-hint", markup=False)

    def on_mount(self) -> None:
        self.look()
        self.set_interval(LOOK_SECONDS, self.look)

    @property
    def step(self) -> str:
        return str(self.query_one("#guide-step", Static).render())

    def say(self, step: str, detail: str, hint: str) -> None:
        self.query_one("#guide-step", Static).update(step)
        self.query_one("#guide-detail", Static).update(detail)
        self.query_one("#guide-hint", Static).update(hint)

    # -- looking --------------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="guide")
    def look(self) -> None:
        daemon = self.app.daemon
        try:
            seen: dict = {"stage": self.stage}
            if self.job_id is not None:
                seen["job"] = daemon.job(self.job_id)
            if self.kind == "export" and self.stage == "intro":
                seen["ready"] = daemon.offsite_ready()
            elif (self.kind == "import" and self.stage == "intro") or self.stage == "ended":
                # A fast inventory: what the operator put in or took out is seen at once.
                for name in [self.library] if self.library else [lib["name"] for lib in daemon.libraries()]:
                    daemon.inventory(name)
            media = daemon.media()
            seen["mailslots"] = [c for c in media if c["location"] == "mailslot"
                                 and (self.library is None or c.get("library") == self.library)]
            seen["expected"] = [c for c in media if c.get("rotation") == "courier-retrieve"]
        except TapelineError as exc:
            self.app.call_from_thread(self.failed_look, exc)
            return
        self.app.call_from_thread(self.show, seen)

    def failed_look(self, exc: TapelineError) -> None:
        self.query_one("#guide-hint", Static).update(f"Could not look at the library: {exc.message}"
                                                     + (f"\nFix: {exc.fix}" if exc.fix else ""))

    def show(self, seen: dict) -> None:
        if seen["stage"] != self.stage:
            return  # looked before the stage moved on
        self.seen = seen
        job = seen.get("job")
        if job is not None and self.stage == "running" and job["state"] not in RUNNING:
            self.ended(job)
        if self.kind == "export":
            self.show_export(seen, job)
        else:
            self.show_import(seen, job)

    def ended(self, job: dict) -> None:
        result = job.get("result") or {}
        self.ejected = [e["barcode"] for e in result.get("ejected", [])]
        self.stage = "ended" if self.kind == "export" and job["state"] in ("completed", "completed with warnings") \
            else "done"

    def show_export(self, seen: dict, job: dict | None) -> None:
        in_slots = seen["mailslots"]
        if self.stage == "intro":
            ready = seen["ready"]
            if not ready:
                return self.say("Nothing is ready to go offsite today.", "", "Escape closes.")
            goes = "goes" if len(ready) == 1 else "go"
            return self.say(f"Step 1 of 3: {plural(len(ready), 'cartridge')} {goes} to the vault today. Press Enter "
                            "to start the export.", "barcode    where          pool       to vault\n" + listed(ready),
                            "The library ejects them into the mail slots, in batches as many as the slots hold. "
                            "Escape closes this guide.")
        message = (job or {}).get("progress_message") or ""
        waiting = "\n".join(f"  mail slot {c['location_number']}: {c['barcode']}" for c in
                            sorted(in_slots, key=lambda c: c["location_number"] or 0))
        if self.stage == "running":
            if message.startswith("empty the mail slots"):
                return self.say("Step 2 of 3: remove the cartridges from the mail slots and shut the door: the "
                                "export goes on by itself.", f"{message}\n{waiting}", self._job_hint())
            return self.say("Step 2 of 3: the library ejects the cartridges…", message, self._job_hint())
        if self.stage == "ended":
            left = [c for c in in_slots if c["barcode"] in self.ejected]
            if left:
                return self.say("Step 3 of 3: remove the cartridges from the mail slots and hand them to the "
                                "courier with the pick list.", "\n".join(
                                    f"  mail slot {c['location_number']}: {c['barcode']}" for c in left),
                                "The guide sees them go (a fast inventory each second). Escape closes it.")
            self.stage = "done"
        self.say(*self._done(job))

    def show_import(self, seen: dict, job: dict | None) -> None:
        if self.stage == "intro":
            ours = [c for c in seen["mailslots"] if c.get("rotation") != "courier"]  # not waiting for the courier
            expected = seen["expected"]
            return self.say("Step 1 of 3: put the cartridges coming back into the mail slots and shut the door, "
                            "then press Enter to import them.",
                            f"Expected back from the vault ({len(expected)}):\n" + listed(expected)
                            + f"\n\nIn the mail slots now ({len(ours)}):\n"
                            + "\n".join(f"  mail slot {c['location_number']}: {c['barcode']}" for c in ours),
                            "The guide looks at the mail slots each second. Escape closes it.")
        if self.stage == "running":
            return self.say("Step 2 of 3: importing the cartridges into free slots…",
                            (job or {}).get("progress_message") or "", self._job_hint())
        self.say(*self._done(job))

    def _job_hint(self) -> str:
        return f"Job {self.job_id}. Escape closes this guide: the job goes on (Monitoring, F1, shows it)."

    def _done(self, job: dict | None) -> tuple[str, str, str]:
        job = job or {}
        result = job.get("result") or {}
        summary = result.get("summary") or job.get("reason") or ""
        moved = [f"  {e['barcode']:<10} out through mail slot {e['mailslot']}, case {e['case']}"
                 for e in result.get("ejected", [])]
        moved += [f"  {e['barcode']:<10} into slot {e['slot']} ({e['as']})" for e in result.get("imported", [])]
        warnings = [f"  ! {w}" for w in job.get("warnings") or []]
        if job.get("state") in ("completed", "completed with warnings"):
            return (f"Done: the {self.kind} {job['state']}.", "\n".join([summary, *moved, *warnings]),
                    "Escape closes this guide.")
        warnings = "\n".join(warnings)
        return (f"The {self.kind} {job.get('state', 'ended')}: {job.get('reason') or ''}",
                (f"Fix: {job['fix']}\n" if job.get("fix") else "") + warnings, "Escape closes this guide.")

    # -- acting ---------------------------------------------------------------------------------------------------

    def action_start(self) -> None:
        if self.stage != "intro" or self.job_id is not None:
            return
        if self.kind == "export" and not self.seen.get("ready"):
            return
        daemon = self.app.daemon
        self.stage = "running"
        self.say(f"Starting the {self.kind}…", "", "")
        self.start_job(daemon.vault_export if self.kind == "export" else
                       (lambda: daemon.vault_import(self.library)))

    @work(thread=True, group="guide-start")
    def start_job(self, start) -> None:
        try:
            answer = start()
        except TapelineError as exc:
            self.app.call_from_thread(self.refused, exc)
            return
        self.app.call_from_thread(setattr, self, "job_id", answer["job"])

    def refused(self, exc: TapelineError) -> None:
        self.stage = "done"
        self.say(f"The {self.kind} was refused: {exc.message}", f"Fix: {exc.fix}" if exc.fix else "",
                 "Escape closes this guide.")
