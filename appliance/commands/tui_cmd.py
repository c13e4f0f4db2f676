"""`tapeline tui`: the operator console, run as its own program (`python -m tui`).

The appliance never imports the console (the layers contract in pyproject.toml): this command replaces itself with
the console's process, passing the same --data and --config, so the console finds the same daemon.
"""

from __future__ import annotations

import click

from appliance.commands.output import Context
from appliance.launch import run_console


def passed(ctx: Context) -> list[str]:
    """The global options the console takes too, as `appliance.launch.console_args` finds them on the command line."""
    return ["--data", ctx.data_dir] * bool(ctx.data_dir) + ["--config", ctx.config_file] * bool(ctx.config_file)


def register(cli: click.Group) -> None:
    @cli.command(short_help="The operator console (a full-screen terminal app).")
    @click.pass_obj
    def tui(ctx: Context) -> None:
        """The operator console: Monitoring, Protection, Recovery, Reporting and Management, one key each (F1-F5).
        It talks to the running daemon; `tapeline up` starts one."""
        run_console(passed(ctx))
