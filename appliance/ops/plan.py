"""The storage calculator (`tapeline plan`): the replica disk and the tape cartridges a site needs (docs/plan.md).

`plan()` is arithmetic on what an operator says (`PlanInput`); `measure()` gives the same inputs for a running group
from its jobs' results (changed bytes read, new bytes after dedup, bytes stored after compression) and the store's
disk, and `compare()` puts the plan beside what the group really uses, with a warning when the store's disk fills
before the group's retention does.

The model, in the words docs/plan.md uses:
- disk = the data once (reduced by dedup and compression) + every day's changes kept for the retention (syncs are
  superseded by the next one, only recovery points are kept) + HEADROOM free (the store collects garbage once it is
  a tenth of its size, and a full disk stops every sync);
- tape = per cycle of the full schedule one full (the data compressed, no dedup: a set restores on its own) and the
  incrementals of the cycle; one media set per cycle, each kept for the tape retention after it closes, then idle
  for the reuse delay; so the cycles on the shelf are ceil((retention + reuse delay) / cycle) + 1 (the one being
  written). Each set starts on a fresh cartridge.
Sizes are decimal (1 TB = 10^12 bytes), as tape capacities are.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlmodel import select

from appliance.catalog.groups import get_group
from appliance.catalog.models import Job
from appliance.catalog.points import list_points
from appliance.config import parse_duration_option
from appliance.errors import UsageError

DAY = 86400
HEADROOM = 0.2
# LTO generations: native (uncompressed) capacity in bytes and native transfer rate in bytes per second.
LTO = {5: (1_500 * 10**9, 140 * 10**6), 6: (2_500 * 10**9, 160 * 10**6), 7: (6 * 10**12, 300 * 10**6),
       8: (12 * 10**12, 360 * 10**6), 9: (18 * 10**12, 400 * 10**6)}

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "p": 10**15, "pb": 10**15, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "pib": 2**50}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")
_PER_DAY_RE = re.compile(r"\s*/\s*(?:day|d)\s*$")


def parse_size(name: str, text: str) -> int:
    """Bytes in "10TB", "1.5T", "500GiB", "123" (bytes); a UsageError naming the option otherwise."""
    m = _SIZE_RE.fullmatch(str(text).lower())
    if not m or m.group(2) not in _UNITS:
        raise UsageError(f"{name} {text!r} is not a size", "write it as 10TB, 1.5T or 500GiB (decimal or binary units)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_change(text: str, size: int) -> int:
    """Bytes changed per day from "2%/day", "2%", "200GB/day" or "200GB" (a share of `size`, or a size)."""
    body = _PER_DAY_RE.sub("", str(text))
    if body.strip().endswith("%"):
        try:
            share = float(body.strip()[:-1])
        except ValueError:
            share = -1.0
        if not 0 <= share <= 100:
            raise UsageError(f"--change {text!r} is not a share of the data",
                             "write it as 2%/day (0 to 100) or as a size, 200GB/day")
        return int(size * share / 100)
    return parse_size("--change", body)


def parse_ratio(name: str, value: float) -> float:
    if not 1 <= value <= 100:
        raise UsageError(f"{name} {value} is not a reduction ratio", f"give {name} 1 (none) up to 100, e.g. 1.5")
    return value


def tape_options(lto: int = 8, full: str = "7d", incremental: str = "1d", keep: str = "28d",
                 reuse_delay: str = "7d") -> dict:
    """PlanInput's tape fields from the options' text; "none" for `full` plans no tape, for `incremental` fulls
    only."""
    def duration(option: str, value: str, none_ok: bool) -> int | None:
        if none_ok and str(value).strip().lower() == "none":
            return None
        if option == "--reuse-delay" and str(value).strip() in ("0", "0s"):
            return 0
        return parse_duration_option(option, value)
    return {"lto": lto, "tape_full_seconds": duration("--tape-full", full, True),
            "tape_incremental_seconds": duration("--tape-incremental", incremental, True),
            "tape_keep_seconds": duration("--tape-keep", keep, False),
            "reuse_delay_seconds": duration("--reuse-delay", reuse_delay, False)}


@dataclass(frozen=True)
class PlanInput:
    size: int  # bytes protected
    change_per_day: int  # bytes the day's recovery points capture anew
    sync_seconds: int
    points_per_day: int
    keep_seconds: int
    dedup: float = 1.0  # logical bytes / bytes after dedup
    compression: float = 1.0  # bytes after dedup / bytes stored
    lto: int = 8
    tape_full_seconds: int | None = 7 * DAY  # None: no tape
    tape_incremental_seconds: int | None = DAY  # None: fulls only
    tape_keep_seconds: int = 28 * DAY
    reuse_delay_seconds: int = 7 * DAY


def _check(p: PlanInput) -> None:
    if p.lto not in LTO:
        raise UsageError(f"--lto {p.lto} is not an LTO generation this knows", f"give one of {', '.join(map(str, LTO))}")
    if p.points_per_day < 0:
        raise UsageError(f"--points {p.points_per_day} is negative", "give the recovery points a day, e.g. 5")
    if p.change_per_day > p.size:
        raise UsageError("--change is more than the data itself", "give at most 100%/day, or a larger --size")
    full, incr = p.tape_full_seconds, p.tape_incremental_seconds
    if full is not None and incr is not None and incr >= full:
        raise UsageError("--tape-incremental is not shorter than --tape-full",
                         "make incrementals more frequent than fulls, e.g. --tape-full 7d --tape-incremental 1d")


def plan(p: PlanInput) -> dict:
    """What `p` needs: disk (bytes), syncs (bytes each moves) and tape (cartridges of generation p.lto)."""
    _check(p)
    keep_days = p.keep_seconds / DAY
    reduced = p.dedup * p.compression
    base = math.ceil(p.size / reduced)
    # With no recovery point a day, nothing but the replica is kept.
    versions = math.ceil(p.change_per_day * keep_days / reduced) if p.points_per_day else 0
    used = base + versions
    disk = {"data": base, "versions": versions, "used": used, "headroom": math.ceil(used * HEADROOM),
            "total": math.ceil(used * (1 + HEADROOM))}
    syncs_per_day = DAY / p.sync_seconds
    sync = {"per_day": round(syncs_per_day, 2), "first_reads": p.size,
            "each_reads": math.ceil(p.change_per_day / syncs_per_day)}
    return {"input": asdict(p), "disk": disk, "sync": sync, "tape": _tape(p)}


def _tape(p: PlanInput) -> dict | None:
    if p.tape_full_seconds is None:
        return None
    capacity, speed = LTO[p.lto]
    full = math.ceil(p.size / p.compression)
    cycle_days = p.tape_full_seconds / DAY
    incrementals = 0 if p.tape_incremental_seconds is None else math.ceil(
        p.tape_full_seconds / p.tape_incremental_seconds) - 1
    incremental = 0 if not incrementals else math.ceil(
        min(p.size, p.change_per_day * p.tape_incremental_seconds / DAY) / p.compression)
    per_set = full + incrementals * incremental
    per_set_cartridges = math.ceil(per_set / capacity)
    sets = math.ceil((p.tape_keep_seconds + p.reuse_delay_seconds) / p.tape_full_seconds) + 1
    return {"generation": f"LTO-{p.lto}", "capacity": capacity, "full": full, "incremental": incremental,
            "incrementals_per_set": incrementals, "set": per_set, "cycle_days": round(cycle_days, 2),
            "cartridges_per_set": per_set_cartridges, "sets_on_shelf": sets, "cartridges": sets * per_set_cartridges,
            "full_hours_one_drive": round(full / speed / 3600, 1)}


# -- a running group ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    size: int  # the newest point's bytes
    changed: int  # bytes the group's syncs and points read after its first (changed files)
    span_seconds: float  # from the end of its first sync or point to now
    jobs: int  # the syncs and points counted
    dedup: float
    compression: float
    stored: int  # bytes the counted jobs added to the store

    @property
    def change_per_day(self) -> int:
        return math.ceil(self.changed * DAY / self.span_seconds) if self.span_seconds > 0 else 0


def measure(name: str, size: int, results: list[tuple[float, float, dict]], now: float) -> Measured:
    """From the group's finished syncs and points, oldest first: (started, finished, result["sync"]) each, as
    epoch seconds. The first one read everything (it is how the store began) and counts only for dedup and
    compression; the change rate is what the others read, over the time since it ended."""
    if len(results) < 2:
        raise UsageError(f"group '{name}' has no sync or point after its first, so no change rate to measure",
                         f"plan it again after a few syncs (`tapeline sync {name} --wait`), or give "
                         "`tapeline plan --size SIZE --change RATE/day`")
    read = sum(r.get("bytes_read", 0) for _, _, r in results)
    new = sum(r.get("new_bytes", 0) for _, _, r in results)
    stored = sum(r.get("stored_bytes", 0) for _, _, r in results)
    later = results[1:]
    return Measured(size=size, changed=sum(r.get("bytes_read", 0) for _, _, r in later),
                    span_seconds=max(0.0, now - results[0][1]), jobs=len(later),
                    dedup=round(max(1.0, read / new), 2) if new else 1.0,
                    compression=round(max(1.0, new / stored), 2) if stored else 1.0,
                    stored=sum(r.get("stored_bytes", 0) for _, _, r in later))


def compare(name: str, p: PlanInput, measured: Measured, store_size: int, disk_total: int, disk_free: int,
            oldest_point_age_seconds: float) -> dict:
    """The plan from measured inputs beside the store's real use, and the warnings an operator should act on."""
    result = plan(p)
    growth_per_day = (math.ceil(measured.stored * DAY / measured.span_seconds) if measured.span_seconds > 0 else 0)
    # The store grows until the group's oldest point reaches its retention; then each prune frees about what a day
    # adds. Until then the disk must hold what the remaining days add.
    filling_days = max(0.0, (p.keep_seconds - oldest_point_age_seconds) / DAY)
    days_to_full = disk_free / growth_per_day if growth_per_day else None
    warnings = []
    if days_to_full is not None and days_to_full < filling_days:
        warnings.append(f"the store's disk will be full in {days_to_full:.1f} days at group '{name}''s measured "
                        f"growth ({size_text(growth_per_day)}/day), before its {p.keep_seconds / DAY:g}-day retention "
                        "is filled: free space on the store's disk, give it a larger disk, or shorten the group's "
                        f"--keep (`tapeline group change {name} --keep DAYS`)")
    if result["disk"]["used"] > disk_total:
        warnings.append(f"group '{name}' needs {size_text(result['disk']['used'])} of store at its measured change "
                        f"rate, more than the store's disk ({size_text(disk_total)}): give the store a larger disk "
                        f"or shorten the group's --keep")
    result["measured"] = {**asdict(measured), "change_per_day": measured.change_per_day}
    result["actual"] = {"store_size": store_size, "disk_total": disk_total, "disk_free": disk_free,
                        "growth_per_day": growth_per_day,
                        "days_to_full": None if days_to_full is None else round(days_to_full, 1),
                        "retention_filled_in_days": round(filling_days, 1)}
    result["group"] = name
    result["warnings"] = warnings
    return result


