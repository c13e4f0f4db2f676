"""Recovery points and the file-version index.

The index holds one row per version of each path: (group, source, path) plus the id range of the group's recovery
points that hold it, `[first_point, until_point)` (until_point NULL: still current). A sync therefore writes only
what changed (SyncResult.changes): "added" inserts a row, "changed" closes the open row and inserts one, "deleted"
closes the open row. A sync where nothing changed writes one `recovery_point` row and no `file_version` row.

Invariants:
- Rows are written in batches of BATCH rows from generators (constant memory): the driver's executemany of plain
  tuples on SQLite, COPY on PostgreSQL.
- A point and its index changes commit in one transaction: the catalog never shows a point without its versions.
- Pruning points deletes the version rows that no remaining point holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Iterable, Iterator, NamedTuple

from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, update

from appliance.catalog.engine import Catalog
from appliance.catalog.models import FileVersion, ProtectionGroup, RecoveryPoint, Source

BATCH = 10_000
FV = FileVersion.__table__
RP = RecoveryPoint.__table__


@dataclass(frozen=True)
class PointInfo:
    id: int
    snapshot_id: str
    group: str
    kind: str
    time: datetime
    state: str
    files: int
    bytes: int


@dataclass(frozen=True)
class VersionInfo:
    group: str
    source: str
    path: str            # full path on the protected machine (surrogateescape for names that are not UTF-8)
    kind: str
    size: int
    mtime_ns: int
    first_point: PointInfo  # the oldest remaining point holding this version
    last_point: PointInfo   # the newest one
    points: int
    current: bool           # still what the newest point holds


class IndexChange(NamedTuple):  # a tuple: a first sync makes one per file
    """One change to apply to the index: what "added" | "changed" | "deleted"; kind/size/mtime for new versions."""

    source: str
    path: bytes
    what: str
    kind: str = "file"
    size: int = 0
    mtime_ns: int = 0


def _batches(items: Iterable, size: int = BATCH) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _point_info(row, group: str) -> PointInfo:
    return PointInfo(row.id, row.snapshot_id, group, row.kind, row.time, row.state, row.files, row.bytes)


def record_point(catalog: Catalog, group_id: int, snapshot_id: str, kind: str, time: datetime, files: int,
                 nbytes: int, changes: Iterable[IndexChange | tuple], state: str = "ok") -> int:
    """Add a recovery point and apply its changes to the version index, in one transaction. Returns the point id.

    `changes` may be IndexChange values or plain tuples in the same order (a sync's `changes.brief()`): a first
    sync hands over one per file, so no per-row object is made and the rows go to the driver in one pass."""
    with catalog.engine.begin() as conn:
        point_id = conn.execute(insert(RP).values(snapshot_id=snapshot_id, group_id=group_id, kind=kind, time=time,
                                                  state=state, files=files, bytes=nbytes)).inserted_primary_key[0]
        sources = dict(conn.execute(select(Source.path, Source.id).where(Source.group_id == group_id)).all())
        close = (update(FV).where(FV.c.group_id == group_id, FV.c.source_id == bindparam("b_source"),
                                  FV.c.path == bindparam("b_path"), FV.c.until_point.is_(None))
                 .values(until_point=point_id))
        for batch in _batches(changes):
            # An old row is closed before its path's new row goes in: the close must not meet the new one.
            closes = [{"b_source": sources[source], "b_path": path} for source, path, what, *_ in batch
                      if what != "added" and source in sources]
            if closes:
                conn.execute(close, closes)
            rows = [(group_id, sources[source], path, kind or "file", size, mtime_ns, point_id)
                    for source, path, what, kind, size, mtime_ns in batch
                    if what != "deleted" and source in sources]
            if rows:
                _insert_versions(conn, rows)
    return point_id


_COLUMNS = ("group_id", "source_id", "path", "kind", "size", "mtime_ns", "first_point")
_INSERT = f"INSERT INTO file_version ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def _insert_versions(conn, rows: list[tuple]) -> None:
    if conn.dialect.name == "postgresql":
        # COPY is several times faster than a multi-row INSERT here, and runs in the same transaction.
        with conn.connection.driver_connection.cursor() as cur:
            with cur.copy(f"COPY file_version ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    else:  # the driver's executemany on plain tuples: Core's per-row dicts and bind processors cost more here
        conn.connection.driver_connection.executemany(_INSERT, rows)


def drop_points(catalog: Catalog, group_id: int, snapshot_ids: Iterable[str]) -> int:
    """Forget pruned points and the versions no remaining point holds. Returns how many points were dropped.

    Only versions whose range meets the dropped ids can lose their last point, so only those are examined: the
    prune after every sync stays cheap however many files the group has."""
    ids = list(snapshot_ids)
    if not ids:
        return 0
    with catalog.engine.begin() as conn:
        point_ids: list[int] = []
        for batch in _batches(ids, 1000):
            point_ids += conn.execute(select(RP.c.id).where(RP.c.group_id == group_id, RP.c.snapshot_id.in_(batch)))\
                .scalars().all()
        if not point_ids:
            return 0
        for batch in _batches(point_ids, 1000):
            conn.execute(delete(RP).where(RP.c.id.in_(batch)))
        lo, hi = min(point_ids), max(point_ids)
        newest = conn.execute(select(func.max(RP.c.id)).where(RP.c.group_id == group_id)).scalar()
        meets = (FV.c.until_point.is_not(None)) & (FV.c.until_point > lo)
        in_group = FV.c.group_id == group_id
        if newest is None or newest < hi:  # current versions are held by the newest point, unless it went too
            meets = meets | FV.c.until_point.is_(None)
        else:
            # Only versions closed after `lo` can lose their last point: found through the until_point index.
            # `group_id + 0` keeps SQLite from walking every version of the group by the lookup index instead.
            in_group = (FV.c.group_id + 0) == group_id
        held = exists().where(RP.c.group_id == FV.c.group_id, RP.c.id >= FV.c.first_point,
                              (FV.c.until_point.is_(None)) | (RP.c.id < FV.c.until_point))
        conn.execute(delete(FV).where(in_group, FV.c.first_point <= hi, meets, ~held))
    return len(point_ids)


def mark_damaged(catalog: Catalog, snapshot_ids: Iterable[str]) -> None:
    ids = list(snapshot_ids)
    if ids:
        with catalog.engine.begin() as conn:
            conn.execute(update(RP).where(RP.c.snapshot_id.in_(ids)).values(state="damaged"))


def clear_damaged(catalog: Catalog, snapshot_ids: Iterable[str]) -> None:
    """The points a full check found whole again are "ok" once more."""
    ids = list(snapshot_ids)
    if ids:
        with catalog.engine.begin() as conn:
            conn.execute(update(RP).where(RP.c.snapshot_id.in_(ids)).values(state="ok"))


def points_by_snapshot(catalog: Catalog, snapshot_ids: Iterable[str]) -> dict[str, PointInfo]:
    """The catalog's points for these snapshot ids, in any group (a chunk may be shared across groups)."""
    ids = list(snapshot_ids)
    if not ids:
        return {}
    with catalog.read_engine.connect() as conn:
        rows = conn.execute(select(RP, ProtectionGroup.name).join(ProtectionGroup, ProtectionGroup.id == RP.c.group_id)
                            .where(RP.c.snapshot_id.in_(ids))).all()
    return {r.snapshot_id: _point_info(r, r.name) for r in rows}


def list_points(catalog: Catalog, group_id: int, group_name: str) -> list[PointInfo]:
    with catalog.read_engine.connect() as conn:
        rows = conn.execute(select(RP).where(RP.c.group_id == group_id).order_by(RP.c.id)).all()
    return [_point_info(r, group_name) for r in rows]


def known_snapshots(catalog: Catalog, group_id: int) -> set[str]:
    with catalog.read_engine.connect() as conn:
        return set(conn.execute(select(RP.c.snapshot_id).where(RP.c.group_id == group_id)).scalars())


def count_points(catalog: Catalog) -> int:
    with catalog.read_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RP)).scalar_one()


