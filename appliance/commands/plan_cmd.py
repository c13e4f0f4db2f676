"""`tapeline plan`: the disk and cartridges a site needs, from what the operator says or from a group's measured
change rate (docs/plan.md)."""

from __future__ import annotations

import click

from appliance.commands.output import Context
from appliance.config import parse_duration_option, parse_times
from appliance.text import format_duration
from appliance.errors import CompletedWithWarnings, UsageError

MEASURED = ("size", "change", "sync", "points", "keep", "dedup", "compression")


def _points_per_day(value: str) -> int:
    """"5" (a count) or "08:00,12:00" (the times)."""
    if value.strip().isdigit():
        return int(value)
    try:
        return len(parse_times(value))
    except (ValueError, TypeError):
        raise UsageError(f"--points {value!r} is neither a count nor times",
                         "give the points a day, e.g. 5, or their times, e.g. 08:00,12:00,17:00") from None


def show(result: dict) -> None:
    from appliance.ops.plan import DAY, size_text as t
    p, disk, sync, tape = result["input"], result["disk"], result["sync"], result["tape"]
    keep = format_duration(p["keep_seconds"])
    click.echo(f"plan for {t(p['size'])} of data, {t(p['change_per_day'])} changed a day, a sync every "
               f"{format_duration(p['sync_seconds'])}, {p['points_per_day']} recovery points a day kept {keep} "
               f"(dedup {p['dedup']:g}x, compression {p['compression']:g}x)")
    if "measured" in result:
        m, a = result["measured"], result["actual"]
        click.echo(f"measured     over {m['span_seconds'] / DAY:.1f} days, {m['jobs']} syncs and points after the "
                   f"first: {t(m['changed'])} changed ({t(m['change_per_day'])} a day), {t(m['stored'])} stored")
    versions = f" + {keep} of changes {t(disk['versions'])}" if disk["versions"] else ""
    click.echo(f"replica disk {t(disk['total'])} (data {t(disk['data'])}{versions} + "
               f"{t(disk['headroom'])} free for collection and growth)")
    click.echo(f"syncs        {sync['per_day']:g} a day, each reads about {t(sync['each_reads'])} "
               f"(the first reads {t(sync['first_reads'])})")
    if tape is None:
        click.echo("tape         none planned")
    else:
        incr = (f" + {tape['incrementals_per_set']} incrementals of {t(tape['incremental'])}"
                if tape["incrementals_per_set"] else "")
        click.echo(f"tape         {tape['cartridges']} {tape['generation']} cartridges ({t(tape['capacity'])} each): "
                   f"{tape['sets_on_shelf']} sets of {tape['cartridges_per_set']} on the shelf, a set every "
                   f"{tape['cycle_days']:g} days (a {t(tape['full'])} full{incr}); a full takes "
                   f"{tape['full_hours_one_drive']:g} h on one drive")
    if "actual" in result:
        a = result["actual"]
        full = f", full in {a['days_to_full']:g} days at that rate" if a["days_to_full"] is not None else ""
        click.echo(f"actual       store {t(a['store_size'])} (all groups) on a {t(a['disk_total'])} disk with "
                   f"{t(a['disk_free'])} free; the group adds {t(a['growth_per_day'])} a day{full}; its retention "
                   f"is filled in {a['retention_filled_in_days']:g} days")
    for w in result.get("warnings", []):
        click.echo(f"warning: {w}")


def register(cli: click.Group) -> None:
    @cli.command(short_help="The replica disk and LTO cartridges a site needs.")
    @click.argument("group_name", metavar="[GROUP]", required=False)
    @click.option("--size", help="Data protected: 10TB, 1.5T, 500GiB.")
    @click.option("--change", help="Changed a day: 2%/day, or a size: 200GB/day.")
    @click.option("--sync", help="Sync frequency (default: the configuration's defaults.sync).")
    @click.option("--points", help="Recovery points a day: a count, or their times 08:00,12:00 (default: "
                                   "defaults.points).")
    @click.option("--keep", help="Retention of recovery points (default: defaults.keep).")
    @click.option("--dedup", type=float, help="Dedup ratio of the data (default 1: none).")
    @click.option("--compression", type=float, help="Compression ratio (default 1: none).")
    @click.option("--lto", type=int, default=8, show_default=True, help="LTO generation of the cartridges (5-9).")
    @click.option("--tape-full", default="7d", show_default=True, help="A full set to tape this often; none: no tape.")
    @click.option("--tape-incremental", default="1d", show_default=True,
                  help="An incremental this often between fulls; none: fulls only.")
    @click.option("--tape-keep", default="28d", show_default=True, help="Retention of a tape set (the pool's).")
    @click.option("--reuse-delay", default="7d", show_default=True,
                  help="How long an expired cartridge waits before reuse (media.reuse_delay).")
    @click.pass_obj
    def plan(ctx: Context, group_name, size, change, sync, points, keep, dedup, compression, lto, tape_full,
             tape_incremental, tape_keep, reuse_delay) -> None:
        """The replica disk and the LTO cartridges a site needs: from --size and --change (and the schedule), or
        for GROUP from its measured change rate, dedup and compression, beside what its store really uses.
        Exits 3 when the store's disk fills before the group's retention does."""
        from appliance.ops import plan as calc
        tape = calc.tape_options(lto, tape_full, tape_incremental, tape_keep, reuse_delay)
        given = {k for k, v in zip(MEASURED, (size, change, sync, points, keep, dedup, compression)) if v is not None}
        if group_name is not None:
            if given:
                raise UsageError(f"--{sorted(given)[0]} is measured for group {group_name}",
                                 f"leave it out, or plan without the group: `tapeline plan --size SIZE --change RATE`")
            result = ctx.client.plan(group_name, lto=lto, tape_full=tape_full, tape_incremental=tape_incremental,
                                     tape_keep=tape_keep, reuse_delay=reuse_delay)
        else:
            if size is None or change is None:
                raise UsageError("give --size and --change, or a group to measure",
                                 "e.g. `tapeline plan --size 10TB --change 2%/day`, or `tapeline plan GROUP`")
            settings = ctx.settings
            data = calc.parse_size("--size", size)
            result = calc.plan(calc.PlanInput(
                size=data, change_per_day=calc.parse_change(change, data),
                sync_seconds=parse_duration_option("--sync", sync) if sync else settings.sync_seconds,
                points_per_day=_points_per_day(points) if points else len(settings.point_times),
                keep_seconds=parse_duration_option("--keep", keep) if keep else settings.keep_seconds,
                dedup=calc.parse_ratio("--dedup", dedup if dedup is not None else 1.0),
                compression=calc.parse_ratio("--compression", compression if compression is not None else 1.0),
                **tape))
        ctx.emit(result, show)
        if result.get("warnings"):
            cause, _, fix = result["warnings"][0].partition(": ")
            raise CompletedWithWarnings(cause, fix)