def for_group(catalog, store, name: str, tape: dict, now: datetime | None = None) -> dict:
    """`compare()` for a group of the running appliance; `tape` holds PlanInput's lto and tape_* fields to use."""
    now = now or datetime.now(timezone.utc)
    group = get_group(catalog, name)
    with catalog.reader() as s:
        jobs = s.exec(select(Job).where(Job.group_id == group.id, Job.kind.in_(("sync", "point")),
                                        Job.state.in_(("completed", "completed with warnings")))
                      .order_by(Job.id)).all()
        results = [(j.started.timestamp(), j.finished.timestamp(), j.result["sync"]) for j in jobs
                   if j.started and j.finished and "sync" in (j.result or {})]
    points = list_points(catalog, group.id, name)
    measured = measure(name, points[-1].bytes if points else 0, results, now.timestamp())
    kept = [pt for pt in points if pt.kind == "point"]
    oldest_age = (now - kept[0].time).total_seconds() if kept else 0.0
    disk = shutil.disk_usage(store.root)
    inputs = PlanInput(size=measured.size, change_per_day=min(measured.size, measured.change_per_day),
                       sync_seconds=group.sync_seconds, points_per_day=len(group.point_times),
                       keep_seconds=group.keep_seconds, dedup=measured.dedup, compression=measured.compression,
                       **tape)
    return compare(name, inputs, measured, store.size(), disk.total, disk.free, oldest_age)


def size_text(n: float) -> str:
    for unit, size in (("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
