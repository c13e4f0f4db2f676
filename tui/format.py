"""How the console writes times of day, ages and how long jobs took (sizes and configured intervals: the CLI's own
`appliance.text`)."""

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


def since(iso: str | None, now: datetime) -> float | None:
    at = parse_time(iso)
    return None if at is None else (now - at).total_seconds()
