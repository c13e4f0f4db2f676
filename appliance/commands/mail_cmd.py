"""`tapeline mail test`: a test mail through the configured server, now, with the cause and fix when it fails."""

from __future__ import annotations

import click

from appliance.commands.output import Context


def register(cli: click.Group) -> None:
    @cli.group()
    def mail() -> None:
        """Mail of alerts, summaries and reports."""

    @mail.command("test")
    @click.pass_obj
    def test(ctx: Context) -> None:
        """Send a test mail to mail.recipients through mail.host, now (mail waiting in the outbox follows)."""
        def human(r):
            click.echo(f"test mail sent through {r['server']} ({r['security']}) to {', '.join(r['recipients'])}")
            for addr, reply in r["refused"].items():
                click.echo(f"refused: {addr}: the server answered {reply}")
        ctx.emit(ctx.client.mail_test(), human)
