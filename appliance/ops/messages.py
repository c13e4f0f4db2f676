"""What the operator reads of a job: warning counts, the cap on printed warnings, a reason split into cause and fix.

Standard library only: the CLI imports it without loading the catalog.

Invariants:
- A warning list may end its stored part with "... and N more warnings" (the engine keeps the first ones only):
  `count_warnings` counts what happened, not the lines kept.
- A reason that already names its fix (a `tapeline ...` command) is split there, so no second fix is appended.
"""

from __future__ import annotations

import re

_MORE = re.compile(r"^\.\.\. and (\d+) more warnings?$")
PRINTED_WARNINGS = 20


def count_warnings(warnings: list[str] | tuple[str, ...]) -> int:
    total = 0
    for w in warnings:
        m = _MORE.match(w)
        total += int(m.group(1)) if m else 1
    return total


def capped(warnings: list[str], job_id: int, limit: int = PRINTED_WARNINGS) -> list[str]:
    """The first `limit` warnings, then one line saying how many more there are and where to read them."""
    shown = [w for w in warnings[:limit] if not _MORE.match(w)]
    rest = count_warnings(warnings) - len(shown)
    if rest > 0:
        shown.append(f"{rest} more: see `tapeline job {job_id} --json`")
    return shown


def split_fix(reason: str) -> tuple[str, str | None]:
    """("cause", "fix") when the reason already carries a fix naming a `tapeline` command, else (reason, None)."""
    at = reason.find("`tapeline ")
    if at < 0:
        return reason, None
    cut = reason.rfind(": ", 0, at)
    if cut < 0:
        return reason, None
    return reason[:cut], reason[cut + 2:]


def span_text(seconds: float) -> str:
    """A stretch of time as people read it: "45 s", "3 min 20 s", "5 h 12 min"."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
