"""`tapeline jobs | job ID [--wait] | cancel ID`."""

from __future__ import annotations

import click

from appliance.commands.output import (FINISHED, Context, job_line, progress_line, progress_text, restored_to,
                                       shown_warnings, size, table, wait_for_job, when)
from appliance.text import plural


def show_job(job: dict) -> None:
    click.echo(job_line(job))
    click.echo(f"  requested  {when(job['created'])} by {job['requested_by']}")
    click.echo(f"  started    {when(job['started'])}")
    click.echo(f"  finished   {when(job['finished'])}")
    if job["state"] == "running":
        click.echo(f"  progress   {progress_line(job)}")
    for w in shown_warnings(job):
        click.echo(f"  warning    {w}")
    result = job.get("result") or {}
    if "sync" in result:
        r = result["sync"]
        # (the scan of a sync or of a recovery point alike; files_scanned counts directories and links too)
        click.echo(f"  scan       {plural(r['files_scanned'], 'entry', 'entries')}, "
                   f"{plural(r['files_changed'], 'file')} read, "
                   f"{size(r['new_bytes'])} new, {size(r['stored_bytes'])} stored, {r['duration_s']} s")
    if "point" in result:
        p = result["point"]
        click.echo(f"  point      {p['id']} ({p['snapshot_id']}): {plural(p['files'], 'file')}, "
                   f"{size(p.get('bytes'))}")
    if "check" in result:
        r = result["check"]
        damaged = ", ".join(map(str, r.get("damaged_point_ids") or r.get("damaged_points") or [])) or "none"
        healed = ", ".join(map(str, r.get("healed_point_ids") or []))
        click.echo(f"  check      {r['state']}: {plural(r['chunks_checked'], 'chunk')} checked, "
                   f"{r['repaired']} repaired, damaged points: {damaged}"
                   f"{f', whole again: {healed}' if healed else ''}, "
                   f"{plural(r['drift'], 'entry', 'entries')} changed in the source since")
    if "prune" in result:
        r = result["prune"]
        removed = r.get("removed_points")
        removed = removed if isinstance(removed, int) else len(removed or [])
        click.echo(f"  prune      {r['state']}: {plural(removed, 'point')} removed, "
                   f"{plural(r['packs_deleted'], 'pack')} deleted, {r['packs_rewritten']} rewritten, "
                   f"{size(r['bytes_freed'])} freed")
    if "restore" in result:
        r = result["restore"]
        click.echo(f"  restore    {plural(r['files'], 'file')}, {size(r['bytes'])} {restored_to(job)}")


def show_job_history(job: dict) -> None:
    show_job(job)
    for e in job.get("events") or []:
        click.echo(f"  {when(e['time'])}  {e['event']}{': ' + e['message'] if e['message'] else ''}")


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--limit", default=30, show_default=True)
    @click.option("--state", help="Only jobs in this state (queued, running, failed, ...).")
    @click.pass_obj
    def jobs(ctx: Context, limit, state) -> None:
        """Recent jobs, newest first."""
        def human(js):
            if not js:
                click.echo("no jobs yet")
            table([[j["id"], j["kind"], j.get("group_name") or "-", j["state"], progress_text(j) or "-",
                    when(j["created"]),
                    (j.get("reason") or ("" if j["state"] in FINISHED else j.get("progress_message")) or "")[:60]]
                   for j in js],
                  ["ID", "KIND", "GROUP", "STATE", "PROGRESS", "REQUESTED", "REASON"])
        ctx.emit(ctx.client.jobs(limit, state), human)

    @cli.command(short_help="One job: state, progress, result, warnings, history.")
    @click.argument("job_id", type=int)
    @click.option("--wait", is_flag=True, help="Block with a progress bar until the job ends.")
    @click.pass_obj
    def job(ctx: Context, job_id, wait) -> None:
        """One job: state, progress, result, warnings, and its history (queued, started, retried, ended)."""
        if wait:
            wait_for_job(ctx, job_id)
        else:
            ctx.emit({**ctx.client.job(job_id), "events": ctx.client.job_events(job_id)}, show_job_history)

    @cli.command(short_help="Cancel a queued or running job.")
    @click.argument("job_id", type=int)
    @click.pass_obj
    def cancel(ctx: Context, job_id) -> None:
        """Cancel a queued or running job (a running one stops at its next safe point)."""
        ctx.emit(ctx.client.cancel(job_id), lambda j: click.echo(
            f"job {j['id']}: cancelled" if j["state"] == "cancelled" else f"job {j['id']}: cancel requested"))
