"""`tapeline catalog rebuild`: the catalog's index made again from the store alone."""

from __future__ import annotations

import click

from appliance.commands.output import Context


def register(cli: click.Group) -> None:
    @cli.group()
    def catalog() -> None:
        """The catalog (an index of the store; the store can rebuild it)."""

    @catalog.command()
    @click.pass_obj
    def rebuild(ctx: Context) -> None:
        """Re-index every group's recovery points and file versions from the store (no job may be running)."""
        ctx.emit(ctx.client.rebuild_catalog(), lambda r: click.echo(
            f"catalog rebuilt: {len(r['groups'])} group(s), {r['points']} recovery point(s)"
            + (f"; groups created: {', '.join(r['created_groups'])}" if r["created_groups"] else "")))
