"""`tapeline jobs | job ID [--wait] | cancel ID`."""

from __future__ import annotations

import json

import click

from appliance.commands.output import (Context, job_line, progress_text, shown_warnings, size, table, wait_for_job,
                                       when)


def show_job(job: dict) -> None:
    click.echo(job_line(job))
    click.echo(f"  requested  {when(job['created'])} by {job['requested_by']}")
    click.echo(f"  started    {when(job['started'])}")
    click.echo(f"  finished   {when(job['finished'])}")
    if job["state"] == "running":
        click.echo(f"  progress   {progress_text(job)} {job.get('progress_message') or ''}")
    for w in shown_warnings(job):
        click.echo(f"  warning    {w}")
    result = job.get("result") or {}
    if "sync" in result:
        r = result["sync"]
        click.echo(f"  sync       {r['files_scanned']} files scanned, {r['files_changed']} read, "
                   f"{size(r['new_bytes'])} new, {size(r['stored_bytes'])} stored, {r['duration_s']} s")
    if "point" in result:
        click.echo(f"  point      {result['point']['id']} ({result['point']['snapshot_id']})")
    for key in ("check", "prune", "restore"):
        if key in result:
            click.echo(f"  {key:<10} {json.dumps(result[key])}")


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
                    (j.get("reason") or j.get("progress_message") or "")[:60]] for j in js],
                  ["ID", "KIND", "GROUP", "STATE", "PROGRESS", "REQUESTED", "REASON"])
        ctx.emit(ctx.client.jobs(limit, state), human)

    @cli.command()
    @click.argument("job_id", type=int)
    @click.option("--wait", is_flag=True, help="Block with a progress bar until the job ends.")
    @click.pass_obj
    def job(ctx: Context, job_id, wait) -> None:
        """One job: state, progress, result, warnings."""
        if wait:
            wait_for_job(ctx, job_id)
        else:
            ctx.emit(ctx.client.job(job_id), show_job)

    @cli.command()
    @click.argument("job_id", type=int)
    @click.pass_obj
    def cancel(ctx: Context, job_id) -> None:
        """Cancel a queued or running job (a running one stops at its next safe point)."""
        ctx.emit(ctx.client.cancel(job_id), lambda j: click.echo(
            f"job {j['id']}: cancelled" if j["state"] == "cancelled" else f"job {j['id']}: cancel requested"))
