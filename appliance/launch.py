"""The `tapeline` command's entry point: `tapeline tui` goes straight to the console; everything else to the CLI.

Why not through click: the console is its own program (the appliance never imports it), so `tapeline tui` only execs
`python -m tui`; importing click and every command module first would add that import to the console's start (it
has one second to show its first screen). Only the plain forms are recognised here (`tui` with --data and --config,
before or after it); any other (`tapeline tui --help`, a mistake) goes to the CLI, which says what is wrong.
"""

from __future__ import annotations

import os
import sys

PASSED = ("--data", "--config")  # the global options the console takes too


def console_args(args: list[str]) -> list[str] | None:
    """The console's arguments when `args` are `tui` and --data/--config only, else None."""
    passed: list[str] = []
    verb = None
    rest = iter(args)
    for arg in rest:
        name, eq, value = arg.partition("=")
        if name in PASSED:
            value = value if eq else next(rest, None)
            if value is None:
                return None
            passed += [name, value]
        elif arg == "tui" and verb is None:
            verb = arg
        else:
            return None
    return passed if verb else None


def run_console(passed: list[str]) -> None:
    """Replace this process with the console's (`python -m tui`), given --data/--config as `console_args` has them."""
    argv = console_argv(passed)
    os.execv(argv[0], argv)


def console_argv(passed: list[str]) -> list[str]:
    return [sys.executable, "-m", "tui", *passed]


def main() -> None:
    passed = console_args(sys.argv[1:])
    if passed is not None:
        run_console(passed)
    from appliance.cli import main as cli_main
    cli_main()
