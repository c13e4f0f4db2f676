"""What the CLI commands share: the per-run context (settings, client), tables, sizes, times, and waiting for a job.

Invariants: results go to stdout, progress lines and errors to stderr; with --json every command prints exactly
one JSON document on stdout (its result, or the error when it failed before having one). `wait_for_job` raises CompletedWithWarnings or
JobFailed for the exit code (cli.main maps them), after printing the final state.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

import click

from appliance import config
from appliance.errors import CompletedWithWarnings, JobFailed
from appliance.ops.messages import capped
from appliance.text import plural
from appliance.text import size, text_time

FINISHED = ("completed", "completed with warnings", "failed", "cancelled")
REFRESH = 1.0  # seconds between progress updates; the wait answers at once when the job ends
emitted = {"json": False}  # set once a command printed its JSON document (cli.main then prints no error document)


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
    emitted["json"] = True


@dataclass
class Context:
    as_json: bool
    data_dir: str | None
    config_file: str | None
    _settings: config.Settings | None = field(default=None, repr=False)
    _client: object = field(default=None, repr=False)

    @property
    def settings(self) -> config.Settings:
        if self._settings is None:
            self._settings = config.load(self.config_file, self.data_dir, client=True)
        return self._settings

    @property
    def client(self):
        if self._client is None:
            from appliance.api.client import Client
            self._client = Client(self.settings.socket_path)
        return self._client

    def emit(self, data, human) -> None:
        """Print `data` as JSON with --json, else call `human(data)` (which prints)."""
        if self.as_json:
            print_json(data)
        else:
            human(data)


def table(rows: list[list[str]], headers: list[str]) -> None:
    if not rows:
        return
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def when(iso: str | None) -> str:
    """An ISO time from the API in the local zone, to the second."""
    return text_time(iso)


def progress_text(job: dict) -> str:
    if job["state"] in ("completed", "completed with warnings"):
        return "100%"  # the last progress written may be from before the final step
    done, total = job.get("progress_done") or 0, job.get("progress_total")
    if total:
        return f"{100 * done / total:.0f}%"
    return str(done) if done and job["state"] not in FINISHED else ""


def progress_line(job: dict) -> str:
    """How far a job got, for a line of text: the percentage and the job's message. A bare count goes only where
    there is no message: without a total it has no unit (items for a sync, bytes for a restore from tape), and the
    message says the same with one."""
    shown = progress_text(job) if job.get("progress_total") or not job.get("progress_message") else ""
    return " ".join(x for x in (shown, job.get("progress_message") or "") if x)


def shown_warnings(job: dict) -> list[str]:
    """The warnings worth printing: not the reason again (a failed job often lists it), at most a screenful."""
    reason = job.get("reason") or ""
    kept = [w for w in job.get("warnings") or [] if not (reason and (w == reason or reason in w))]
    return capped(kept, job["id"])


def job_line(job: dict) -> str:
    text = " ".join(x for x in (f"job {job['id']}", job["kind"], job.get("group_name")) if x) + f": {job['state']}"
    if job.get("reason"):
        text += f" ({job['reason']})"
    return text


def restored_to(job: dict) -> str:
    """Where a restore put its files: they go under DIR by their original full paths."""
    target = job["result"]["restore"]["target"]
    paths = (job.get("params") or {}).get("paths") or []
    if target == "/":
        return "in place"
    if len(paths) == 1:
        return f"to {os.path.join(target, paths[0].lstrip('/'))}"
    return f"to {target} (under their original paths)"


def result_text(job: dict) -> str:
    """What a job did, in one phrase with its counts and sizes ("" when it did nothing worth a line)."""
    result = job.get("result") or {}
    if "restore" in result and "bytes_read_from_tape" in result["restore"]:
        r = result["restore"]
        return (f"restored {plural(r['files'], 'file')} ({size(r['bytes'])}) {restored_to(job)} from tape set "
                f"{r['set']}: {size(r['bytes_read_from_tape'])} read, {plural(len(r['cartridges_loaded']), 'cartridge')}"
                f" loaded")
    if "restore" in result:
        r = result["restore"]
        return f"restored {plural(r['files'], 'file')} ({size(r['bytes'])}) {restored_to(job)}"
    if "tape" in result:
        r = result["tape"]
        rate = f", {r['mb_s']} MB/s" if r.get("mb_s") else ""
        checked = ", verified" if "verify" in result else ""
        return (f"tape set {r['set']} ({r['kind']}): {plural(r['files'], 'file')} ({size(r['bytes'])}) on "
                f"{', '.join(r['cartridges'])} in {r['seconds']} s{rate}{checked}")
    if "verify" in result:
        r = result["verify"]
        return (f"cartridge {r['barcode']}: {plural(r['frames_checked'], 'frame')} of {plural(r['sets'], 'set')} "
                f"checked, {size(r['bytes_read'])} read, {plural(len(r['problems']), 'problem')}")
    if "rebuild" in result:
        r = result["rebuild"]
        return (f"{plural(r['sets'], 'tape set')} found on {plural(r['cartridges'], 'cartridge')} "
                f"({size(r['bytes_read'])} read of {size(r['bytes_on_tape'])} on tape)")
    if "point" in result:
        p, r = result["point"], result.get("sync") or {}
        what = "recovery point" if job["kind"] == "point" else "sync point"
        return (f"{what} {p['id']}: {plural(p['files'], 'file')} ({size(p.get('bytes'))}), "
                f"{r.get('files_changed', 0)} changed, {size(r.get('new_bytes', 0))} new")
    if "check" in result:
        r = result["check"]
        damaged = len(r.get("damaged_point_ids") or r.get("damaged_points") or [])
        return (f"{plural(r['chunks_checked'], 'chunk')} checked, {r['repaired']} repaired, "
                f"{plural(damaged, 'damaged point')}")
    if "prune" in result:
        r = result["prune"]
        removed = r.get("removed_points")
        removed = removed if isinstance(removed, int) else len(removed or [])
        return f"{plural(removed, 'recovery point')} removed, {size(r['bytes_freed'])} freed"
    if "removed_points" in result:
        return f"{plural(result['removed_points'], 'recovery point')} removed"
    return result.get("summary") or ""  # jobs that say what they did in one line (media jobs)


def result_line(job: dict) -> str:
    """The line a waited-for job ends with, on a terminal or not: its state, then what it did."""
    text = job_line(job)
    done = result_text(job) if job["state"] in ("completed", "completed with warnings") else ""
    return f"{text}: {done}" if done else text


def started(ctx: Context, answer: dict, kind: str, name: str, wait: bool) -> None:
    """After a request that started a job: wait for it, or say how to follow it."""
    job_id = answer["job"]
    if wait:
        wait_for_job(ctx, job_id)
        return
    if ctx.as_json:
        print_json(answer)
    else:
        note = " (joined the one already queued)" if answer.get("coalesced") else ""
        click.echo(f"job {job_id}: {kind} of {name} queued{note}; follow it with `tapeline job {job_id}`")


def follow_job(ctx: Context, job_id: int) -> dict:
    """The job once it ended; meanwhile a progress bar on a terminal, else progress lines (none with --json)."""
    client = ctx.client
    tty = sys.stderr.isatty() and not ctx.as_json
    try:
        return _follow_tty(client, job_id) if tty else _follow_plain(client, job_id, quiet=ctx.as_json)
    except KeyboardInterrupt:
        click.echo(f"stopped waiting; job {job_id} goes on (`tapeline job {job_id}`, `tapeline cancel {job_id}`)",
                   err=True)
        raise


def wait_for_job(ctx: Context, job_id: int) -> dict:
    job = follow_job(ctx, job_id)
    if ctx.as_json:
        print_json(job)
    else:
        click.echo(result_line(job))
        for w in shown_warnings(job):
            click.echo(f"  warning: {w}")
    if job["state"] == "completed with warnings":
        raise CompletedWithWarnings(f"job {job_id} completed with warnings", f"read them with `tapeline job {job_id}`")
    if job["state"] in ("failed", "cancelled"):
        fix = (job.get("result") or {}).get("fix") or f"see `tapeline job {job_id}`"
        raise JobFailed(f"job {job_id} {job['state']}: {job.get('reason') or 'no reason given'}", fix)
    return job


def _follow_plain(client, job_id: int, quiet: bool) -> dict:
    last_line, last_time = None, 0.0
    while True:
        job = client.wait(job_id, 30.0 if quiet else REFRESH)
        if job["state"] in FINISHED:
            return job
        line = " ".join(x for x in (f"job {job_id} {job['kind']} {job.get('group_name') or ''}:", job["state"],
                                    progress_line(job)) if x)
        if not quiet and line != last_line and time.monotonic() - last_time >= 1.0:
            click.echo(line, err=True)
            last_line, last_time = line, time.monotonic()


def _follow_tty(client, job_id: int) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[message]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"job {job_id}", total=None, message="queued")
        while True:
            job = client.wait(job_id, REFRESH / 4)
            if job["state"] in FINISHED:
                return job
            bar.update(task, description=f"{job['kind']} {job.get('group_name') or ''}",
                       completed=job.get("progress_done") or 0, total=job.get("progress_total"),
                       message=(job.get("progress_message") or job["state"])[:60])
