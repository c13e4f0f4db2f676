"""Reports by mail: `tapeline report NAME --mail`, and `[reports] mail` every day at `mail_at` as "report-mail" jobs
(so they are in the job history, and the jobs report says whether each was sent).

A report mail has the text report as its body, the HTML report (its chart included) as the alternative part a mail
reader shows, and the report's main table as a CSV attachment. It is queued in the notifier's outbox
(`Notifier.send_mail`), which delivers it and retries while the mail server is down (docs/notifications.md).
"""

from __future__ import annotations

from datetime import datetime

from appliance.errors import ConfigError, UsageError
from appliance.ops.jobs import JobContext, Outcome
from appliance.ops.reports import REPORTS, TAKES_GROUP, build
from appliance.ops.reports.render import render


def check_names(names: tuple[str, ...]) -> None:
    """The daemon's start refuses a `reports.mail` naming no report (the configuration only knows the format)."""
    unknown = [n for n in names if n not in REPORTS]
    if unknown:
        raise ConfigError(f"reports.mail names no report {', '.join(map(repr, unknown))}",
                          f"use the names {', '.join(REPORTS)} (`tapeline report list`)")
    asked = [n for n in names if n in TAKES_GROUP]
    if asked:
        raise ConfigError(f"reports.mail names {', '.join(map(repr, asked))}, which needs a group and a time",
                          f"remove it from reports.mail; run `tapeline report {asked[0]} GROUP --at TIME` when needed")


def mail_report(appliance, name: str, days: int, now: datetime | None = None) -> dict:
    notifier = getattr(appliance, "notifier", None)
    if notifier is None or getattr(notifier, "mail", None) is None:
        raise UsageError("mail is not configured (mail.host is empty)",
                         "set [mail] host, sender and recipients in the configuration file and restart the daemon")
    report = build(appliance, name, days, now)
    day = report.generated.astimezone().date().isoformat()
    subject = f"{report.title} {day}" + (": needs attention" if report.needs_attention else "")
    attachments = [(f"tapeline-{name}-{day}.csv", render(report, "csv"), "text/csv")]
    if report.vault_lists:  # what the vault company takes in, ready to forward
        attachments.append((f"tapeline-{name}-{day}_V.IM", render(report, "im"), "text/plain"))
    queued = notifier.send_mail(subject, render(report, "text"), html=render(report, "html"),
                                attachments=attachments)
    return {"name": name, "days": days, "subject": subject, "queued": queued,
            "recipients": list(notifier.mail.recipients), "needs_attention": report.needs_attention}


class ReportTasks:
    """The job body of a scheduled report mail."""

    def __init__(self, appliance):
        self.appliance = appliance

    def bodies(self) -> dict:
        return {"report-mail": self.mail}

    def mail(self, ctx: JobContext) -> Outcome:
        p = ctx.params
        sent = mail_report(self.appliance, p["report"], int(p.get("days") or self.appliance.settings.report_days))
        return Outcome("completed", result={"report_mail": sent})
