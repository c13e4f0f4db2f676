"""How the console writes sizes, times, durations and rates (the same words the CLI uses)."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_time(iso: str | None) -> datetime | None:
    if not iso:
        return None
    at = datetime.fromisoformat(iso)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def clock(iso: str | None, now: datetime) -> str:
    """A time from the API in the local zone: the time of day when it is today, else the date too."""
    at = parse_time(iso)
    if at is None:
        return "-"
    local, today = at.astimezone(), now.astimezone()
    return local.strftime("%H:%M:%S" if local.date() == today.date() else "%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """Two units at most: 45s, 3m20s, 2h05m, 4d03h."""
    if seconds is None:
        return "-"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def setting(seconds: int) -> str:
    """A configured interval as the daemon writes it (`format_duration`): the largest unit that divides it, 15m, 12d."""
    for unit, length in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % length == 0:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


def size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def since(iso: str | None, now: datetime) -> float | None:
    at = parse_time(iso)
    return None if at is None else (now - at).total_seconds()
