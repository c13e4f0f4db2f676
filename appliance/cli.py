"""The `tapeline` command: a thin layer over the API client (one module per verb group in appliance/commands/).

The contract (ARCHITECTURE.md, "The command line"): every command takes `--json`; exit 0 ok, 1 failed, 2 bad usage,
3 succeeded with warnings. Those codes are decided here, in `main()`, from the exception classes and nowhere else
(`errors.as_error` maps any other exception, as the API does): commands raise, they never call sys.exit. Errors are one line on stderr naming the cause and the fix (and, with
--json, `{"error", "fix", "exit_code", "type"}` on stdout when the command printed no document of its own); a usage
error's line is followed by click's usage line, for a person.
"""

from __future__ import annotations

import importlib
import json
import sys

import click

from appliance.commands import output
from appliance.commands.output import Context
from appliance.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, TapelineError, UsageError, as_error

# Every `tapeline` process pays for what it imports before its request reaches the daemon, so a command's module is
# imported only when that command runs (or `--help` lists them all). The table says where each command lives:
# module -> the top-level commands its register(cli) adds (tests/appliance/test_cli_start.py checks it against the
# modules themselves).
MODULES = {
    "daemon_cmd": ("serve", "up"),
    "status_cmd": ("alerts", "status"),
    "group_cmd": ("group",),
    "protect_cmd": ("check", "point", "points", "prune", "restore", "sync", "versions"),
    "browse_cmd": ("find", "ls"),
    "jobs_cmd": ("cancel", "job", "jobs"),
    "catalog_cmd": ("catalog",),
    "media_cmd": ("drive", "library", "media", "pool"),
    "tape_cmd": ("tape",),
    "report_cmd": ("report",),
    "plan_cmd": ("plan",),
    "mail_cmd": ("mail",),
    "tui_cmd": ("tui",),
    "vault_cmd": ("vault",),
}
# A group other modules add subcommands to: (module, function given the group), called once the group is made.
EXTENSIONS = {
    "group": (("tape_cmd", "extend_group"),),
    "media": (("tape_cmd", "extend_media"),),
    "pool": (("vault_cmd", "extend_pool"),),
    "vault": (("vault_jobs_cmd", "extend_vault"), ("vault_report_cmd", "extend_vault")),
}
HOME = {name: module for module, names in MODULES.items() for name in names}


class LazyGroup(click.Group):
    """The root group: a command's module is imported (and its commands registered) on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(HOME)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in HOME:
            self._load(HOME[cmd_name])
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # click suggests from the commands loaded so far: from all
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=list(HOME), ctx=ctx) from None

    def _load(self, module: str) -> None:
        importlib.import_module(f"appliance.commands.{module}").register(self)
        for name in MODULES[module]:
            command = self.commands[name]
            for extender, function in EXTENSIONS.get(name, ()):
                getattr(importlib.import_module(f"appliance.commands.{extender}"), function)(command)
            _add_global_options(command)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON on stdout).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), envvar="TAPELINE_DATA",
              help="Development data directory (everything under it, the API socket too). Env: TAPELINE_DATA.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (default /etc/tapeline/tapeline.toml).")
@click.pass_context
def cli(ctx: click.Context, as_json: bool, data_dir: str | None, config_file: str | None) -> None:
    """Tapeline: disk replicas kept current by frequent syncs, recovery points on a schedule, any version of any
    file restorable."""
    ctx.obj = Context(as_json=as_json, data_dir=data_dir, config_file=config_file)
    _state["json"] = as_json


_state = {"json": False}


def _late(attr: str):
    """The global options are accepted after the verb too (`tapeline up --data DIR`, `tapeline jobs --json`)."""
    def callback(ctx: click.Context, _param, value):
        if value:
            setattr(ctx.find_object(Context), attr, value)
            if attr == "as_json":
                _state["json"] = True
    return callback


def _add_global_options(command: click.Command) -> None:
    command.params += [
        click.Option(["--json", "as_json_late"], is_flag=True, expose_value=False, callback=_late("as_json"),
                     help="Machine-readable output (JSON on stdout)."),
        click.Option(["--data", "data_late"], type=click.Path(file_okay=False), expose_value=False,
                     callback=_late("data_dir"), help="Development data directory."),
        click.Option(["--config", "config_late"], type=click.Path(dir_okay=False), expose_value=False,
                     callback=_late("config_file"), help="Configuration file."),
    ]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_global_options(sub)


def _usage_error(exc: click.UsageError, as_json: bool) -> int:
    """`tapeline: CAUSE: FIX` first (what a script reads), then click's usage line for a person; with --json the
    error document on stdout too. (The --json flag may not have been parsed yet: the command line is looked at.)
    A command (or group) given without what it needs prints its help instead, as if asked for it."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        click.echo(exc.ctx.get_help())
        return EXIT_OK
    command = exc.ctx.command_path if exc.ctx else "tapeline"
    if isinstance(exc, (click.exceptions.NoSuchCommand, click.exceptions.NoSuchOption)):
        what, name = (("command", exc.command_name) if isinstance(exc, click.exceptions.NoSuchCommand)
                      else ("option", exc.option_name))
        lists = f"`{command} --help` lists them"
        err = UsageError(f"no such {what} {name!r}",
                         f"did you mean {exc.possibilities[0]!r}? ({lists})" if exc.possibilities else lists)
    else:
        err = UsageError(exc.format_message().rstrip("."), f"see `{command} --help`")
    click.echo(f"tapeline: {err}", err=True)
    if exc.ctx is not None and not isinstance(exc, click.exceptions.NoSuchCommand):
        click.echo(exc.ctx.get_usage(), err=True)
    if as_json:
        click.echo(json.dumps(err.to_payload()))
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and map what happened to the exit code (the one place that does)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = cli.main(args=args, prog_name="tapeline", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
    except click.exceptions.Abort:
        click.echo("tapeline: interrupted", err=True)
        code = EXIT_FAILED
    except click.UsageError as exc:
        code = _usage_error(exc, as_json=_state["json"] or "--json" in args)
    except click.ClickException as exc:
        err = (UsageError if exc.exit_code == 2 else TapelineError)(exc.format_message().rstrip("."),
                                                                    "see `tapeline --help`")
        click.echo(f"tapeline: {err}", err=True)
        if _state["json"] or "--json" in args:
            click.echo(json.dumps(err.to_payload()))
        code = err.exit_code
    except KeyboardInterrupt:
        click.echo("tapeline: interrupted", err=True)
        code = EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 (TapelineError and every other: one line, its fix, its exit code)
        err = as_error(exc)
        click.echo(f"tapeline: {err}", err=True)
        if _state["json"] and not output.emitted["json"]:
            click.echo(json.dumps(err.to_payload()))
        code = err.exit_code
    sys.exit(code)
