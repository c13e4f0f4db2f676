"""The HTTP API (FastAPI) over a running `Appliance`. Served on a Unix socket by appliance/api/server.py.

Invariants:
- Handlers only translate: parse the request, call one Appliance method, turn values into JSON. No rule lives here.
- Every error leaves as JSON `{"error", "fix", "exit_code", "type"}` with a status from the error class (400 usage,
  404 not found, 409 conflict, 503 catalog unavailable, 500 other), and `client.py` raises the same class again on
  the other side. An exception nobody expected still answers that shape (500, via errors.as_error), and its
  traceback goes to the daemon's log.
- Input is checked before it reaches the appliance: ids are positive 64-bit integers, paths hold no NUL byte,
  times convert to UTC or are refused. The OpenAPI schema declares exactly the error statuses each route can answer
  (ERRORS below), in the error shape, and no 422 (validation errors are answered 400).
- Times travel as ISO 8601 with a zone; paths as text (names that are not UTF-8 as surrogate escapes, which
  JSON carries as \\udcXX).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timezone
from typing import Annotated

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match
from urllib.parse import parse_qs

from appliance.catalog import tape_sets
from appliance.catalog.groups import NAME_RE, SourceInput, get_group, list_groups
from appliance.config import parse_duration_option, parse_times_option
from appliance.errors import NotFound, TapelineError, UsageError, as_error
from appliance.ops import alerts
from appliance.ops.plan import tape_options

API_VERSION = 1
MAX_WAIT = 30.0  # seconds a long poll may be held (the client's own timeout is longer)
MAX_ID = 2**63 - 1  # the catalog's integer columns are signed 64-bit

log = logging.getLogger("tapeline.api")


def _no_nul(text: str) -> str:
    if "\0" in text:
        raise ValueError("holds a NUL byte, which no file name can")
    return text


Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})]
# What the appliance accepts, said in the schema; the appliance checks it itself, with messages naming the fix.
AbsPath = Annotated[Text, Field(json_schema_extra={"pattern": "^/[^\\u0000]*$"})]
GroupName = Annotated[Text, Field(json_schema_extra={"pattern": f"^{NAME_RE.pattern}$"})]
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
AlertId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ErrorBody(BaseModel):
    """Every error answer."""

    error: str
    fix: str
    exit_code: int
    type: str


class SourceBody(BaseModel):
    path: AbsPath
    include: list[Text] = Field(default_factory=list)
    exclude: list[Text] = Field(default_factory=list)


class GroupCreate(BaseModel):
    name: GroupName
    sources: Annotated[list[SourceBody], Field(json_schema_extra={"minItems": 1})]
    sync: str | None = None
    points: list[str] | None = None
    keep: str | None = None


class GroupChange(BaseModel):
    sync: str | None = None
    points: list[str] | None = None
    keep: str | None = None
    add_sources: list[SourceBody] = Field(default_factory=list)
    remove_sources: list[AbsPath] = Field(default_factory=list)


class PathBody(BaseModel):
    path: AbsPath


class CheckBody(BaseModel):
    full: bool = False


class SyncBody(BaseModel):
    accept_deletions: bool = False


class RestoreBody(BaseModel):
    to: AbsPath
    point: int | Text | None = None  # the ID `tapeline points` shows (a number) or a snapshot id
    at: datetime | None = None
    paths: list[AbsPath] = Field(default_factory=list)
    overwrite: bool = False


def _utc(at: datetime | None) -> datetime | None:
    """`at` in UTC; a time without a zone is the appliance's local time. Times that do not convert (the first or
    last day of the calendar, shifted by a zone) are refused."""
    if at is None:
        return None
    try:
        return (at if at.tzinfo else at.astimezone()).astimezone(timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise UsageError(f"at {at.isoformat()} is out of range", "give a time between the years 1 and 9999, "
                         "a day or more from either end") from None


def _errors(*codes: int) -> dict:
    """The error answers a route declares in the schema: those given, and 500 (a bug) and 503 (no catalog) always."""
    described = {400: "bad request", 404: "not found", 409: "conflict with the current state",
                 500: "internal error (see the daemon's log)", 503: "the catalog cannot be written or reached"}
    return {c: {"model": ErrorBody, "description": described[c]} for c in sorted({*codes, 500, 503})}


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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Starlette re-raises after this answer, so the server logs the traceback.
        err = as_error(exc)
        log.error("%s %s: %s", request.method, request.url.path, err)
        return AsciiJSONResponse(err.to_payload(), status_code=err.http_status)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        err = UsageError(f"bad request: {where or 'body'}: {first.get('msg', 'invalid')}".replace("\0", "\\0"),
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
        headers = exc.headers
        if exc.status_code == 405:  # every method the path takes (RFC 9110), not only those of its first route
            allowed = set()
            for route in app.routes:
                if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
                    allowed |= route.methods - {"HEAD"}
            headers = {"Allow": ", ".join(sorted(allowed))}
        return AsciiJSONResponse(err.to_payload(), status_code=exc.status_code, headers=headers)

    # -- status -------------------------------------------------------------------------------------------------

    @app.get("/v1/status", responses=_errors())
    def status():
        return appliance.status()

    @app.get("/v1/schedule", responses=_errors())
    def schedule():
        return appliance.scheduler.entries()

    # -- groups -------------------------------------------------------------------------------------------------

    @app.get("/v1/groups", responses=_errors())
    def groups():
        return plain(list_groups(appliance.catalog))

    @app.post("/v1/groups", status_code=201, responses=_errors(400, 409))
    def create_group(body: GroupCreate):
        return plain(appliance.create_group(
            body.name, _sources(body.sources),
            parse_duration_option("--sync", body.sync) if body.sync else None,
            parse_times_option("--points", body.points) if body.points is not None else None,
            parse_duration_option("--keep", body.keep) if body.keep else None))

    @app.get("/v1/groups/{name}", responses=_errors(404))
    def show_group(name: str):
        group = get_group(appliance.catalog, name)
        policy = tape_sets.get_policy(appliance.catalog, group.id)
        return {**plain(group), "tape": plain(policy) if policy else None}

    @app.patch("/v1/groups/{name}", responses=_errors(400, 404, 409))
    def change_group(name: str, body: GroupChange):
        return plain(appliance.change_group(
            name,
            sync_seconds=parse_duration_option("--sync", body.sync) if body.sync else None,
            point_times=parse_times_option("--points", body.points) if body.points is not None else None,
            keep_seconds=parse_duration_option("--keep", body.keep) if body.keep else None,
            add_sources=_sources(body.add_sources), remove_sources=body.remove_sources))

    @app.post("/v1/groups/{name}/pause", responses=_errors(404))
    def pause(name: str):
        return plain(appliance.change_group(name, paused=True))

    @app.post("/v1/groups/{name}/resume", responses=_errors(404))
    def resume(name: str):
        return plain(appliance.change_group(name, paused=False))

    @app.delete("/v1/groups/{name}", responses=_errors(400, 404, 409))
    def delete_group(name: str, purge: bool = False):
        group, job_id = appliance.delete_group(name, purge)
        return {**plain(group), "purge_job": job_id}

    @app.get("/v1/groups/{name}/plan", responses=_errors(400, 404))
    def plan(name: str, lto: Annotated[int, Query(ge=5, le=9)] = 8, tape_full: Text = "7d",
             tape_incremental: Text = "1d", tape_keep: Text = "28d", reuse_delay: Text = "7d"):
        return appliance.plan(name, tape_options(lto, tape_full, tape_incremental, tape_keep, reuse_delay))

    @app.get("/v1/groups/{name}/points", responses=_errors(404))
    def points(name: str):
        return plain(appliance.points(name))

    # -- jobs of a group ------------------------------------------------------------------------------------------

    def _sync_params(body: SyncBody | None) -> dict | None:
        return {"accept_deletions": True} if body and body.accept_deletions else None

    def _started(job_id: int, coalesced: bool, **extra):
        return {"job": job_id, "coalesced": coalesced, **extra}

    @app.post("/v1/groups/{name}/sync", status_code=202, responses=_errors(400, 404, 409))
    def sync(name: str, body: SyncBody | None = None):
        return _started(*appliance.request(name, "sync", _sync_params(body)))

    @app.post("/v1/groups/{name}/point", status_code=202, responses=_errors(400, 404, 409))
    def point(name: str, body: SyncBody | None = None):
        return _started(*appliance.request(name, "point", _sync_params(body)))

    @app.post("/v1/groups/{name}/check", status_code=202, responses=_errors(400, 404, 409))
    def check(name: str, body: CheckBody | None = None):
        return _started(*appliance.request(name, "check", {"full": True} if body and body.full else None))

    @app.post("/v1/groups/{name}/prune", status_code=202, responses=_errors(404, 409))
    def prune(name: str):
        return _started(*appliance.request(name, "prune"))

    @app.post("/v1/groups/{name}/restore", status_code=202, responses=_errors(400, 404, 409))
    def restore(name: str, body: RestoreBody):
        point = None if body.point is None else str(body.point)
        job_id, chosen = appliance.restore(name, body.to, point, _utc(body.at), body.paths, body.overwrite)
        return _started(job_id, False, point=plain(chosen))

    # -- jobs -------------------------------------------------------------------------------------------------------

    @app.get("/v1/jobs", responses=_errors(400))
    def jobs(limit: Annotated[int, Query(ge=1, le=10_000)] = 50, state: str | None = None):
        return plain(appliance.jobs(limit, state))

    @app.get("/v1/jobs/{job_id}", responses=_errors(400, 404))
    def job(job_id: JobId):
        return plain(appliance.job(job_id))

    @app.get("/v1/jobs/{job_id}/events", responses=_errors(400, 404))
    def job_events(job_id: JobId):
        # The job's history: queued, started, waited, retried, its end (kept jobs.keep_history).
        return plain(appliance.job_events(job_id))

    @app.get("/v1/jobs/{job_id}/wait", responses=_errors(400, 404))
    async def wait_job(job_id: JobId, timeout: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 10.0):
        # A long poll: answers as soon as the job's end is recorded, else with the job as it is after `timeout`.
        return plain(await appliance.wait_job(job_id, timeout))

    @app.post("/v1/jobs/{job_id}/cancel", responses=_errors(400, 404, 409))
    def cancel(job_id: JobId):
        return plain(appliance.engine.cancel(job_id))

    # -- files, alerts, catalog -----------------------------------------------------------------------------------

    @app.get("/v1/versions", responses=_errors(400))
    def versions(request: Request, path: Annotated[Text, Query(json_schema_extra={"pattern": "^/[^\\u0000]*$"})]):
        # The query's bytes, not FastAPI's UTF-8 reading of them: a name that is not UTF-8 (%FF) becomes the same
        # surrogate escapes a JSON body carries, so GET and POST find the same versions.
        raw = parse_qs(request.scope.get("query_string", b"").decode("utf-8", "surrogateescape"), encoding="utf-8",
                       errors="surrogateescape").get("path", [path])
        return plain(appliance.versions(raw[0]))

    @app.post("/v1/versions", responses=_errors(400))
    def versions_of(body: PathBody):
        # The same as GET, for names that are not UTF-8: a JSON body carries surrogate escapes, a query cannot.
        return plain(appliance.versions(body.path))

    @app.get("/v1/alerts", responses=_errors(400))
    def list_alerts(all: bool = False):
        return plain(appliance.alerts(include_closed=all))

    @app.post("/v1/alerts/{alert_id}/ack", responses=_errors(400, 404))
    def ack(alert_id: AlertId):
        return plain(alerts.acknowledge(appliance.catalog, alert_id))

    @app.post("/v1/mail/test", responses=_errors(400))
    def mail_test():
        return appliance.notifier.test_mail()

    @app.post("/v1/catalog/rebuild", responses=_errors(409))
    def rebuild():
        return plain(appliance.rebuild_catalog())

    @app.post("/v1/catalog/forget-missing", responses=_errors(409))
    def forget_missing():
        return {"forgotten": appliance.forget_missing()}

    from appliance.api.browse_routes import browse_router  # they import this module's helpers
    from appliance.api.media_routes import media_router
    from appliance.api.report_routes import report_router
    from appliance.api.tape_routes import tape_router
    from appliance.api.vault_job_routes import vault_job_router
    from appliance.api.vault_routes import vault_router
    from appliance.api.vault_report_routes import vault_report_router
    app.include_router(media_router(appliance))
    app.include_router(tape_router(appliance))
    app.include_router(report_router(appliance))
    app.include_router(browse_router(appliance))
    app.include_router(vault_job_router(appliance))
    app.include_router(vault_router(appliance))
    app.include_router(vault_report_router(appliance))

    def openapi() -> dict:
        # Validation errors are answered 400 in the error shape (above), never FastAPI's 422: say so.
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for op in operations.values():
                    op.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app

