"""Browsing a recovery point's tree and finding files by name across a group's points, from the version index alone
(no manifest is read: the console answers from the catalog while the store is busy).

Invariants:
- A version is in point P when `first_point <= P < until_point` (until_point NULL: still current), as in points.py.
- One directory's entries come from one range scan of the lookup index (group, source, path): its descendants are
  the paths between `dir/` and `dir0` ('0' follows '/'), and only those with no further '/' are read from the table.
- Paths travel as text with surrogate escapes for bytes that are not UTF-8, as everywhere in the API.
"""

from __future__ import annotations

import bisect
import fnmatch
import os
import re
from dataclasses import dataclass

from sqlalchemy import Text, cast, func, select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import Source
from appliance.catalog.points import FV, PointInfo, VersionInfo, list_points, relative_path
from appliance.errors import NotFound, UsageError


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # full path on the protected machine
    kind: str  # "file" | "dir" | "symlink" | "other"
    size: int
    mtime_ns: int


def _text(raw: bytes) -> str:
    return os.fsdecode(raw)


def _sources(conn, group_id: int) -> list[tuple[int, str]]:
    return [tuple(r) for r in conn.execute(select(Source.id, Source.path).where(Source.group_id == group_id)
                                           .order_by(Source.path))]


def _locate(sources: list[tuple[int, str]], path: str) -> tuple[int, str, bytes] | None:
    """The source holding `path` (the deepest, should two nest) and the path relative to it, as the index has it."""
    held = [(source_id, root, rel) for source_id, root in sources
            if (rel := relative_path(root, path)) is not None]
    return max(held, key=lambda h: len(h[1]), default=None)


def _held(point_id: int):
    return (FV.c.first_point <= point_id) & (FV.c.until_point.is_(None) | (FV.c.until_point > point_id))


def _no_slash_after(conn, start: int):
    """True for index paths with no '/' from byte `start` (0-based) on: the direct children of a directory."""
    rest = func.substr(FV.c.path, start + 1)
    if conn.dialect.name == "postgresql":
        # bytea has no function form of position(); the escape encoding keeps '/' as it is.
        return func.strpos(func.encode(rest, "escape"), "/") == 0
    return func.instr(rest, b"/") == 0


def list_dir(catalog: Catalog, group_id: int, point: PointInfo, path: str | None) -> list[Entry]:
    """The entries of directory `path` (a full path on the protected machine) in `point`, by name; with no path, the
    group's sources themselves."""
    with catalog.read_engine.connect() as conn:
        sources = _sources(conn, group_id)
        if not path:
            roots = {r.source_id: r for r in conn.execute(
                select(FV.c.source_id, FV.c.kind, FV.c.size, FV.c.mtime_ns).where(
                    FV.c.group_id == group_id, FV.c.path == b"", _held(point.id)))}
            return [Entry(root, root, roots[i].kind, roots[i].size, roots[i].mtime_ns) if i in roots else
                    Entry(root, root, "dir", 0, 0) for i, root in sources]
        path = os.path.normpath(path)
        where = _locate(sources, path)
        if where is None:
            raise NotFound(f"{path} is not under a source of group '{point.group}'",
                           f"its sources are {', '.join(r for _, r in sources)}; browse from one of them")
        source_id, _root, rel = where
        in_source = (FV.c.group_id == group_id) & (FV.c.source_id == source_id)
        if rel:
            kind = conn.execute(select(FV.c.kind).where(in_source, FV.c.path == rel, _held(point.id))).scalar()
            if kind is None:
                raise NotFound(f"{path} is not in recovery point {point.id} of group '{point.group}'",
                               f"see which points hold it with `tapeline versions {path}`")
            if kind != "dir":
                raise UsageError(f"{path} is a {kind}, not a directory", f"list its parent {os.path.dirname(path)}")
        prefix = rel + b"/" if rel else b""
        below = [FV.c.path > prefix] + ([FV.c.path < rel + b"0"] if rel else [])
        rows = conn.execute(
            select(FV.c.path, FV.c.kind, FV.c.size, FV.c.mtime_ns)
            .where(in_source, *below, _no_slash_after(conn, len(prefix)), _held(point.id))
            .order_by(FV.c.path)).all()
    base = path.rstrip("/")
    return [Entry(_text(r.path[len(prefix):]), f"{base}/{_text(r.path[len(prefix):])}", r.kind, r.size, r.mtime_ns)
            for r in rows]


def _matcher(pattern: str):
    """A shell pattern on the file name, any case; a pattern without * ? [ matches names that contain it."""
    if not pattern.strip():
        raise UsageError("the search pattern is empty", "give part of a file name, or a pattern such as '*.conf'")
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return pattern, re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL).match


def _like(conn, pattern: str):
    """The same pattern as a LIKE on the whole path, for the database to narrow the rows down (it may let through a
    path whose '*' spans a '/': the name is matched again here). None when LIKE cannot say it (classes, non-ASCII)."""
    if "[" in pattern or "\\" in pattern or not pattern.isascii():
        return None
    like = "".join({"*": "%", "?": "_", "%": "\\%", "_": "\\_"}.get(c, c) for c in pattern)
    if conn.dialect.name == "postgresql":  # bytea has LIKE but no ILIKE; the escape encoding keeps ASCII as it is
        path = func.encode(FV.c.path, "escape")
        return path.ilike("%/" + like, escape="\\") | path.ilike(like, escape="\\")
    # SQLite's LIKE ignores ASCII case by default; it matches no BLOB, so the path is read as text (its UTF-8
    # decoder never takes a '/' into a broken sequence)
    path = cast(FV.c.path, Text)
    return path.like(f"%/{like}", escape="\\") | path.like(like, escape="\\")


def find(catalog: Catalog, group_id: int, group_name: str, pattern: str, limit: int) -> tuple[list[VersionInfo], bool]:
    """Every version, in any remaining point of the group, of the files whose name matches `pattern`; by source and
    path, then oldest first. At most `limit` versions, and whether more matched (the scan stops there)."""
    pattern, match = _matcher(pattern)
    found: list[VersionInfo] = []
    points = list_points(catalog, group_id, group_name)
    ids = [p.id for p in points]
    with catalog.read_engine.connect() as conn:
        sources = dict(_sources(conn, group_id))
        narrow = _like(conn, pattern)
        query = (select(FV.c.source_id, FV.c.path, FV.c.kind, FV.c.size, FV.c.mtime_ns, FV.c.first_point,
                        FV.c.until_point)
                 .where(FV.c.group_id == group_id, *([narrow] if narrow is not None else []))
                 .order_by(FV.c.source_id, FV.c.path, FV.c.first_point))
        for r in conn.execution_options(stream_results=True).execute(query):
            name = r.path.rsplit(b"/", 1)[-1]
            if not name or not match(_text(name)):
                continue
            lo = bisect.bisect_left(ids, r.first_point)
            hi = len(ids) if r.until_point is None else bisect.bisect_left(ids, r.until_point)
            if lo >= hi:
                continue  # no remaining point holds it
            if len(found) == limit:
                return found, True
            root = sources[r.source_id].rstrip("/")
            found.append(VersionInfo(group_name, sources[r.source_id], f"{root}/{_text(r.path)}", r.kind, r.size,
                                     r.mtime_ns, points[lo], points[hi - 1], hi - lo, r.until_point is None))
    return found, False
