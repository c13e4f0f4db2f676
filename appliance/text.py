"""How sizes, durations, times and alerts are written for people, the same words in the CLI, the reports, the
messages and the console.

Standard library only, and nothing of the appliance (a contract in pyproject.toml): the console imports it beside
the API client, and the CLI without loading the catalog.
"""

from __future__ import annotations

from datetime import datetime

TEXT_TIME = "%Y-%m-%d %H:%M:%S"  # every time a person reads: local, to the second (JSON has ISO 8601 with its offset)


def noun(n: int, word: str, many: str | None = None) -> str:
    """The word for `n` of them: "file" for 1, "files" for any other ("entries" with many="entries")."""
    return word if n == 1 else many or word + "s"


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 file", "2 files", "0 files" ("1 entry", "2 entries" with many="entries")."""
    return f"{n} {noun(n, word, many)}"


def size(n: float | None) -> str:
    """Bytes in binary units, one decimal: 512 B, 1.5 KiB, 3.0 GiB."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def format_duration(seconds: int) -> str:
    """A configured interval in the shortest exact form, as `parse_duration` reads it back: 900 -> "15m",
    1036800 -> "12d", 5400 -> "1h30m"."""
    parts = []
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= length:
            parts.append(f"{seconds // length}{unit}")
            seconds %= length
    return "".join(parts) or "0s"


def text_time(t: datetime | str | None) -> str:
    """A time as people read it everywhere (CLI tables, messages): local, to the second."""
    if not t:
        return "-"
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.astimezone().strftime(TEXT_TIME)


def alert_object(alert: dict) -> str:
    """What an alert (as the API gives it) is about: "group hr", "cartridge A00001L9", or "-"."""
    return f"{alert['object_kind']} {alert['object_name']}" if alert.get("object_kind") else "-"


def alert_state(alert: dict) -> str:
    """"resolved TIME" (", acknowledged"), "acknowledged" or "open"."""
    if alert.get("resolved"):
        return f"resolved {text_time(alert['resolved'])}" + (", acknowledged" if alert.get("acknowledged") else "")
    return "acknowledged" if alert.get("acknowledged") else "open"
