"""What a `tapeline` client loads before its request reaches the daemon: its own command's module and the API
client, never the other commands' modules nor the daemon's side (every process pays for each import: issue 6's
"nothing changed" row is a few hundred milliseconds long). bench/cli_start.py has the times."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import click
import pytest

from appliance import cli, config

# Modules no client command needs: the daemon's side, the console, the HTTP stacks it does not use.
HEAVY = ("sqlalchemy", "sqlmodel", "fastapi", "uvicorn", "starlette", "pydantic", "textual", "httpx", "rich",
         "appliance.catalog", "appliance.protect", "appliance.store", "appliance.ops.tasks", "appliance.api.app")
COMMAND_MODULES = {f"appliance.commands.{m}" for m in cli.MODULES} | {
    f"appliance.commands.{m}" for ext in cli.EXTENSIONS.values() for m, _ in ext}

# Runs the CLI as the `tapeline` script does, in a fresh interpreter, then writes the modules it loaded to argv[1].
PROBE = """
import json, sys
from appliance.cli import main
out, sys.argv = sys.argv[1], ["tapeline", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def loaded(tmp_path, *args: str, data=None) -> tuple[int, set[str]]:
    out = tmp_path / "modules.json"
    subprocess.run([sys.executable, "-c", PROBE, str(out), "--data", str(data or tmp_path / "none"), *args],
                   capture_output=True, text=True, timeout=60, env={**os.environ, "TAPELINE_DATA": ""})
    probe = json.loads(out.read_text())
    return probe["code"], set(probe["modules"])


@pytest.mark.parametrize("args, module", [
    (["sync", "g", "--wait", "--help"], "protect_cmd"),
    (["restore", "g", "--point", "latest", "--to", "x", "--wait", "--help"], "protect_cmd"),
    (["status", "--help"], "status_cmd"),
    (["--json", "jobs", "--help"], "jobs_cmd"),
])
def test_parsing_a_command_loads_its_module_alone_and_no_mail_or_toml(tmp_path, args, module):
    code, modules = loaded(tmp_path, *args)
    assert code == 0
    assert f"appliance.commands.{module}" in modules
    assert COMMAND_MODULES & modules == {f"appliance.commands.{module}"}
    assert not {m for m in modules if m.split(".")[0] in ("email", "tomllib", "difflib")}
    assert not {m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}


def test_a_sync_waited_for_through_the_daemon_loads_no_other_command_nor_the_daemons_side(sqlite_daemon, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    sqlite_daemon.run("group", "create", "g", "--source", str(src), check=0)
    for args, module in ((["--json", "sync", "g", "--wait"], "protect_cmd"), (["status"], "status_cmd")):
        code, modules = loaded(tmp_path, *args, data=sqlite_daemon.data)
        assert code == 0, args
        assert COMMAND_MODULES & modules == {f"appliance.commands.{module}"}
        assert not {m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}, args
        # The HTTP exchange itself: h11's framing, not http.client's (which loads the email package and ssl).
        assert "h11" in modules and not {m for m in modules if m.split(".")[0] in ("email", "ssl", "http")}, args


def eager_tree() -> click.Group:
    """Every module registered at once on a plain group, as before the root group loaded them lazily."""
    import importlib
    root = click.Group("tapeline")
    for module in cli.MODULES:
        importlib.import_module(f"appliance.commands.{module}").register(root)
    for name, extensions in cli.EXTENSIONS.items():
        for module, function in extensions:
            getattr(importlib.import_module(f"appliance.commands.{module}"), function)(root.commands[name])
    return root


def commands_of(group: click.Group, ctx: click.Context, prefix: str = "") -> dict[str, str]:
    """{"group set": its short help, ...} for every command under `group`."""
    found = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        found[prefix + name] = command.get_short_help_str(limit=200)
        if isinstance(command, click.Group):
            found |= commands_of(command, ctx, prefix + name + " ")
    return found


def test_a_client_of_a_daemon_with_mail_on_loads_no_mail_package(tmp_path):
    conf = tmp_path / "tapeline.toml"
    conf.write_text('[mail]\nhost = "smtp.example.com"\nsender = "Tapeline <tapeline@example.com>"\n'
                    'recipients = ["backup-team@example.com"]\n')
    assert config.load(conf, tmp_path / "data").mail.host == "smtp.example.com"  # the daemon's load checks it
    code, modules = loaded(tmp_path, "--config", str(conf), "status")
    assert code == 1  # no daemon here: the command went as far as asking one
    assert not {m for m in modules if m.split(".")[0] == "email"}


def test_the_tables_name_every_command_module_and_every_extension():
    """A module left out of MODULES, or an extend_* out of EXTENSIONS, would vanish from the lazy tree and the eager
    one alike (test below): the tables are checked against the package itself."""
    import pkgutil

    import appliance.commands as package
    modules = {m.name: importlib.import_module(f"appliance.commands.{m.name}")
               for m in pkgutil.iter_modules(package.__path__)}
    assert {name for name, module in modules.items() if hasattr(module, "register")} == set(cli.MODULES)
    extensions = {(name, attr) for name, module in modules.items() for attr in vars(module)
                  if attr.startswith("extend_")}
    assert extensions == {pair for pairs in cli.EXTENSIONS.values() for pair in pairs}


def test_the_table_of_modules_names_what_each_module_registers():
    for module, names in cli.MODULES.items():
        group = click.Group()
        __import__(f"appliance.commands.{module}", fromlist=["register"]).register(group)
        assert tuple(sorted(group.commands)) == names, module


def test_the_lazy_root_has_every_command_and_subcommand_of_every_module():
    with click.Context(cli.cli) as ctx:
        lazy = commands_of(cli.cli, ctx)
    with click.Context(eager_tree()) as ctx:
        eager = commands_of(ctx.command, ctx)
    assert lazy == eager
    assert {"sync", "restore", "group set", "media verify", "pool set", "vault export", "vault forecast"} <= set(lazy)


def test_help_lists_every_command_and_a_mistyped_one_gets_its_suggestion(tmp_path):
    from click.testing import CliRunner
    listed = CliRunner().invoke(cli.cli, ["--help"]).output.split("Commands:\n")[1]
    assert [line.split()[0] for line in listed.splitlines()] == sorted(cli.HOME)
    mistyped = subprocess.run([sys.executable, "-c", "from appliance.cli import main; main()", "vaul"],
                              capture_output=True, text=True, timeout=60)
    assert mistyped.returncode == 2
    assert mistyped.stderr.startswith("tapeline: no such command 'vaul': did you mean 'vault'?")
