"""`tapeline sync | point | check | prune | points | versions | restore`."""

from __future__ import annotations

import os
from datetime import datetime

import click

from appliance.commands.output import Context, size, started, table, when
from appliance.errors import NotFound, UsageError


def _at(value: str | None) -> str | None:
    """--at TIME: ISO 8601 or "YYYY-MM-DD HH:MM[:SS]"; without a zone it is local time."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--at {value!r} is not a time", 'write it as "2026-01-05 14:00" or 2026-01-05T14:00') from None
    return (t if t.tzinfo else t.astimezone()).isoformat()


def register(cli: click.Group) -> None:
    wait_opt = click.option("--wait", is_flag=True, help="Block with a progress bar until the job ends.")

    accept_opt = click.option("--accept-deletions", is_flag=True,
                              help="Record a source that lost most of its files as it is (a sync refuses that "
                                   "by default, in case the source is not mounted).")

    @cli.command(short_help="Sync group NAME now.")
    @click.argument("name")
    @accept_opt
    @wait_opt
    @click.pass_obj
    def sync(ctx: Context, name, accept_deletions, wait) -> None:
        """Sync group NAME now (then check the new point and prune by retention)."""
        started(ctx, ctx.client.sync(name, accept_deletions), "sync", name, wait)

    @cli.command()
    @click.argument("name")
    @accept_opt
    @wait_opt
    @click.pass_obj
    def point(ctx: Context, name, accept_deletions, wait) -> None:
        """Make a recovery point of group NAME now."""
        started(ctx, ctx.client.point(name, accept_deletions), "recovery point", name, wait)

    @cli.command()
    @click.argument("name")
    @click.option("--full", is_flag=True, help="Re-read every chunk of every recovery point.")
    @wait_opt
    @click.pass_obj
    def check(ctx: Context, name, full, wait) -> None:
        """Consistency check of group NAME's replica."""
        started(ctx, ctx.client.check(name, full), "check", name, wait)

    @cli.command()
    @click.argument("name")
    @wait_opt
    @click.pass_obj
    def prune(ctx: Context, name, wait) -> None:
        """Apply group NAME's retention now (every sync does it too)."""
        started(ctx, ctx.client.prune(name), "prune", name, wait)

    @cli.command()
    @click.argument("name")
    @click.pass_obj
    def points(ctx: Context, name) -> None:
        """Recovery points of group NAME, oldest first."""
        def human(pts):
            if not pts:
                click.echo(f"group {name} has no recovery point yet; make one with `tapeline sync {name} --wait`")
            table([[p["id"], when(p["time"]), p["kind"], p["state"], p["files"], size(p["bytes"]), p["snapshot_id"]]
                   for p in pts], ["ID", "TIME", "KIND", "STATE", "FILES", "SIZE", "SNAPSHOT"])
        ctx.emit(ctx.client.points(name), human)

    @cli.command(short_help="Every version of a file or directory.")
    @click.argument("path")
    @click.pass_obj
    def versions(ctx: Context, path) -> None:
        """Every version of a file or directory (its full path on the protected machine)."""
        path = os.path.abspath(path)

        found = ctx.client.versions(path)
        if not found:
            raise NotFound(f"no versions of {path}", "it is not under a protected source or not synced yet: see "
                           "`tapeline group list`, or sync with `tapeline sync NAME --wait`")

        def human(vs):
            table([[v["group"], v["first_point"]["id"], when(v["first_point"]["time"]), v["last_point"]["id"],
                    when(v["last_point"]["time"]), v["kind"], size(v["size"]),
                    when(datetime.fromtimestamp(v["mtime_ns"] / 1e9).astimezone().isoformat()),
                    "current" if v["current"] else ""] for v in vs],
                  ["GROUP", "FROM", "FROM TIME", "TO", "TO TIME", "KIND", "SIZE", "MODIFIED", ""])
        ctx.emit(found, human)

    @cli.command(short_help="Restore files of group NAME from a recovery point.")
    @click.argument("name")
    @click.argument("paths", nargs=-1, metavar="[PATH]...")
    @click.option("--point", "point_id", metavar="ID", help="Recovery point id (see `tapeline points NAME`).")
    @click.option("--at", "at", metavar="TIME", help="The newest point at or before TIME (local time).")
    @click.option("--to", "to", required=True, metavar="DIR", help="Directory to restore into.")
    @click.option("--overwrite", is_flag=True, help="Replace files that already exist in DIR.")
    @wait_opt
    @click.pass_obj
    def restore(ctx: Context, name, paths, point_id, at, to, overwrite, wait) -> None:
        """Restore files of group NAME (PATHs by their full original path; none: everything) into --to DIR."""
        if point_id and at:
            raise UsageError("--point and --at both given", "give one of them (or neither: the newest point)")
        answer = ctx.client.restore(name, os.path.abspath(to), point_id, _at(at), [os.path.abspath(p) for p in paths],
                                    overwrite)
        if not ctx.as_json and not wait:
            p = answer["point"]
            click.echo(f"restoring from recovery point {p['id']} ({when(p['time'])}) into {os.path.abspath(to)}")
        started(ctx, answer, "restore", name, wait)
