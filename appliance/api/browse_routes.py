"""The API routes that browse a group's recovery points: one directory of a point, and files found by name across
the points (docs/api.md, "Browsing recovery points").

Handlers only translate, as in app.py: the answers come from appliance/catalog/browse.py (the version index).
Paths in a query are read from the query's own bytes, as GET /v1/versions does, so names that are not UTF-8 (%FF)
arrive as the same surrogate escapes a JSON body carries.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request

from appliance.api.app import Text, _errors, plain
from appliance.catalog import browse
from appliance.catalog.groups import get_group

FIND_LIMIT = 1000  # versions a search answers by default; `truncated` says when more matched


def _raw(request: Request, name: str, parsed: str | None) -> str | None:
    query = request.scope.get("query_string", b"").decode("utf-8", "surrogateescape")
    return parse_qs(query, encoding="utf-8", errors="surrogateescape").get(name, [parsed])[0]


def browse_router(appliance) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/groups/{name}/tree", responses=_errors(400, 404))
    def tree(request: Request, name: str,
             path: Annotated[Text | None, Query(json_schema_extra={"pattern": "^/[^\\u0000]*$"})] = None,
             point: Annotated[Text | None, Query()] = None):
        # No path: the group's sources. No point: the newest (the ID `tapeline points` shows, or a snapshot id).
        group = get_group(appliance.catalog, name)
        chosen = appliance.resolve_point(name, point)
        path = _raw(request, "path", path)
        entries = browse.list_dir(appliance.catalog, group.id, chosen, path)
        return {"group": group.name, "point": plain(chosen), "path": path, "entries": plain(entries)}

    @router.get("/v1/groups/{name}/find", responses=_errors(400, 404))
    def find(request: Request, name: str, pattern: Annotated[Text, Query(min_length=1)],
             limit: Annotated[int, Query(ge=1, le=100_000)] = FIND_LIMIT):
        group = get_group(appliance.catalog, name)
        found, truncated = browse.find(appliance.catalog, group.id, group.name, _raw(request, "pattern", pattern),
                                       limit)
        return {"group": group.name, "pattern": pattern, "versions": plain(found), "truncated": truncated}

    return router
