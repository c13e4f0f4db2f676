"""The API routes of the vault's jobs and the DR plan (docs/api.md, "Vault"): export, import and the rotation
forecast start a job (202), the plan is written and returned at once. Handlers only translate: each calls one method of
`appliance.vault_jobs` (vault/mailslot_jobs.py), which checks the request before it queues anything."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from appliance.api.app import GroupName, Text, _errors
from appliance.vault.forecast import MAX_WEEKS

Barcode = Annotated[Text, Field(min_length=1, max_length=32)]


class ExportBody(BaseModel):
    pool: GroupName | None = None
    case: GroupName | None = None


class ImportBody(BaseModel):
    library: GroupName | None = None
    accept: list[Barcode] = Field(default_factory=list, max_length=10000)
    operator: Annotated[Text, Field(max_length=64)] | None = None


class ForecastBody(BaseModel):
    weeks: int = Field(default=4, ge=1, le=MAX_WEEKS)


def vault_job_router(appliance) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/vault/export", status_code=202, responses=_errors(400, 404))
    def export(body: ExportBody):
        return {"job": appliance.vault_jobs.export(body.pool, body.case), "coalesced": False}

    @router.post("/v1/vault/import", status_code=202, responses=_errors(400, 404))
    def import_(body: ImportBody):
        return {"job": appliance.vault_jobs.import_(body.library, body.accept, body.operator), "coalesced": False}

    @router.post("/v1/vault/forecast", status_code=202, responses=_errors(400))
    def forecast(body: ForecastBody):
        return {"job": appliance.vault_jobs.forecast(body.weeks), "coalesced": False}

    @router.get("/v1/vault/plan", responses=_errors(400))
    def plan():
        return appliance.vault_jobs.plan()

    return router
