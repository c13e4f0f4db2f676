"""The API routes of the media side: libraries, drives, pools, cartridges (docs/api.md, "Tape media").

Handlers only translate, as in app.py: each calls one function of appliance/media/admin.py on `appliance.media`.
Requests that load cartridges (detailed inventory, label, erase, clean, load, unload) answer 202 with the job that
does it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from appliance.api.app import MAX_ID, Text, _errors, plain
from appliance.catalog.groups import NAME_RE
from appliance.media import admin

Name = Annotated[Text, Field(json_schema_extra={"pattern": f"^{NAME_RE.pattern}$"})]
DriveNumber = Annotated[int, Path(ge=0, le=MAX_ID)]
Barcode = Annotated[Text, Field(min_length=1, max_length=32)]


class LibraryCreate(BaseModel):
    name: Name
    changer_url: Annotated[Text, Field(min_length=1)]
    drive_urls: Annotated[list[Annotated[Text, Field(min_length=1)]], Field(json_schema_extra={"minItems": 1})]


class PoolCreate(BaseModel):
    name: Name
    library: Name
    retention: Text | None = None  # "30d" or "forever"
    allocation: Text | None = None  # "continue", "always" or a calendar event
    encrypt: Text | None = None  # the key file's absolute path
    verify: bool = True
    reuse_delay: Text | None = None


class PoolChange(BaseModel):
    retention: Text | None = None
    apply_to_written: bool = False
    confirm: bool = False


class LabelBody(BaseModel):
    barcodes: Annotated[list[Barcode], Field(json_schema_extra={"minItems": 1})]
    pool: Name
    force: bool = False


class EraseBody(BaseModel):
    force: bool = False


class LoadBody(BaseModel):
    barcode: Barcode
    drive: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None  # None: any free drive
    library: Name | None = None  # a check: the cartridge's own library


class UnloadBody(BaseModel):
    barcode: Barcode | None = None  # the cartridge, wherever it is loaded; or:
    drive: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None
    library: Name | None = None  # the drive's library; None: the only one


def media_router(appliance) -> APIRouter:
    router = APIRouter()

    def media():
        return appliance.media

    # -- libraries and drives -----------------------------------------------------------------------------------

    @router.get("/v1/libraries", responses=_errors())
    def libraries():
        return plain(admin.list_libraries(media()))

    @router.post("/v1/libraries", status_code=201, responses=_errors(400, 409))
    def add_library(body: LibraryCreate):
        return plain(admin.add_library(media(), body.name, body.changer_url, body.drive_urls))

    @router.get("/v1/libraries/{name}", responses=_errors(404))
    def library(name: str):
        return plain(admin.show_library(media(), name))

    @router.post("/v1/libraries/{name}/inventory", responses=_errors(404))
    def inventory(name: str):
        return plain(admin.inventory(media(), name, detailed=False))

    @router.post("/v1/libraries/{name}/inventory/detailed", status_code=202, responses=_errors(404, 409))
    def detailed_inventory(name: str):
        return admin.inventory(media(), name, detailed=True)

    @router.get("/v1/drives", responses=_errors())
    def drives():
        return plain(admin.list_drives(media()))

    @router.post("/v1/libraries/{name}/drives/{number}/enable", responses=_errors(400, 404))
    def enable(name: str, number: DriveNumber):
        return plain(admin.set_drive_enabled(media(), name, number, True))

    @router.post("/v1/libraries/{name}/drives/{number}/disable", responses=_errors(400, 404))
    def disable(name: str, number: DriveNumber):
        return plain(admin.set_drive_enabled(media(), name, number, False))

    @router.post("/v1/libraries/{name}/drives/{number}/clean", status_code=202, responses=_errors(400, 404, 409))
    def clean(name: str, number: DriveNumber):
        return admin.clean_drive(media(), name, number)

    # -- pools --------------------------------------------------------------------------------------------------

    @router.get("/v1/pools", responses=_errors())
    def pools():
        return plain(admin.list_pools(media()))

    @router.post("/v1/pools", status_code=201, responses=_errors(400, 404, 409))
    def create_pool(body: PoolCreate):
        return plain(admin.create_pool(media(), body.name, body.library, body.retention, body.allocation,
                                       body.encrypt, body.verify, body.reuse_delay))

    @router.get("/v1/pools/{name}", responses=_errors(404))
    def pool(name: str):
        return plain(admin.show_pool(media(), name))

    @router.patch("/v1/pools/{name}", responses=_errors(400, 404, 409))
    def change_pool(name: str, body: PoolChange):
        return plain(admin.change_pool(media(), name, body.retention, body.apply_to_written, body.confirm))

    # -- cartridges ---------------------------------------------------------------------------------------------

    @router.get("/v1/media", responses=_errors(400, 404))
    def cartridges(pool: Annotated[Text | None, Query()] = None, state: Annotated[Text | None, Query()] = None):
        return plain(admin.list_media(media(), pool, state))

    @router.get("/v1/media/{barcode}", responses=_errors(404))
    def cartridge(barcode: str):
        return plain(admin.show_media(media(), barcode))

    @router.post("/v1/media/label", status_code=202, responses=_errors(400, 404, 409))
    def label(body: LabelBody):
        return admin.label(media(), body.barcodes, body.pool, body.force)

    @router.post("/v1/media/{barcode}/erase", status_code=202, responses=_errors(400, 404, 409))
    def erase(barcode: str, body: EraseBody):
        return admin.erase(media(), barcode, body.force)

    @router.post("/v1/media/load", status_code=202, responses=_errors(400, 404, 409))
    def load(body: LoadBody):
        return admin.load(media(), body.barcode, body.drive, body.library)

    @router.post("/v1/media/unload", status_code=202, responses=_errors(400, 404, 409))
    def unload(body: UnloadBody):
        return admin.unload(media(), body.barcode, body.drive, body.library)

    return router
