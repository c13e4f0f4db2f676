"""The API routes of offsite rotation: vaults, pool rotation policies, receive, recall, sent back, the dry run
(docs/api.md, "Vaults"; docs/vault.md says what each does).

Handlers only translate, as in app.py: each calls one function of appliance/vault/ with the appliance's catalog
and the request's time. The operator's name travels in the body (the CLI sends the login name): it is recorded
with every move.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from appliance.api.app import GroupName, Text, _errors, plain
from appliance.catalog.models import utcnow
from appliance.config import parse_duration_option
from appliance.media.pools import parse_retention
from appliance.vault import dryrun, policy, rotation

Item = Annotated[Text, Field(min_length=1, max_length=64)]  # a barcode or a case number
Items = Annotated[list[Item], Field(min_length=1)]
Operator = Annotated[Text, Field(min_length=1, max_length=64)]


class VaultCreate(BaseModel):
    name: GroupName
    contact: Text = ""


class PolicyBody(BaseModel):
    vault: Text | None = None  # a vault's name; "" stops the pool rotating
    offsite_copies: Annotated[int, Field(ge=1, le=99)] | None = None
    recall: Text | None = None  # "expired" or a calendar event
    gfs: Text | None = None  # "daily=7d,weekly=5w,monthly=12m,yearly=7y"; "" or "none" turns it off
    retention: Text | None = None  # the pool's retention for untiered sets ("30d", "forever"), dry run only
    check_sample: Annotated[int, Field(ge=0, le=1000)] | None = None
    check_every: Text | None = None  # a duration ("90d")
    confirm: bool = False

    def change(self) -> policy.PolicyChange:
        return policy.PolicyChange(
            vault=self.vault, offsite_copies=None if self.offsite_copies is None else
            policy.parse_copies(self.offsite_copies),
            recall=None if self.recall is None else policy.parse_recall(self.recall),
            gfs=None if self.gfs is None else policy.parse_gfs(self.gfs),
            retention_seconds=None if self.retention is None else parse_retention(self.retention),
            retention_given=self.retention is not None, check_sample=self.check_sample,
            check_every_seconds=None if self.check_every is None else parse_duration_option("--check-every", self.check_every))


class ReceiveBody(BaseModel):
    items: Items
    vault: GroupName
    operator: Operator = "operator"
    skip: bool = False


class RecallBody(BaseModel):
    pool: GroupName | None = None
    items: list[Item] = Field(default_factory=list)
    force: bool = False
    operator: Operator = "operator"


class SentBackBody(BaseModel):
    items: Items
    operator: Operator = "operator"


def vault_router(appliance) -> APIRouter:
    router = APIRouter()

    def catalog():
        return appliance.catalog

    @router.get("/v1/vaults", responses=_errors())
    def vaults():
        return plain(rotation.list_all(catalog()))

    @router.post("/v1/vaults", status_code=201, responses=_errors(400, 409))
    def create(body: VaultCreate):
        return plain(rotation.create(catalog(), body.name, body.contact))

    @router.get("/v1/vaults/{name}", responses=_errors(404))
    def show(name: str):
        return plain(rotation.show(catalog(), name))

    @router.post("/v1/vault/receive", responses=_errors(400, 404, 409))
    def receive(body: ReceiveBody):
        return plain(rotation.receive(catalog(), body.items, body.vault, utcnow(), body.operator, body.skip))

    @router.post("/v1/vault/recall", responses=_errors(400, 404, 409))
    def recall(body: RecallBody):
        return plain(rotation.recall(catalog(), utcnow(), body.operator, body.pool, body.items, body.force))

    @router.post("/v1/vault/sent-back", responses=_errors(400, 404, 409))
    def sent_back(body: SentBackBody):
        return plain(rotation.sent_back(catalog(), body.items, utcnow(), body.operator))

    @router.get("/v1/vault/policies", responses=_errors(400, 404))
    def policies(pool: Annotated[Text | None, Query()] = None):
        return plain(rotation.policies(catalog(), pool))

    @router.get("/v1/vault/offsite-ready", responses=_errors(400, 404))
    def ready(pool: Annotated[Text | None, Query()] = None):
        return plain(rotation.ready(catalog(), utcnow(), pool))

    @router.post("/v1/pools/{name}/rotation", responses=_errors(400, 404, 409))
    def set_policy(name: str, body: PolicyBody):
        return plain(rotation.set_policy(catalog(), name, body.change(), utcnow(), body.confirm))

    @router.post("/v1/pools/{name}/dry-run", responses=_errors(400, 404))
    def dry_run(name: str, body: PolicyBody):
        return plain(dryrun.dry_run(catalog(), name, body.change(), utcnow()))

    return router
