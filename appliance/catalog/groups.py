"""Protection groups and their sources in the catalog.

Invariants: a group name is unique and safe in a path and a URL ([A-Za-z0-9][A-Za-z0-9._-]{0,63}); a group has at
least one source; source paths are absolute and normalised, and no source of a group is inside another of the same
group (a file would otherwise be protected twice). Values handed out are frozen `GroupInfo`s, not live rows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import FileVersion, ProtectionGroup, RecoveryPoint, Source
from appliance.errors import Conflict, NotFound, UsageError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class SourceInfo:
    id: int
    path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceInput:
    path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupInfo:
    id: int
    name: str
    sources: tuple[SourceInfo, ...]
    sync_seconds: int
    point_times: tuple[str, ...]
    keep_seconds: int
    paused: bool
    created: datetime


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"group name {name!r} is not allowed",
                         "use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 64)")
    return name


def normalise_sources(sources: list[SourceInput]) -> list[SourceInput]:
    if not sources:
        raise UsageError("a protection group needs at least one source", "add --source PATH")
    out: list[SourceInput] = []
    for src in sources:
        if not os.path.isabs(src.path):
            raise UsageError(f"source {src.path!r} is not an absolute path", f"give it as {os.path.abspath(src.path)}")
        out.append(SourceInput(os.path.normpath(src.path), tuple(src.include), tuple(src.exclude)))
    paths = sorted(s.path for s in out)
    for a in paths:
        for b in paths:
            if a != b and (b + os.sep).startswith(a.rstrip(os.sep) + os.sep):
                raise UsageError(f"source {b} is inside source {a} of the same group", f"keep only {a}")
    if len(set(paths)) != len(paths):
        raise UsageError("the same source is given twice", "give each --source once")
    return out


def _info(s, group: ProtectionGroup) -> GroupInfo:
    sources = s.exec(select(Source).where(Source.group_id == group.id).order_by(Source.id)).all()
    return GroupInfo(
        id=group.id, name=group.name,
        sources=tuple(SourceInfo(x.id, x.path, tuple(x.include), tuple(x.exclude)) for x in sources),
        sync_seconds=group.sync_seconds, point_times=tuple(t for t in group.point_times.split(",") if t),
        keep_seconds=group.keep_seconds, paused=group.paused, created=group.created)


def _row(s, name: str) -> ProtectionGroup:
    group = s.exec(select(ProtectionGroup).where(ProtectionGroup.name == name)).first()
    if group is None:
        raise NotFound(f"protection group '{name}' does not exist", "list groups with `tapeline group list`")
    return group


def create_group(catalog: Catalog, name: str, sources: list[SourceInput], sync_seconds: int,
                 point_times: tuple[str, ...], keep_seconds: int, paused: bool = False) -> GroupInfo:
    check_name(name)
    sources = normalise_sources(sources)
    with catalog.session() as s:
        if s.exec(select(ProtectionGroup).where(ProtectionGroup.name == name)).first() is not None:
            raise Conflict(f"protection group '{name}' already exists",
                           f"choose another name or change it with `tapeline group change {name}`")
        group = ProtectionGroup(name=name, sync_seconds=sync_seconds, point_times=",".join(point_times),
                                keep_seconds=keep_seconds, paused=paused)
        s.add(group)
        s.flush()
        for src in sources:
            s.add(Source(group_id=group.id, path=src.path, include=list(src.include), exclude=list(src.exclude)))
        s.flush()
        return _info(s, group)


def get_group(catalog: Catalog, name: str) -> GroupInfo:
    with catalog.reader() as s:
        return _info(s, _row(s, name))


def get_group_by_id(catalog: Catalog, group_id: int) -> GroupInfo:
    with catalog.reader() as s:
        group = s.get(ProtectionGroup, group_id)
        if group is None:
            raise NotFound(f"protection group {group_id} no longer exists", "list groups with `tapeline group list`")
        return _info(s, group)


def list_groups(catalog: Catalog) -> list[GroupInfo]:
    with catalog.reader() as s:
        return [_info(s, g) for g in s.exec(select(ProtectionGroup).order_by(ProtectionGroup.name)).all()]


def change_group(catalog: Catalog, name: str, *, sync_seconds: int | None = None,
                 point_times: tuple[str, ...] | None = None, keep_seconds: int | None = None,
                 paused: bool | None = None, add_sources: list[SourceInput] = (),
                 remove_sources: list[str] = ()) -> GroupInfo:
    """Change a group's settings. A removed source's files stay in older points until retention prunes them."""
    with catalog.session() as s:
        group = _row(s, name)
        if sync_seconds is not None:
            group.sync_seconds = sync_seconds
        if point_times is not None:
            group.point_times = ",".join(point_times)
        if keep_seconds is not None:
            group.keep_seconds = keep_seconds
        if paused is not None:
            group.paused = paused
        s.add(group)
        current = {x.path: x for x in s.exec(select(Source).where(Source.group_id == group.id)).all()}
        for path in remove_sources:
            path = os.path.normpath(path)
            if path not in current:
                raise NotFound(f"group '{name}' has no source {path}", f"see its sources with `tapeline group show {name}`")
            # Its file versions leave the index with it (ON DELETE CASCADE); the store still holds the points.
            s.delete(current.pop(path))
        merged = [SourceInput(p, tuple(x.include), tuple(x.exclude)) for p, x in current.items()]
        merged += [SourceInput(x.path, tuple(x.include), tuple(x.exclude)) for x in add_sources]
        normalise_sources(merged)
        for src in normalise_sources(list(add_sources)) if add_sources else ():
            if src.path in current:
                raise Conflict(f"group '{name}' already protects {src.path}", "nothing to add")
            s.add(Source(group_id=group.id, path=src.path, include=list(src.include), exclude=list(src.exclude)))
        s.flush()
        return _info(s, group)


def delete_group(catalog: Catalog, name: str) -> GroupInfo:
    """Remove a group and its index (points, versions) from the catalog. The store's data is not touched here."""
    with catalog.session() as s:
        group = _row(s, name)
        info = _info(s, group)
        s.execute(delete(FileVersion).where(FileVersion.group_id == group.id))
        s.execute(delete(RecoveryPoint).where(RecoveryPoint.group_id == group.id))
        s.execute(delete(Source).where(Source.group_id == group.id))
        s.delete(group)
    return info
