"""The API routes of reports (docs/api.md, "Reports"; docs/reports.md).

Handlers only translate, as in app.py: each calls one function of appliance/ops/reports, which checks the name,
format and period with messages naming the fix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from appliance.api.app import _errors
from appliance.ops import reports
from appliance.ops.reports.mailing import mail_report

ReportName = Annotated[str, Path(min_length=1, max_length=64)]
Days = Annotated[int, Query(ge=1, le=reports.MAX_DAYS)]
Format = Annotated[str, Query(pattern="^(text|csv|html|im)$")]
Group = Annotated[str | None, Query(min_length=1, max_length=200)]


class MailBody(BaseModel):
    days: int = Field(default=7, ge=1, le=reports.MAX_DAYS)


def report_router(appliance) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/reports", responses=_errors())
    def report_list():
        return reports.report_names()

    @router.get("/v1/reports/{name}", responses=_errors(400, 404))
    def report(name: ReportName, format: Format = "text", days: Days = 7, group: Group = None,
               at: datetime | None = None):
        """`group` and `at` (ISO 8601 with its offset) are restore-needs' GROUP and --at."""
        return reports.produce(appliance, name, format, days, group=group, at=at)

    @router.post("/v1/reports/{name}/mail", responses=_errors(400, 404))
    def report_mail(name: ReportName, body: MailBody | None = None):
        return mail_report(appliance, name, (body or MailBody()).days)

    return router
