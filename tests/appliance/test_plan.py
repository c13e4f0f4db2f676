"""`tapeline plan`: the disk and cartridges a site needs, from the operator's figures or a running group's measured
change rate (docs/plan.md); checked against sums done by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.errors import UsageError
from appliance.ops.plan import DAY, LTO, PlanInput, compare, measure, plan

TAPELINE = str(Path(sys.executable).with_name("tapeline"))
TB = 10**12


def tapeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TAPELINE, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TAPELINE_DATA": "/nonexistent-tapeline-data"})


def test_a_site_plan_from_the_command_line():
    run = tapeline("plan", "--size", "10TB", "--change", "2%/day", "--sync", "15m", "--points", "5", "--keep", "12d")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    # 10 TB + 12 days x 200 GB = 12.4 TB, and a fifth of it free.
    assert lines[1] == "replica disk 14.9 TB (data 10.0 TB + 12d of changes 2.4 TB + 2.5 TB free for collection and growth)"
    assert lines[2] == "syncs        96 a day, each reads about 2.1 GB (the first reads 10.0 TB)"
    # A weekly set of 10 TB + 6 x 200 GB fits one LTO-8 cartridge; 28 days kept + 7 idle = 5 weeks, + the one written.
    assert lines[3].startswith("tape         6 LTO-8 cartridges (12.0 TB each): 6 sets of 1 on the shelf")
    assert lines[3].endswith("a full takes 7.7 h on one drive")


@pytest.mark.parametrize("lto, cartridges", [(5, 70), (6, 40), (7, 20), (8, 10), (9, 10)])
def test_cartridges_of_each_generation(lto, cartridges):
    # 20 TB, fulls only, weekly, kept 28 days, reused at once: 5 sets, each ceil(20 TB / capacity) cartridges.
    p = PlanInput(size=20 * TB, change_per_day=0, sync_seconds=3600, points_per_day=1, keep_seconds=7 * DAY,
                  lto=lto, tape_incremental_seconds=None, tape_keep_seconds=28 * DAY, reuse_delay_seconds=0)
    tape = plan(p)["tape"]
    assert tape["capacity"] == LTO[lto][0]
    assert tape["sets_on_shelf"] == 5 and tape["cartridges"] == cartridges


def test_dedup_and_compression_shrink_the_disk_and_compression_alone_the_tape():
    p = PlanInput(size=12 * TB, change_per_day=TB // 10, sync_seconds=900, points_per_day=2, keep_seconds=30 * DAY,
                  dedup=2.0, compression=1.5, tape_incremental_seconds=None)
    result = plan(p)
    assert result["disk"]["data"] == 4 * TB  # 12 TB / 3
    assert result["disk"]["versions"] == TB  # 30 x 100 GB / 3
    assert result["tape"]["full"] == 8 * TB  # a tape set restores on its own: no dedup
    no_points = plan(PlanInput(**{**result["input"], "points_per_day": 0}))
    assert no_points["disk"]["versions"] == 0  # only the replica


@pytest.mark.parametrize("args, message", [
    (["--size", "10TB", "--change", "150%/day"], "--change '150%/day' is not a share of the data"),
    (["--size", "10XB", "--change", "1%"], "--size '10XB' is not a size"),
    (["--size", "1TB", "--change", "2TB/day"], "--change is more than the data itself"),
    (["--size", "1TB", "--change", "1%", "--lto", "4"], "--lto 4 is not an LTO generation this knows"),
    (["--size", "1TB", "--change", "1%", "--tape-incremental", "7d"], "--tape-incremental is not shorter"),
    (["--size", "1TB", "--change", "1%", "--points", "8am"], "--points '8am' is neither a count nor times"),
    (["--size", "1TB"], "give --size and --change, or a group to measure"),
])
def test_bad_figures_are_one_line_with_the_fix(args, message):
    run = tapeline("plan", *args)
    assert run.returncode == 2
    assert run.stderr.startswith(f"tapeline: {message}") and run.stderr.count("\n") == 1 and run.stdout == ""


def test_measured_change_rate_dedup_and_compression():
    first = (0.0, 100.0, {"bytes_read": 1000, "new_bytes": 500, "stored_bytes": 250})
    later = [(DAY, DAY + 1, {"bytes_read": 300, "new_bytes": 300, "stored_bytes": 150}),
             (2 * DAY, 2 * DAY + 1, {"bytes_read": 100, "new_bytes": 0, "stored_bytes": 0})]
    m = measure("docs", 1200, [first, *later], now=100.0 + 2 * DAY)
    assert (m.changed, m.jobs, m.stored) == (400, 2, 150)
    assert m.change_per_day == 200  # 400 bytes over the two days since the first ended
    assert (m.dedup, m.compression) == (round(1400 / 800, 2), 2.0)
    with pytest.raises(UsageError, match="no sync or point after its first"):
        measure("docs", 1200, [first], now=DAY)


def test_a_store_that_fills_before_the_retention_is_warned():
    m = measure("docs", 10 * TB, [(0, 0, {"bytes_read": 10 * TB, "new_bytes": 10 * TB, "stored_bytes": 10 * TB}),
                                  (DAY, DAY, {"bytes_read": TB, "new_bytes": TB, "stored_bytes": TB})], now=2 * DAY)
    p = PlanInput(size=10 * TB, change_per_day=m.change_per_day, sync_seconds=900, points_per_day=5,
                  keep_seconds=12 * DAY)
    # 500 GB stored a day, 2 TB free: full in 4 days, the group's retention fills in 10 more.
    result = compare("docs", p, m, store_size=11 * TB, disk_total=40 * TB, disk_free=2 * TB,
                     oldest_point_age_seconds=2 * DAY)
    assert result["actual"]["days_to_full"] == 4.0 and result["actual"]["retention_filled_in_days"] == 10.0
    assert result["warnings"][0].startswith("the store's disk will be full in 4.0 days")
    # Once the oldest point is as old as the retention, prunes free what syncs add: no warning.
    steady = compare("docs", p, m, store_size=11 * TB, disk_total=40 * TB, disk_free=2 * TB,
                     oldest_point_age_seconds=12 * DAY)
    assert steady["warnings"] == []
    # A disk smaller than the plan says the group needs is warned whatever the age.
    small = compare("docs", p, m, store_size=11 * TB, disk_total=12 * TB, disk_free=1 * TB,
                    oldest_point_age_seconds=12 * DAY)
    assert small["warnings"] and "more than the store's disk (12.0 TB)" in small["warnings"][0]


def test_plan_for_a_running_group(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(400_000))
    d.run("group", "create", "docs", "--source", str(src), "--keep", "12d")
    d.run("group", "pause", "docs")  # only the syncs below
    refused = d.run("plan", "docs", check=2)
    assert "group 'docs' has no sync or point after its first" in refused.stderr
    d.run("sync", "docs", "--wait")
    assert "group 'docs' has no sync or point after its first" in d.run("plan", "docs", check=2).stderr
    changed = os.urandom(100_000)
    (src / "b.bin").write_bytes(changed)
    (src / "c.bin").write_bytes(changed)  # the same bytes twice: dedup
    d.run("point", "docs", "--wait")

    # The change rate is measured over the second or so between the two jobs, so its projection over 12 days may
    # outgrow this machine's free disk: then (only then) the plan warns, and exits 3.
    result = d.json("plan", "docs", "--lto", "9", check=None)
    m = result["measured"]
    assert m["changed"] == 200_000 and m["jobs"] == 1
    assert m["change_per_day"] == pytest.approx(200_000 * DAY / m["span_seconds"], abs=1)
    assert m["size"] == 600_000 and result["input"]["size"] == 600_000
    assert m["dedup"] > 1.1  # 600 kB read, 500 kB new
    assert result["input"]["keep_seconds"] == 12 * DAY and result["tape"]["generation"] == "LTO-9"
    disk = shutil.disk_usage(d.data)
    actual = result["actual"]
    assert actual["disk_total"] == disk.total and 500_000 < actual["store_size"] < 2_000_000
    assert all("the store's disk will be full" in w for w in result["warnings"]), result["warnings"]
    text = d.run("plan", "docs", check=None).stdout
    assert "measured     over 0.0 days, 1 syncs and points after the first: 200.0 kB changed" in text
    assert "actual       store " in text
    assert "--size is measured for group docs" in d.run("plan", "docs", "--size", "1TB", check=2).stderr
    assert "protection group 'nosuch' does not exist" in d.run("plan", "nosuch", check=1).stderr
