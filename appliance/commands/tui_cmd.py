"""`tapeline tui`: the operator console, run as its own program (`python -m tui`).

The appliance never imports the console (the layers contract in pyproject.toml): this command replaces itself with
the console's process, passing the same --data and --config, so the console finds the same daemon.
"""

from __future__ import annotations

import os
import sys

import click

from appliance.commands.output import Context


def console_argv(ctx: Context) -> list[str]:
    argv = [sys.executable, "-m", "tui"]
    if ctx.data_dir:
        argv += ["--data", ctx.data_dir]
    if ctx.config_file:
        argv += ["--config", ctx.config_file]
    return argv


def register(cli: click.Group) -> None:
    @cli.command(short_help="The operator console (a full-screen terminal app).")
    @click.pass_obj
    def tui(ctx: Context) -> None:
        """The operator console: Monitoring, Protection, Recovery, Reporting and Management, one key each (F1-F5).
        It talks to the running daemon; `tapeline up` starts one."""
        argv = console_argv(ctx)
        os.execv(argv[0], argv)
