"""Tape media in the catalog: libraries, drives, pools, cartridges, media sets (tables in models.py).

Invariants:
- Names (libraries, pools) follow the group name rule; a barcode is what the changer reads (1-32 printable ASCII).
- Rows handed out are detached copies (the session's expire_on_commit is off): reading them never touches the
  database, changing them changes nothing until passed back to a function here.
- Every unknown name or barcode is a NotFound naming the fix (the list command that shows the valid ones).
- A drive's number is its data transfer element number in the changer (mtx numbering), unique in its library.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from appliance.catalog.engine import Catalog
from appliance.catalog.groups import NAME_RE
from appliance.catalog.models import (CARTRIDGE_STATES, Cartridge, Drive, Library, MediaSet, Pool, TapeSet,
                                      TapeSetPart)
from appliance.errors import Conflict, NotFound, UsageError


def check_name(what: str, name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"{what} name {name!r} is not allowed",
                         "use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 64)")
    return name


# --- libraries and drives ---------------------------------------------------------------------------------------


def add_library(catalog: Catalog, name: str, changer_url: str, drives: list[tuple[int, str, str | None]]) -> Library:
    """A library with its drives as (number, url, serial)."""
    check_name("library", name)
    with catalog.session() as s:
        if s.exec(select(Library).where(Library.name == name)).first() is not None:
            raise Conflict(f"library '{name}' already exists", "choose another name, or see `tapeline library show "
                           f"{name}`")
        lib = Library(name=name, changer_url=changer_url, drive_urls=[url for _, url, _ in drives])
        s.add(lib)
        s.flush()
        for number, url, serial in drives:
            s.add(Drive(library_id=lib.id, number=number, url=url, serial=serial))
    return lib


def get_library(catalog: Catalog, name: str) -> Library:
    return get_named(catalog, Library, name, "tapeline library list",
                     "tapeline library add NAME CHANGER_URL DRIVE_URL...")


def library_by_id(catalog: Catalog, library_id: int) -> Library:
    with catalog.reader() as s:
        return s.get(Library, library_id)


def list_libraries(catalog: Catalog) -> list[Library]:
    with catalog.reader() as s:
        return list(s.exec(select(Library).order_by(Library.name)).all())


def touch_library(catalog: Catalog, library_id: int, when: datetime) -> None:
    with catalog.session() as s:
        lib = s.get(Library, library_id)
        lib.last_inventory = when
        s.add(lib)


def list_drives(catalog: Catalog, library_id: int | None = None) -> list[Drive]:
    with catalog.reader() as s:
        q = select(Drive).order_by(Drive.library_id, Drive.number)
        if library_id is not None:
            q = q.where(Drive.library_id == library_id)
        return list(s.exec(q).all())


def get_drive(catalog: Catalog, library: str, number: int) -> Drive:
    lib = get_library(catalog, library)
    with catalog.reader() as s:
        drive = s.exec(select(Drive).where(Drive.library_id == lib.id, Drive.number == number)).first()
        numbers = [d.number for d in s.exec(select(Drive).where(Drive.library_id == lib.id)).all()]
    if drive is None:
        raise NotFound(f"library '{library}' has no drive {number}",
                       f"its drives are {', '.join(map(str, sorted(numbers))) or 'none'} (`tapeline drive list`)")
    return drive


def update_drive(catalog: Catalog, drive_id: int, **changes) -> Drive:
    with catalog.session() as s:
        drive = s.get(Drive, drive_id)
        for key, value in changes.items():
            setattr(drive, key, value)
        s.add(drive)
    return drive


# --- pools ------------------------------------------------------------------------------------------------------


def create_pool(catalog: Catalog, name: str, library_id: int, retention_seconds: int | None, allocation: str,
                encrypt_key: str | None, key_fingerprint: str | None, verify: bool,
                reuse_delay_seconds: int) -> Pool:
    check_name("pool", name)
    with catalog.session() as s:
        if s.exec(select(Pool).where(Pool.name == name)).first() is not None:
            raise Conflict(f"pool '{name}' already exists", f"choose another name, or see `tapeline pool show {name}`")
        pool = Pool(name=name, library_id=library_id, retention_seconds=retention_seconds, allocation=allocation,
                    encrypt_key=encrypt_key, key_fingerprint=key_fingerprint, verify=verify,
                    reuse_delay_seconds=reuse_delay_seconds)
        s.add(pool)
    return pool


def get_pool(catalog: Catalog, name: str) -> Pool:
    return get_named(catalog, Pool, name, "tapeline pool list", "tapeline pool create NAME --library LIB")


def pool_by_id(catalog: Catalog, pool_id: int) -> Pool:
    with catalog.reader() as s:
        return s.get(Pool, pool_id)


def list_pools(catalog: Catalog) -> list[Pool]:
    with catalog.reader() as s:
        return list(s.exec(select(Pool).order_by(Pool.name)).all())


def get_named(catalog: Catalog, table, name: str, list_command: str, create_command: str):
    """The row of `table` (library, pool, vault) named `name`; NotFound names the known ones or how to make one."""
    with catalog.reader() as s:
        row = s.exec(select(table).where(table.name == name)).first()
    if row is None:
        raise NotFound(f"{table.__tablename__} '{name}' does not exist",
                       _known(catalog, table, list_command, create_command))
    return row


def _known(catalog: Catalog, table, list_command: str, create_command: str) -> str:
    with catalog.reader() as s:
        names = list(s.exec(select(table.name).order_by(table.name).limit(6)).all())
    if not names:
        return f"create one with `{create_command}`"
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"known: {shown} (`{list_command}`)"


# --- cartridges -------------------------------------------------------------------------------------------------


def get_cartridge(catalog: Catalog, barcode: str) -> Cartridge:
    with catalog.reader() as s:
        cart = s.exec(select(Cartridge).where(Cartridge.barcode == barcode)).first()
    if cart is None:
        raise NotFound(f"no cartridge {barcode!r} in the catalog",
                       "see `tapeline media list`; a new cartridge is known after `tapeline library inventory LIB`")
    return cart


def find_barcode(catalog: Catalog, barcode: str) -> Cartridge | None:
    with catalog.reader() as s:
        return find_cartridge(s, barcode)


def add_cartridge(catalog: Catalog, barcode: str, library_id: int, kind: str, number: int | None,
                  when: datetime) -> Cartridge:
    """A cartridge first known by its label (its barcode unreadable): `blank` until sorted."""
    with catalog.session() as s:
        cart = Cartridge(barcode=barcode, library_id=library_id, location_kind=kind, location_number=number,
                         first_seen=when)
        s.add(cart)
        return cart


QUERY_VALUES = 900  # values one IN query binds at most (SQLite's bound-parameter limit is 999)


def cartridges_in(session: Session, column, values) -> list[Cartridge]:
    """The cartridges whose `column` (Cartridge.id, Cartridge.barcode) is one of `values`: one query per
    QUERY_VALUES of them, not one per cartridge."""
    values = sorted(values)
    return [c for start in range(0, len(values), QUERY_VALUES)
            for c in session.exec(select(Cartridge).where(column.in_(values[start:start + QUERY_VALUES]))).all()]


def find_cartridge(session: Session, barcode: str) -> Cartridge | None:
    return session.exec(select(Cartridge).where(Cartridge.barcode == barcode)).first()


def list_cartridges(catalog: Catalog, pool_id: int | None = None, state: str | None = None,
                    library_id: int | None = None, media_set_id: int | None = None) -> list[Cartridge]:
    if state is not None and state not in CARTRIDGE_STATES:
        raise UsageError(f"unknown cartridge state {state!r}", f"use one of {', '.join(CARTRIDGE_STATES)}")
    with catalog.reader() as s:
        q = select(Cartridge).order_by(Cartridge.barcode)
        if pool_id is not None:
            q = q.where(Cartridge.pool_id == pool_id)
        if state is not None:
            q = q.where(Cartridge.state == state)
        if library_id is not None:
            q = q.where(Cartridge.library_id == library_id)
        if media_set_id is not None:
            q = q.where(Cartridge.media_set_id == media_set_id)
        return list(s.exec(q).all())


def update_cartridge(catalog: Catalog, barcode: str, **changes) -> Cartridge:
    with catalog.session() as s:
        cart = find_cartridge(s, barcode)
        if cart is None:
            raise NotFound(f"no cartridge {barcode!r} in the catalog", "see `tapeline media list`")
        for key, value in changes.items():
            setattr(cart, key, value)
        s.add(cart)
    return cart


def count_mount(catalog: Catalog, barcode: str, drive_number: int, when: datetime) -> None:
    with catalog.session() as s:
        cart = find_cartridge(s, barcode)
        if cart is not None:
            cart.mounts += 1
            cart.last_used = when
            cart.location_kind, cart.location_number = "drive", drive_number
            s.add(cart)


# --- media sets and tape sets -----------------------------------------------------------------------------------


def media_sets(catalog: Catalog, pool_id: int | None = None) -> list[MediaSet]:
    with catalog.reader() as s:
        q = select(MediaSet).order_by(MediaSet.id)
        if pool_id is not None:
            q = q.where(MediaSet.pool_id == pool_id)
        return list(s.exec(q).all())


def media_set_by_id(catalog: Catalog, media_set_id: int) -> MediaSet:
    with catalog.reader() as s:
        return s.get(MediaSet, media_set_id)


def media_set_by_uuid(catalog: Catalog, uuid: str) -> MediaSet | None:
    with catalog.reader() as s:
        return s.exec(select(MediaSet).where(MediaSet.uuid == uuid)).first()


def sets_on(catalog: Catalog, cartridge_id: int) -> list[TapeSet]:
    """The tape sets with a part on the cartridge, oldest first."""
    with catalog.reader() as s:
        q = (select(TapeSet).join(TapeSetPart, TapeSetPart.set_id == TapeSet.id)
             .where(TapeSetPart.cartridge_id == cartridge_id).order_by(TapeSet.id).distinct())
        return list(s.exec(q).all())


def set_counts(catalog: Catalog, media_set_ids: list[int]) -> dict[int, tuple[int, int]]:
    """media set id -> (good tape sets, their bytes)."""
    if not media_set_ids:
        return {}
    with catalog.reader() as s:
        rows = s.exec(select(TapeSet.media_set_id, func.count(TapeSet.id), func.coalesce(func.sum(TapeSet.bytes), 0))
                      .where(TapeSet.media_set_id.in_(media_set_ids), TapeSet.state == "ok")
                      .group_by(TapeSet.media_set_id)).all()
    return {ms: (n, int(b)) for ms, n, b in rows}


def replace_library_urls(catalog: Catalog, library_id: int, changer_url: str,
                         drives: list[tuple[int, str, str | None]]) -> None:
    """New URLs for a registered library (its drives keep their records where the number stays)."""
    with catalog.session() as s:
        lib = s.get(Library, library_id)
        lib.changer_url, lib.drive_urls = changer_url, [url for _, url, _ in drives]
        s.add(lib)
        rows = {d.number: d for d in s.exec(select(Drive).where(Drive.library_id == library_id))}
        for number, url, serial in drives:
            row = rows.pop(number, None) or Drive(library_id=library_id, number=number, url=url)
            row.url, row.serial = url, serial
            s.add(row)
        for gone in rows.values():
            s.delete(gone)


def drop_parts_on(catalog: Catalog, cartridge_id: int) -> int:
    """The cartridge was relabelled or erased: forget the set parts it held, and the sets left with no part."""
    with catalog.session() as s:
        parts = s.exec(select(TapeSetPart).where(TapeSetPart.cartridge_id == cartridge_id)).all()
        set_ids = {p.set_id for p in parts}
        for p in parts:
            s.delete(p)
        s.flush()
        for set_id in set_ids:
            if s.exec(select(TapeSetPart).where(TapeSetPart.set_id == set_id)).first() is None:
                s.delete(s.get(TapeSet, set_id))
        return len(parts)

