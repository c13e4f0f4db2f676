"""`tapeline ls | find`: a recovery point's tree and files found by name across a group's points."""

from __future__ import annotations

import os
from datetime import datetime

import click

from appliance.commands.output import Context, size, table, when
from appliance.commands.protect_cmd import point_choice


def _mtime(ns: int) -> str:
    return when(datetime.fromtimestamp(ns / 1e9).astimezone().isoformat()) if ns else "-"


def register(cli: click.Group) -> None:
    @cli.command(short_help="List a directory of a recovery point.")
    @click.argument("name")
    @click.argument("path", required=False)
    @click.option("--point", "point_id", metavar="ID",
                  help="Recovery point: its ID in `tapeline points NAME`, or latest, latest-1 (the one before), ...")
    @click.pass_obj
    def ls(ctx: Context, name, path, point_id) -> None:
        """List directory PATH (its full path on the protected machine) as recovery point --point of group NAME
        holds it; without PATH, the group's sources. Without --point: the newest point."""
        answer = ctx.client.tree(name, os.path.abspath(path) if path else None, point_choice(ctx, name, point_id))

        def human(a):
            p = a["point"]
            click.echo(f"{a['path'] or 'sources of group ' + name} in recovery point {p['id']} ({when(p['time'])})")
            if not a["entries"]:
                click.echo("(empty)")
            table([[e["kind"], size(e["size"]) if e["kind"] == "file" else "", _mtime(e["mtime_ns"]),
                    e["name"] + ("/" if e["kind"] == "dir" and a["path"] else "")] for e in a["entries"]],
                  ["KIND", "SIZE", "MODIFIED", "NAME"])
        ctx.emit(answer, human)

    @cli.command(short_help="Find files by name across a group's recovery points.")
    @click.argument("name")
    @click.argument("pattern")
    @click.option("--limit", type=click.IntRange(1, 100_000), default=None,
                  help="At most this many versions (default 1000).")
    @click.pass_obj
    def find(ctx: Context, name, pattern, limit) -> None:
        """Every version, in any recovery point of group NAME, of the files whose name matches PATTERN: a shell
        pattern ('*.conf', any case), or part of the name."""
        answer = ctx.client.find(name, pattern, limit)

        def human(a):
            if not a["versions"]:
                click.echo(f"no file named like {pattern!r} in group {name}'s recovery points")
            table([[v["path"], v["first_point"]["id"], v["last_point"]["id"], when(v["last_point"]["time"]),
                    v["kind"], size(v["size"]), _mtime(v["mtime_ns"]), "current" if v["current"] else ""]
                   for v in a["versions"]],
                  ["PATH", "FROM", "TO", "TO TIME", "KIND", "SIZE", "MODIFIED", ""])
            if a["truncated"]:
                click.echo(f"(more matched: give a narrower pattern, or --limit)", err=True)
        ctx.emit(answer, human)
