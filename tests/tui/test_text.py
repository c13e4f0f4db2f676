"""The console writes sizes and configured intervals in the CLI's words (appliance.text), not words of its own."""

from __future__ import annotations

from appliance.text import format_duration, size
from tui.screens.management import pool_row
from tui.widgets.group_form import GroupPlan


def test_a_group_edited_shows_its_intervals_as_the_cli_writes_them():
    group = {"name": "hr", "sources": [{"path": "/srv/hr"}], "sync_seconds": 5400, "point_times": [],
             "keep_seconds": 14 * 86400, "tape": None}
    plan = GroupPlan.of(group)
    assert (plan.sync, plan.keep) == ("1h30m", "14d")  # as `tapeline group show hr` prints them
    assert (plan.sync, plan.keep) == (format_duration(5400), format_duration(14 * 86400))


def test_a_pools_retention_is_exact():
    pool = {"name": "weekly", "library": "vtl", "retention_seconds": 36 * 3600, "cartridges": {"scratch": 2},
            "verify": False}
    assert pool_row(pool) == ("weekly", "vtl", "1d12h", "2 scratch", "no")
    assert pool_row({**pool, "retention_seconds": None})[2] == "forever"


def test_sizes():
    assert [size(n) for n in (None, 512, 1536, 3 * 1024 ** 3)] == ["-", "512 B", "1.5 KiB", "3.0 GiB"]
