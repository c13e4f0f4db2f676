"""`tapeline group create | list | show | change | pause | resume | delete`."""

from __future__ import annotations

import os

import click

from appliance.commands.output import Context, table, wait_for_job, when
from appliance.text import format_duration


def _source(path: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> dict:
    return {"path": os.path.abspath(path), "include": list(include), "exclude": list(exclude)}


def _times(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [t.strip() for t in value.split(",") if t.strip()]


def show_group(g: dict) -> None:
    click.echo(f"group {g['name']}{' (paused)' if g['paused'] else ''}")
    click.echo(f"  sync every      {format_duration(g['sync_seconds'])}")
    click.echo(f"  recovery points {', '.join(g['point_times']) or 'none scheduled'}")
    click.echo(f"  keep            {format_duration(g['keep_seconds'])}")
    click.echo(f"  created         {when(g['created'])}")
    for s in g["sources"]:
        extra = "".join([f"  include {','.join(s['include'])}" if s["include"] else "",
                         f"  exclude {','.join(s['exclude'])}" if s["exclude"] else ""])
        click.echo(f"  source          {s['path']}{extra}")
    tape = g.get("tape")
    if tape:
        click.echo(f"  tape            full on {tape['full']}"
                   + (f", incremental on {tape['incremental']}" if tape["incremental"] else "")
                   + f", to pool {tape['pool']}")


def register(cli: click.Group) -> None:
    @cli.group(short_help="Protection groups: what is protected, how often, how long.")
    def group() -> None:
        """Protection groups: sources with a sync frequency, recovery-point times and a retention range."""

    @group.command("create")
    @click.argument("name")
    @click.option("--source", "sources", multiple=True, required=True, metavar="PATH",
                  help="Directory to protect (repeat for several).")
    @click.option("--include", multiple=True, metavar="PATTERN", help="Keep only files matching (repeatable).")
    @click.option("--exclude", multiple=True, metavar="PATTERN", help="Leave out matching files (repeatable).")
    @click.option("--sync", metavar="DURATION", help="Sync frequency, e.g. 15m (default from the configuration).")
    @click.option("--points", metavar="HH:MM,...", help="Recovery-point times, e.g. 08:00,11:00,14:00,17:00,20:00.")
    @click.option("--keep", metavar="DURATION", help="Retention range, e.g. 12d.")
    @click.pass_obj
    def create(ctx: Context, name, sources, include, exclude, sync, points, keep) -> None:
        """Create group NAME protecting the --source directories."""
        g = ctx.client.create_group(name, [_source(p, include, exclude) for p in sources], sync, _times(points), keep)
        ctx.emit(g, lambda g: (click.echo(f"created group {g['name']}"), show_group(g)))

    @group.command("list")
    @click.pass_obj
    def list_(ctx: Context) -> None:
        """All protection groups."""
        groups = ctx.client.groups()

        def human(groups):
            if not groups:
                click.echo("no protection groups; create one with `tapeline group create NAME --source PATH`")
            table([[g["name"], "paused" if g["paused"] else "active", format_duration(g["sync_seconds"]),
                    ",".join(g["point_times"]) or "-", format_duration(g["keep_seconds"]),
                    " ".join(s["path"] for s in g["sources"])] for g in groups],
                  ["NAME", "STATE", "SYNC", "POINTS", "KEEP", "SOURCES"])
        ctx.emit(groups, human)

    @group.command("show")
    @click.argument("name")
    @click.pass_obj
    def show(ctx: Context, name) -> None:
        """One group's settings and sources."""
        ctx.emit(ctx.client.group(name), show_group)

    @group.command("change")
    @click.argument("name")
    @click.option("--sync", metavar="DURATION")
    @click.option("--points", metavar="HH:MM,...", help="New recovery-point times (\"\" for none).")
    @click.option("--keep", metavar="DURATION")
    @click.option("--add-source", "add", multiple=True, metavar="PATH")
    @click.option("--remove-source", "remove", multiple=True, metavar="PATH")
    @click.pass_obj
    def change(ctx: Context, name, sync, points, keep, add, remove) -> None:
        """Change a group's schedule, retention or sources."""
        g = ctx.client.change_group(name, sync, _times(points), keep, [_source(p, (), ()) for p in add],
                                    [os.path.abspath(p) for p in remove])
        ctx.emit(g, show_group)

    @group.command("pause", short_help="Stop a group's scheduled syncs and points.")
    @click.argument("name")
    @click.pass_obj
    def pause(ctx: Context, name) -> None:
        """Stop scheduled syncs and points of a group (on-demand ones still run)."""
        ctx.emit(ctx.client.pause(name), lambda g: click.echo(f"group {g['name']} paused"))

    @group.command("resume")
    @click.argument("name")
    @click.pass_obj
    def resume(ctx: Context, name) -> None:
        """Schedule a paused group again."""
        ctx.emit(ctx.client.resume(name), lambda g: click.echo(f"group {g['name']} resumed"))

    @group.command("delete")
    @click.argument("name")
    @click.option("--purge", is_flag=True, help="Also delete its recovery points from the store (a job).")
    @click.option("--wait", is_flag=True, help="With --purge: block until the store is cleaned.")
    @click.pass_obj
    def delete(ctx: Context, name, purge, wait) -> None:
        """Stop protecting a group and drop it from the catalog. Without --purge its recovery points stay in the
        store (restorable after `tapeline catalog rebuild`, which brings the group back)."""
        answer = ctx.client.delete_group(name, purge)
        if answer.get("purge_job") and wait:
            if not ctx.as_json:
                click.echo(f"group {name} deleted; removing its recovery points from the store")
            wait_for_job(ctx, answer["purge_job"])
            return
        ctx.emit(answer, lambda g: click.echo(
            f"group {g['name']} deleted" + (f"; job {g['purge_job']} removes its recovery points from the store"
                                            if g.get("purge_job") else "")))
