"""Tape sets in the catalog: one recovery point (or a direct read of a group's sources) written to tape, and where
each of its parts lies.

Invariants:
- A set is recorded "writing" when its job starts and becomes "ok" only after its last part's index is on tape (and
  its verify passed, when the pool verifies); a daemon that died meanwhile leaves it "writing", which the next start
  turns "failed" (`fail_unfinished`): such a set never counts, and its cartridges are appended to after their last
  good set (their `next_file` only moves once a part is complete).
- Parts are recorded as they complete; a set's parts are numbered from 1 in the order they were written.
- The recovery point a tape backup was asked to write is pinned from the moment the job is queued until it ends
  (`pinned_snapshots`): the group's prune keeps it, though the job no longer holds the group's syncs back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import Cartridge, Job, MediaSet, Pool, TapePolicy, TapeSet, TapeSetPart
from appliance.errors import NotFound

# The reserved group of the catalog backups each export writes (vault/drplan.py): a name no protection group can take
# (group names start with a letter or digit). Its sets are no generation of the pool's data (media/pools.py GFS).
DR_GROUP = "_catalog"


@dataclass(frozen=True)
class PartInfo:
    part: int
    barcode: str
    tape_file: int
    index_file: int | None
    first_block: int
    blocks: int


@dataclass(frozen=True)
class SetInfo:
    id: int
    uuid: str
    group: str
    group_id: int | None
    point_id: int | None
    snapshot_id: str | None
    kind: str
    pool: str
    media_set: str
    created: datetime
    state: str
    verified: datetime | None
    files: int
    bytes: int
    expires: datetime | None
    base_set_id: int | None
    parts: tuple[PartInfo, ...]

    def to_json(self) -> dict:
        return {"id": self.id, "uuid": self.uuid, "group": self.group, "point": self.point_id,
                "snapshot_id": self.snapshot_id, "kind": self.kind, "pool": self.pool, "media_set": self.media_set,
                "created": self.created.isoformat(), "state": self.state,
                "verified": self.verified.isoformat() if self.verified else None, "files": self.files,
                "bytes": self.bytes, "expires": self.expires.isoformat() if self.expires else None,
                "base_set": self.base_set_id,
                "cartridges": [{"barcode": p.barcode, "part": p.part, "tape_file": p.tape_file,
                                "index_file": p.index_file} for p in self.parts]}


def create_set(catalog: Catalog, uuid: str, media_set_id: int, group_id: int | None, group_name: str,
               point_id: int | None, snapshot_id: str | None, kind: str, base_set_id: int | None,
               created: datetime) -> int:
    with catalog.session() as s:
        row = TapeSet(uuid=uuid, media_set_id=media_set_id, group_id=group_id, group_name=group_name,
                      point_id=point_id, snapshot_id=snapshot_id, kind=kind, base_set_id=base_set_id, created=created)
        s.add(row)
        s.flush()
        return row.id


def add_part(catalog: Catalog, set_id: int, part: int, barcode: str, tape_file: int, index_file: int,
             first_block: int, blocks: int) -> None:
    with catalog.session() as s:
        cart = s.exec(select(Cartridge).where(Cartridge.barcode == barcode)).one()
        old = s.exec(select(TapeSetPart).where(TapeSetPart.set_id == set_id, TapeSetPart.part == part)).first()
        if old is not None:  # a part written again in a later attempt
            s.delete(old)
            s.flush()
        s.add(TapeSetPart(set_id=set_id, part=part, cartridge_id=cart.id, tape_file=tape_file,
                          index_file=index_file, first_block=first_block, blocks=blocks))


def drop_parts(catalog: Catalog, set_id: int) -> None:
    """An attempt abandoned: its parts are written again elsewhere."""
    with catalog.session() as s:
        for part in s.exec(select(TapeSetPart).where(TapeSetPart.set_id == set_id)):
            s.delete(part)


def finish_set(catalog: Catalog, set_id: int, state: str, files: int = 0, nbytes: int = 0,
               expires: datetime | None = None, verified: datetime | None = None) -> None:
    with catalog.session() as s:
        row = s.get(TapeSet, set_id)
        row.state, row.files, row.bytes, row.expires, row.verified = state, files, nbytes, expires, verified
        s.add(row)


def pinned_snapshots(catalog: Catalog, group_id: int) -> set[str]:
    """The recovery points (store snapshot ids) the group's queued or running tape backups are to write."""
    with catalog.reader() as s:
        params = s.exec(select(Job.params).where(Job.group_id == group_id, Job.kind == "tape-backup",
                                                 Job.state.in_(("queued", "running")))).all()
    return {p["snapshot_id"] for p in params if p.get("snapshot_id")}


def fail_unfinished(catalog: Catalog) -> list[str]:
    """Sets a killed daemon left "writing" never count; returns their uuids."""
    with catalog.session() as s:
        rows = s.exec(select(TapeSet).where(TapeSet.state == "writing")).all()
        for row in rows:
            row.state = "failed"
            s.add(row)
        return [row.uuid for row in rows]


