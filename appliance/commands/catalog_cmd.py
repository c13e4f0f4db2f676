"""`tapeline catalog rebuild`: the catalog's index made again from the store alone; `tapeline catalog forget-missing`:
the operator's word that the points an alert says the store lacks are gone for good."""

from __future__ import annotations

import click

from appliance.commands.output import Context
from appliance.text import plural


def register(cli: click.Group) -> None:
    @cli.group()
    def catalog() -> None:
        """The catalog (an index of the store; the store can rebuild it)."""

    @catalog.command()
    @click.pass_obj
    def rebuild(ctx: Context) -> None:
        """Re-index every group's recovery points and file versions from the store (no job may be running)."""
        ctx.emit(ctx.client.rebuild_catalog(), lambda r: click.echo(
            f"catalog rebuilt: {plural(len(r['groups']), 'group')}, {plural(r['points'], 'recovery point')}"
            + (f"; groups created: {', '.join(r['created_groups'])}" if r["created_groups"] else "")))

    @catalog.command("forget-missing")
    @click.pass_obj
    def forget_missing(ctx: Context) -> None:
        """Forget the recovery points the catalog has and the store does not (after an alert says so, and only if
        store.path names the right store): each such group is re-indexed from the store."""
        def human(r):
            forgotten = r["forgotten"]
            if not forgotten:
                click.echo("nothing to forget: the catalog has no point the store lacks")
            for name, n in forgotten.items():
                click.echo(f"group {name}: forgot {n} recovery point{'s' if n != 1 else ''} missing from the store")
        ctx.emit(ctx.client.forget_missing(), human)
