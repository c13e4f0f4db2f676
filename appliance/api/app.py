"""The HTTP API (FastAPI) over a running `Appliance`. Served on a Unix socket by appliance/api/server.py.

Invariants:
- Handlers only translate: parse the request, call one Appliance method, turn values into JSON. No rule lives here.
- Every error leaves as JSON `{"error", "fix", "exit_code", "type"}` with a status from the error class (400 usage,
  404 not found, 409 conflict, 500 other), and `client.py` raises the same class again on the other side.
- Times travel as ISO 8601 with a zone; paths as text (names that are not UTF-8 as surrogate escapes, which
  JSON carries as \\udcXX).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from urllib.parse import parse_qs

from appliance.catalog.groups import SourceInput, get_group, list_groups
from appliance.config import parse_duration_option, parse_times_option
from appliance.errors import NotFound, TapelineError, UsageError
from appliance.ops import alerts
from appliance.ops.jobs import list_jobs

API_VERSION = 1
MAX_WAIT = 30.0  # seconds a long poll may be held (the client's own timeout is longer)


class SourceBody(BaseModel):
    path: str
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class GroupCreate(BaseModel):
    name: str
    sources: list[SourceBody]
    sync: str | None = None
    points: list[str] | None = None
    keep: str | None = None


class GroupChange(BaseModel):
    sync: str | None = None
    points: list[str] | None = None
    keep: str | None = None
    add_sources: list[SourceBody] = Field(default_factory=list)
    remove_sources: list[str] = Field(default_factory=list)


class PathBody(BaseModel):
    path: str


class CheckBody(BaseModel):
    full: bool = False


class SyncBody(BaseModel):
    accept_deletions: bool = False


class RestoreBody(BaseModel):
    to: str
    point: int | str | None = None  # the ID `tapeline points` shows (a number) or a snapshot id
    at: datetime | None = None
    paths: list[str] = Field(default_factory=list)
    overwrite: bool = False


def plain(value):
    """Dataclasses, SQLModel rows and datetimes as JSON-ready values."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):  # (not mode="json": that writes UTC as "Z", every other time has "+00:00")
        return plain(value.model_dump())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _sources(items: list[SourceBody]) -> list[SourceInput]:
    return [SourceInput(s.path, tuple(s.include), tuple(s.exclude)) for s in items]


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped, so file names that are not UTF-8 (surrogate escapes) travel as \\udcXX."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def create_app(appliance) -> FastAPI:
    app = FastAPI(title="Tapeline", version=str(API_VERSION), docs_url=None, redoc_url=None,
                  default_response_class=AsciiJSONResponse)

    @app.exception_handler(TapelineError)
    async def _tapeline_error(_request: Request, exc: TapelineError):
        return AsciiJSONResponse(exc.to_payload(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        err = UsageError(f"bad request: {where or 'body'}: {first.get('msg', 'invalid')}",
                         "see docs/api.md for the request format")
        return AsciiJSONResponse(err.to_payload(), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        # Routing errors (no such path, wrong method) in the same shape as every other error.
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            err = NotFound(f"no API route {where}", "see docs/api.md for the routes")
        elif exc.status_code == 405:
            err = UsageError(f"method {request.method} not allowed on {request.url.path}",
                             "see docs/api.md for the methods each route takes")
        else:
            err = TapelineError(f"{where}: {exc.detail}", "see docs/api.md")
        return AsciiJSONResponse(err.to_payload(), status_code=exc.status_code)

    # -- status -------------------------------------------------------------------------------------------------

    @app.get("/v1/status")
    def status():
        return appliance.status()

    @app.get("/v1/schedule")
    def schedule():
        return appliance.scheduler.entries()

    # -- groups -------------------------------------------------------------------------------------------------

    @app.get("/v1/groups")
    def groups():
        return plain(list_groups(appliance.catalog))

    @app.post("/v1/groups", status_code=201)
    def create_group(body: GroupCreate):
        return plain(appliance.create_group(
            body.name, _sources(body.sources),
            parse_duration_option("--sync", body.sync) if body.sync else None,
            parse_times_option("--points", body.points) if body.points is not None else None,
            parse_duration_option("--keep", body.keep) if body.keep else None))

    @app.get("/v1/groups/{name}")
    def show_group(name: str):
        return plain(get_group(appliance.catalog, name))

    @app.patch("/v1/groups/{name}")
    def change_group(name: str, body: GroupChange):
        return plain(appliance.change_group(
            name,
            sync_seconds=parse_duration_option("--sync", body.sync) if body.sync else None,
            point_times=parse_times_option("--points", body.points) if body.points is not None else None,
            keep_seconds=parse_duration_option("--keep", body.keep) if body.keep else None,
            add_sources=_sources(body.add_sources), remove_sources=body.remove_sources))

    @app.post("/v1/groups/{name}/pause")
    def pause(name: str):
        return plain(appliance.change_group(name, paused=True))

    @app.post("/v1/groups/{name}/resume")
    def resume(name: str):
        return plain(appliance.change_group(name, paused=False))

    @app.delete("/v1/groups/{name}")
    def delete_group(name: str, purge: bool = False):
        group, job_id = appliance.delete_group(name, purge)
        return {**plain(group), "purge_job": job_id}

    @app.get("/v1/groups/{name}/points")
    def points(name: str):
        return plain(appliance.points(name))

    # -- jobs of a group ------------------------------------------------------------------------------------------

    def _sync_params(body: SyncBody | None) -> dict | None:
        return {"accept_deletions": True} if body and body.accept_deletions else None

    def _started(job_id: int, coalesced: bool, **extra):
        return {"job": job_id, "coalesced": coalesced, **extra}

    @app.post("/v1/groups/{name}/sync", status_code=202)
    def sync(name: str, body: SyncBody | None = None):
        return _started(*appliance.request(name, "sync", _sync_params(body)))

    @app.post("/v1/groups/{name}/point", status_code=202)
    def point(name: str, body: SyncBody | None = None):
        return _started(*appliance.request(name, "point", _sync_params(body)))

    @app.post("/v1/groups/{name}/check", status_code=202)
    def check(name: str, body: CheckBody | None = None):
        return _started(*appliance.request(name, "check", {"full": True} if body and body.full else None))

    @app.post("/v1/groups/{name}/prune", status_code=202)
    def prune(name: str):
        return _started(*appliance.request(name, "prune"))

    @app.post("/v1/groups/{name}/restore", status_code=202)
    def restore(name: str, body: RestoreBody):
        at = body.at
        if at is not None and at.tzinfo is None:
            at = at.astimezone()  # a time without a zone is the appliance's local time
        point = None if body.point is None else str(body.point)
        job_id, chosen = appliance.restore(name, body.to, point, at.astimezone(timezone.utc) if at else None,
                                           body.paths, body.overwrite)
        return _started(job_id, False, point=plain(chosen))

    # -- jobs -------------------------------------------------------------------------------------------------------

    @app.get("/v1/jobs")
    def jobs(limit: int = 50, state: str | None = None):
        return plain(list_jobs(appliance.catalog, limit=limit, state=state))

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: int):
        return plain(appliance.job(job_id))

    @app.get("/v1/jobs/{job_id}/wait")
    async def wait_job(job_id: int, timeout: float = Query(10.0, ge=0, le=MAX_WAIT)):
        # A long poll: answers as soon as the job's end is recorded, else with the job as it is after `timeout`.
        return plain(await appliance.wait_job(job_id, timeout))

    @app.post("/v1/jobs/{job_id}/cancel")
    def cancel(job_id: int):
        return plain(appliance.engine.cancel(job_id))

    # -- files, alerts, catalog -----------------------------------------------------------------------------------

    @app.get("/v1/versions")
    def versions(request: Request, path: str):
        # The query's bytes, not FastAPI's UTF-8 reading of them: a name that is not UTF-8 (%FF) becomes the same
        # surrogate escapes a JSON body carries, so GET and POST find the same versions.
        raw = parse_qs(request.scope.get("query_string", b"").decode("utf-8", "surrogateescape"), encoding="utf-8",
                       errors="surrogateescape").get("path", [path])
        return plain(appliance.versions(raw[0]))

    @app.post("/v1/versions")
    def versions_of(body: PathBody):
        # The same as GET, for names that are not UTF-8: a JSON body carries surrogate escapes, a query cannot.
        return plain(appliance.versions(body.path))

    @app.get("/v1/alerts")
    def list_alerts(all: bool = False):
        return plain(alerts.list_alerts(appliance.catalog, include_acknowledged=all))

    @app.post("/v1/alerts/{alert_id}/ack")
    def ack(alert_id: int):
        return plain(alerts.acknowledge(appliance.catalog, alert_id))

    @app.post("/v1/catalog/rebuild")
    def rebuild():
        return plain(appliance.rebuild_catalog())

    return app

