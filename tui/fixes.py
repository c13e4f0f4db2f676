"""An alert's fix, where it is a `tapeline ...` command the API can run: the call to make instead of the command.

A fix that names a placeholder (`--pool POOL`), or a command with no API counterpart here, is shown to copy: a person
fills it in. `runnable` returns None for those.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

COMMAND = re.compile(r"`(tapeline [^`]+)`")
FLAGS_ONLY = {"--wait"}  # the console follows the job itself
# The words the appliance's fixes put where a person fills in a value (`--pool POOL`, `media verify BARCODE`); any
# other word, upper-case or not, is a real name (a group HR, a barcode VT0001L6).
PLACEHOLDERS = frozenset({"NAME", "ID", "GROUP", "POOL", "LIB", "LIBRARY", "BARCODE", "CASE", "N", "P", "TIME",
                          "SIZE", "RATE", "PATH", "DIR", "FILE", "TEXT", "DAYS", "CALENDAR", "CHANGER_URL",
                          "DRIVE_URL", "URL", "DRIVE", "VAULT"})


def commands(fix: str) -> list[str]:
    """The `tapeline ...` commands quoted in a fix, in order."""
    return COMMAND.findall(fix or "")


def placeholder(word: str) -> bool:
    """`POOL`, `--library=LIB`, `BARCODE|CASE...`, `RATE/day`, `[--weeks N]`: a word a person fills in."""
    return word.endswith("...") or word.startswith("[") or any(
        part in PLACEHOLDERS for part in re.split(r"[=|/\[\]]|\.\.\.", word))


def runnable(command: str) -> Callable | None:
    """`call(daemon)` that does what `command` does, or None when it must be shown to a person instead."""
    try:
        words = shlex.split(command)[1:]
    except ValueError:
        return None
    if any(placeholder(w) for w in words):  # a person picks the value
        return None
    flags = {w for w in words if w.startswith("--")} - FLAGS_ONLY
    args = [w for w in words if not w.startswith("--")]
    match args, flags:
        case ["sync", name], _ if flags <= {"--accept-deletions"}:
            return lambda d: d.sync(name, accept_deletions="--accept-deletions" in flags)
        case ["point", name], _ if flags <= {"--accept-deletions"}:
            return lambda d: d.point(name, accept_deletions="--accept-deletions" in flags)
        case ["check", name], _ if flags <= {"--full"}:
            return lambda d: d.check(name, full="--full" in flags)
        case ["group", "resume", name], set():
            return lambda d: d.resume(name)
        case ["mail", "test"], set():
            return lambda d: d.mail_test()
        case ["library", "inventory", name], set():
            return lambda d: d.inventory(name)
        case ["media", "rebuild", name], _ if flags == {"--library"}:
            return lambda d: d.media_rebuild(name)
        case ["drive", "clean", library, number], set() if number.isdigit():
            return lambda d: d.drive_action(library, int(number), "clean")
        case ["media", "verify", barcode], set():
            return lambda d: d.media_verify(barcode)
    return None
