"""`tapeline vault forecast [--weeks N]`: the coming weeks of offsite rotation, day by day (docs/vault.md). Added to
the `vault` group vault_cmd.py creates."""

from __future__ import annotations

import click

from appliance.commands.output import Context, follow_job, table
from appliance.errors import CompletedWithWarnings, JobFailed
from appliance.text import plural


def _show(f: dict) -> None:
    pools = [p["pool"] for p in f["days"][0]["pools"]] if f["days"] else []
    if not pools:
        click.echo("no tape pool: nothing to forecast (`tapeline pool create`)")
        return
    for pool in pools:
        out = f["scratch_runs_out"][pool]
        click.echo(f"pool {pool}: " + (f"scratch runs out on {out}: a backup that day finds no cartridge"
                                       if out else f"scratch lasts the {plural(f['weeks'], 'week')}"))
    rows = []
    for day in f["days"]:
        for p in day["pools"]:
            back = ", ".join(p["back"])
            rows.append([day["day"], p["pool"], p["in_library"], p["scratch"], p["offsite"], p["written"],
                         len(p["sent"]), back or "-", p["short"] or ""])
    click.echo()
    table(rows, ["DAY", "POOL", "LIBRARY", "SCRATCH", "OFFSITE", "WRITTEN", "SENT", "BACK", "SHORT"])
    click.echo()
    for line in f["assumptions"]:
        click.echo(f"assumed: {line}")


def extend_vault(vault: click.Group) -> None:

    @vault.command(short_help="The coming weeks of rotation, day by day, from the real policies.")
    @click.option("--weeks", type=click.IntRange(1, 104), default=4, show_default=True)
    @click.pass_obj
    def forecast(ctx: Context, weeks) -> None:
        """Simulate the coming weeks by running the appliance's own policy code on a simulated clock over a copy of
        the catalog: each group's tape schedule, its pool's allocation and retention, exports and recalls. Per day
        and pool: cartridges in the library holding data (LIBRARY), scratch ones it may write (SCRATCH), those in a
        vault or on the way (OFFSITE), sets written, cartridges sent, those coming back, and backups that would
        find no cartridge (SHORT). Exit 3 when scratch runs out within the period. It runs as a job (`vault-forecast`)
        and the command waits for it, with a progress bar on a terminal."""
        job_id = ctx.client.start_vault_forecast(weeks)["job"]
        job = follow_job(ctx, job_id)  # a year of a big site takes longer than one answer may: a job, with its bar
        if job["state"] != "completed":
            raise JobFailed(f"job {job_id} (the forecast) {job['state']}: {job.get('reason') or 'no reason given'}",
                            f"see `tapeline job {job_id}`")
        answer = job["result"]["forecast"]
        ctx.emit(answer, _show)
        dry = {pool: day for pool, day in answer["scratch_runs_out"].items() if day}
        if dry:
            pool, day = min(dry.items(), key=lambda x: x[1])
            raise CompletedWithWarnings(f"scratch runs out in pool {pool} on {day}",
                                        "put more cartridges into the library and label them for the pool "
                                        f"(`tapeline media label BARCODE... --pool {pool}`), or see what a shorter "
                                        f"retention would free (`tapeline vault dry-run {pool} --retention ...`)")
