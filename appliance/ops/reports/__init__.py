"""Reports (`tapeline report NAME`, docs/reports.md): protection status, job history, storage use and growth, tape
usage, and offsite rotation's lists (appliance/vault/reports.py), each rendered as text, CSV or HTML (and a vault
list as the `.IM` file vault companies take).

A report is built in the daemon from the catalog (builders.py) as plain values (model.py: tables of raw numbers and
times, each column with its kind), then rendered (render.py); the HTML one embeds its chart as inline SVG (chart.py),
so it shows in any mail reader or browser with no network and no script.
"""

from __future__ import annotations

from datetime import datetime, timezone

from appliance.errors import NotFound, UsageError
from appliance.ops.reports import builders
from appliance.ops.reports.model import Report
from appliance.ops.reports.render import FORMATS, render


def _vault(builder: str):
    """A builder of appliance/vault/reports.py, imported on first use: that module builds on this package's model,
    so either may be imported first."""
    def build_it(*args, **kwargs) -> Report:
        from appliance.vault import reports
        return getattr(reports, builder)(*args, **kwargs)
    return build_it


# name -> (what it shows, builder)
REPORTS = {
    "protection": ("every group: its newest good recovery point and its lag against the schedule",
                   builders.protection),
    "jobs": ("the job history of the period: every job, and the runs of each group by kind and outcome",
             builders.jobs),
    "storage": ("the replica store's use and its growth over the period, per group (HTML: a chart)",
                builders.storage),
    "tape": ("tape pools, cartridges and the tape sets written in the period", builders.tape),
    "pick-list-library": ("what to eject today for the vaults, and from which slot", _vault("pick_list_library")),
    "pick-list-vault": ("what each vault sends back, by case", _vault("pick_list_vault")),
    "distribution": ("the cartridges travelling in the period: what goes where", _vault("distribution")),
    "vault-inventory": ("what each vault must hold, to reconcile against its own list", _vault("vault_inventory")),
    "discrepancies": ("cartridges missing, found where they should not be, or overdue", _vault("discrepancies")),
    "media-status": ("per pool: scratch, in use, offsite, expiring, errors, last read-back check",
                     _vault("media_status")),
    "restore-needs": ("GROUP --at TIME: the cartridges a restore needs and where they are", _vault("restore_needs")),
}
TAKES_GROUP = ("restore-needs",)
MAX_DAYS = 3660


def report_names() -> list[dict]:
    return [{"name": name, "description": what, "takes_group": name in TAKES_GROUP}
            for name, (what, _) in REPORTS.items()]


def build(appliance, name: str, days: int = 7, now: datetime | None = None, group: str | None = None,
          at: datetime | None = None) -> Report:
    if name not in REPORTS:
        raise NotFound(f"no report named {name!r}", f"use one of {', '.join(REPORTS)} (`tapeline report list`)")
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"a period of {days} days is out of range", f"give --days from 1 to {MAX_DAYS}")
    now = now or datetime.now(timezone.utc)
    if name in TAKES_GROUP:
        return REPORTS[name][1](appliance, days, now, group=group, at=at)
    if group is not None or at is not None:
        raise UsageError(f"the {name} report takes no group or time",
                         f"give GROUP and --at only to {', '.join(TAKES_GROUP)}")
    return REPORTS[name][1](appliance, days, now)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown report format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    return fmt


def produce(appliance, name: str, fmt: str = "text", days: int = 7, now: datetime | None = None,
            group: str | None = None, at: datetime | None = None) -> dict:
    """The report `name` rendered as `fmt`, with what a caller decides on (the API's answer)."""
    check_format(fmt)
    report = build(appliance, name, days, now, group, at)
    return {"name": name, "title": report.title, "format": fmt, "days": days,
            "generated": report.generated.isoformat(), "needs_attention": report.needs_attention,
            "content": render(report, fmt)}


__all__ = ["FORMATS", "REPORTS", "Report", "build", "check_format", "produce", "render", "report_names"]
