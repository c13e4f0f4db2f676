"""The API routes of tape jobs: tape backup, sets, restore from tape, media verify and rebuild (docs/api.md, "Tape").

Handlers only translate, as in app.py: each calls one method of `appliance.tape` (media/tape_desk.py), which checks
the request before it queues the job; a request that starts a job answers 202 with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from appliance.api.app import MAX_ID, AbsPath, GroupName, Text, _errors, _utc, plain

SetId = Annotated[int, Field(ge=1, le=MAX_ID)]


class TapeBackupBody(BaseModel):
    pool: GroupName
    point: int | Text | None = None  # the ID `tapeline points` shows, or a snapshot id; None: the newest
    kind: Text = "full"  # "full" | "incremental" | "direct"


class TapeRestoreBody(BaseModel):
    to: AbsPath
    set: SetId | None = None
    at: datetime | None = None
    paths: list[AbsPath] = Field(default_factory=list)
    overwrite: bool = False


class TapePolicyBody(BaseModel):
    pool: GroupName
    full: Text
    incremental: Text | None = None


def _set(info) -> dict:
    return plain(info.to_json())


def tape_router(appliance) -> APIRouter:
    router = APIRouter()

    def desk():
        return appliance.tape

    @router.post("/v1/groups/{name}/tape-backup", status_code=202, responses=_errors(400, 404, 409))
    def tape_backup(name: str, body: TapeBackupBody):
        point = None if body.point is None else str(body.point)
        job_id, chosen = desk().backup(name, body.pool, point, body.kind)
        return {"job": job_id, "coalesced": False, "point": plain(chosen) if chosen else None}

    @router.put("/v1/groups/{name}/tape-policy", responses=_errors(400, 404))
    def tape_policy(name: str, body: TapePolicyBody):
        return plain(desk().set_policy(name, body.pool, body.full, body.incremental))

    @router.get("/v1/tape/sets", responses=_errors(400))
    def tape_sets(group: Annotated[Text | None, Query()] = None):
        return [_set(s) for s in desk().sets(group)]

    @router.post("/v1/groups/{name}/tape-restore", status_code=202, responses=_errors(400, 404, 409))
    def tape_restore(name: str, body: TapeRestoreBody):
        job_id, chosen = desk().restore(name, body.to, body.set, _utc(body.at), body.paths, body.overwrite)
        return {"job": job_id, "coalesced": False, "set": _set(chosen)}

    @router.post("/v1/media/{barcode}/verify", status_code=202, responses=_errors(400, 404, 409))
    def media_verify(barcode: Annotated[Text, Path(min_length=1, max_length=32)]):
        return {"job": desk().verify(barcode), "coalesced": False}

    @router.post("/v1/libraries/{name}/rebuild", status_code=202, responses=_errors(400, 404, 409))
    def media_rebuild(name: Annotated[Text, Path(min_length=1, max_length=64)]):
        return {"job": desk().rebuild(name), "coalesced": False}

    return router
