"""The API route of the rotation forecast (docs/api.md, "Vault"). The handler only translates: it calls
appliance/vault/forecast.py over the appliance's catalog, which checks the number of weeks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from appliance.api.app import _errors
from appliance.catalog.models import utcnow
from appliance.vault.forecast import MAX_WEEKS, forecast

Weeks = Annotated[int, Query(ge=1, le=MAX_WEEKS)]


def vault_report_router(appliance) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/vault/forecast", responses=_errors(400))
    def vault_forecast(weeks: Weeks = 4):
        return forecast(appliance.catalog, utcnow(), weeks).to_json()

    return router
