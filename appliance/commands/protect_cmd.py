"""`tapeline sync | point | check | prune | points | versions | restore`."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta

import click

from appliance.commands.output import Context, size, started, table, when
from appliance.config import parse_duration
from appliance.errors import NotFound, UsageError
from appliance.text import plural


AT_FORMS = ('"YYYY-MM-DD HH:MM[:SS]" (local time), ISO 8601 with a zone (2026-01-05T14:00+01:00), '
            '"HH:MM" (today), or "DURATION ago" ("2h ago", "3d ago")')


def at_time(value: str | None) -> str | None:
    """--at TIME in one of AT_FORMS, as ISO 8601 with its offset (a time without a zone is local)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text.endswith(" ago"):
            t = datetime.now().astimezone() - timedelta(seconds=parse_duration(text[:-4]))
        elif re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", text):
            t = datetime.combine(date.today(), time.fromisoformat(text.zfill(len(text) + (text.index(":") == 1))))
        else:
            t = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise UsageError(f"--at {value!r} is not a time", f"write it as {AT_FORMS}") from None
    try:
        return (t if t.tzinfo else t.astimezone()).isoformat()
    except (OverflowError, ValueError, OSError):  # the calendar's first or last day, shifted by a zone
        raise UsageError(f"--at {value!r} is out of range", "give a time between the years 1 and 9999, a day or more "
                         "from either end") from None


def point_choice(ctx: Context, name: str, value: str | None) -> str | None:
    """--point: an ID from `tapeline points NAME` (IDs are global), a snapshot id, `latest` or `latest-N`."""
    m = re.fullmatch(r"latest(?:-(\d+))?", value or "")
    if m is None:
        return value
    points, back = ctx.client.points(name), int(m.group(1) or 0)
    if back >= len(points):
        raise NotFound(f"group '{name}' has {plural(len(points), 'recovery point')}, so no --point {value}",
                       f"list them with `tapeline points {name}`")
    return str(points[-1 - back]["id"])


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
    @click.option("--point", "point_id", metavar="ID",
                  help="Recovery point: its ID in `tapeline points NAME`, or latest, latest-1 (the one before), ...")
    @click.option("--at", "at", metavar="TIME",
                  help=f"The newest point at or before TIME: {AT_FORMS}.")
    @click.option("--to", "to", required=True, metavar="DIR", help="Directory to restore into.")
    @click.option("--overwrite", is_flag=True, help="Replace files that already exist in DIR.")
    @wait_opt
    @click.pass_obj
    def restore(ctx: Context, name, paths, point_id, at, to, overwrite, wait) -> None:
        """Restore files of group NAME (PATHs by their full original path; none: everything) into --to DIR, where
        they go under their original paths (--to / puts them back in place). Without --point or --at: the newest
        point."""
        if point_id and at:
            raise UsageError("--point and --at both given", "give one of them (or neither: the newest point)")
        at = at_time(at)
        answer = ctx.client.restore(name, os.path.abspath(to), point_choice(ctx, name, point_id), at,
                                    [os.path.abspath(p) for p in paths], overwrite)
        if not ctx.as_json and not wait:
            p = answer["point"]
            click.echo(f"restoring from recovery point {p['id']} ({when(p['time'])}) into {os.path.abspath(to)}")
        started(ctx, answer, "restore", name, wait)