def _info(s, row: TapeSet) -> SetInfo:
    ms = s.get(MediaSet, row.media_set_id)
    pool = s.get(Pool, ms.pool_id) if ms else None
    parts = s.exec(select(TapeSetPart, Cartridge.barcode).join(Cartridge, Cartridge.id == TapeSetPart.cartridge_id)
                   .where(TapeSetPart.set_id == row.id).order_by(TapeSetPart.part)).all()
    return SetInfo(row.id, row.uuid, row.group_name, row.group_id, row.point_id, row.snapshot_id, row.kind,
                   pool.name if pool else "?", ms.uuid if ms else "?", row.created, row.state, row.verified,
                   row.files, row.bytes, row.expires, row.base_set_id,
                   tuple(PartInfo(p.part, barcode, p.tape_file, p.index_file, p.first_block, p.blocks)
                         for p, barcode in parts))


def list_sets(catalog: Catalog, group: str | None = None, states: tuple[str, ...] | None = None,
              media_set_id: int | None = None) -> list[SetInfo]:
    with catalog.reader() as s:
        q = select(TapeSet).order_by(TapeSet.id)
        if group is not None:
            q = q.where(TapeSet.group_name == group)
        if media_set_id is not None:
            q = q.where(TapeSet.media_set_id == media_set_id)
        if states:
            q = q.where(TapeSet.state.in_(states))
        return [_info(s, row) for row in s.exec(q).all()]


def get_set(catalog: Catalog, set_id: int) -> SetInfo:
    with catalog.reader() as s:
        row = s.get(TapeSet, set_id)
        if row is None:
            raise NotFound(f"tape set {set_id} does not exist", "list them with `tapeline tape sets`")
        return _info(s, row)


def set_by_uuid(catalog: Catalog, uuid: str) -> SetInfo | None:
    with catalog.reader() as s:
        row = s.exec(select(TapeSet).where(TapeSet.uuid == uuid)).first()
        return _info(s, row) if row else None


def chain(catalog: Catalog, newest: SetInfo) -> list[SetInfo]:
    """The sets a restore of `newest` reads: itself and, for an incremental, every base set it builds on, the full
    first (the order a restore reads them). A base is followed whatever its state: one no longer good (expired,
    failed) is still a set the restore needs, and refuses (tape_restore), so a plan or report shows it with its
    state rather than dropping its cartridges. Ends at a set without a base (or one the catalog no longer has)."""
    sets, seen = [newest], {newest.id}
    with catalog.reader() as s:
        while sets[-1].base_set_id is not None and sets[-1].base_set_id not in seen:
            row = s.get(TapeSet, sets[-1].base_set_id)
            if row is None:
                break
            sets.append(_info(s, row))
            seen.add(row.id)
    return sets[::-1]


def newest_good(catalog: Catalog) -> list[SetInfo]:
    """Each group's newest good set (by time written, then id), by group name: one grouped query, then the sets."""
    with catalog.reader() as s:
        newest = (select(TapeSet.group_name, func.max(TapeSet.created).label("created"))
                  .where(TapeSet.state == "ok").group_by(TapeSet.group_name).subquery())
        ids = s.exec(select(TapeSet.group_name, func.max(TapeSet.id))
                     .join(newest, (TapeSet.group_name == newest.c.group_name)
                           & (TapeSet.created == newest.c.created))
                     .where(TapeSet.state == "ok").group_by(TapeSet.group_name)
                     .order_by(TapeSet.group_name)).all()
        return [_info(s, s.get(TapeSet, set_id)) for _group, set_id in ids]


def last_set(catalog: Catalog, group: str, pool_id: int) -> SetInfo | None:
    """The group's newest good set in the pool (the base of an incremental)."""
    with catalog.reader() as s:
        row = s.exec(select(TapeSet).join(MediaSet, MediaSet.id == TapeSet.media_set_id)
                     .where(TapeSet.group_name == group, TapeSet.state == "ok", MediaSet.pool_id == pool_id)
                     .order_by(TapeSet.id.desc())).first()
        return _info(s, row) if row else None


def set_at(catalog: Catalog, group: str, at: datetime | None) -> SetInfo:
    """The group's newest good set made at or before `at` (the newest of all without `at`)."""
    with catalog.reader() as s:
        q = select(TapeSet).where(TapeSet.group_name == group, TapeSet.state == "ok")
        if at is not None:
            q = q.where(TapeSet.created <= at)
        row = s.exec(q.order_by(TapeSet.created.desc(), TapeSet.id.desc())).first()
        if row is None:
            when = f" made at or before {at.isoformat()}" if at else ""
            raise NotFound(f"group '{group}' has no tape set{when}",
                           f"list them with `tapeline tape sets {group}`; write one with "
                           f"`tapeline tape backup {group} --pool POOL --wait`")
        return _info(s, row)


# -- a group's tape schedule ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInfo:
    group_id: int
    pool: str
    full: str
    incremental: str | None


def set_policy(catalog: Catalog, group_id: int, pool_id: int, full: str, incremental: str | None) -> None:
    with catalog.session() as s:
        row = s.get(TapePolicy, group_id) or TapePolicy(group_id=group_id, pool_id=pool_id, full=full)
        row.pool_id, row.full, row.incremental = pool_id, full, incremental
        s.add(row)


def clear_policy(catalog: Catalog, group_id: int) -> None:
    with catalog.session() as s:
        row = s.get(TapePolicy, group_id)
        if row is not None:
            s.delete(row)


def get_policy(catalog: Catalog, group_id: int) -> PolicyInfo | None:
    with catalog.reader() as s:
        row = s.get(TapePolicy, group_id)
        if row is None:
            return None
        pool = s.get(Pool, row.pool_id)
        return PolicyInfo(row.group_id, pool.name if pool else "?", row.full, row.incremental)