def relative_path(root: str, path: str) -> bytes | None:
    """`path` (normalised) as the index holds it under source `root`: b"" for the root itself, None when it is not
    under that source."""
    base = root.rstrip("/")
    if path == (base or "/"):
        return b""
    if path.startswith(base + "/"):
        return os.fsencode(path[len(base) + 1:])
    return None


def versions(catalog: Catalog, path: str) -> list[VersionInfo]:
    """Every version of `path` (an absolute path on the protected machine) in every group protecting it."""
    path = os.path.normpath(path)
    out: list[VersionInfo] = []
    with catalog.read_engine.connect() as conn:
        sources = conn.execute(select(Source.id, Source.path, Source.group_id, ProtectionGroup.name)
                               .join(ProtectionGroup, ProtectionGroup.id == Source.group_id)).all()
        for source_id, root, group_id, group_name in sources:
            rel = relative_path(root, path)
            if rel is None:
                continue
            rows = conn.execute(select(FV).where(FV.c.group_id == group_id, FV.c.source_id == source_id,
                                                 FV.c.path == rel).order_by(FV.c.first_point)).all()
            for row in rows:
                held = [RP.c.group_id == group_id, RP.c.id >= row.first_point]
                if row.until_point is not None:
                    held.append(RP.c.id < row.until_point)
                points = conn.execute(select(RP).where(and_(*held)).order_by(RP.c.id)).all()
                if not points:
                    continue
                out.append(VersionInfo(group_name, root, path, row.kind, row.size, row.mtime_ns,
                                       _point_info(points[0], group_name), _point_info(points[-1], group_name),
                                       len(points), row.until_point is None))
    out.sort(key=lambda v: (v.group, v.first_point.time))
    return out
