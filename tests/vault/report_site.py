"""A small site in mid-rotation for the report tests, made in a real catalog through the catalog's own functions
(moves.move records every move as an operator's commands would).

At NOW:
- pool `offsite` (vault `iron`, 30 days' retention): media set M1 closed and verified, on A00001L9 (slot 1) and
  A00002L9 (slot 2): ready to go offsite; M0 in the vault: B00001L9 (loose, in no case: a case comes back as one,
  at its latest cartridge's expiry) expired a day ago (due back, not recalled); in case C7, B00002L9 unexpired (M0b:
  holds the group's older full set); C00001L9 recalled ten days ago (overdue);
  of M0b too: D00001L9 ejected into mail slot 1 for the courier; D00002L9 handed to the courier five days ago,
  never received; E00001L9 in the vault by the catalog but seen in slot 5 by an inventory.
- pool `local` (no vault): S00001L9 and S00002L9 scratch; F00001L9 no longer seen by an inventory (missing);
  G00001L9 damaged, with read errors.
- group `files`: a full set on B00002L9 (40 days ago), then a full on A00001L9 and an incremental on A00002L9.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import select

from appliance.catalog.engine import open_catalog
from appliance.catalog.media import add_library, create_pool, find_cartridge
from appliance.catalog.models import Cartridge, MediaSet, Pool, TapeSet, TapeSetPart
from appliance.catalog.moves import move, relocate
from appliance.catalog.vaults import case_for, create_vault
from tests.appliance.daemon_harness import make_daemon

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _media_set(s, pool_id: int, uuid: str, closed: datetime, expires: datetime | None) -> MediaSet:
    ms = MediaSet(uuid=uuid, pool_id=pool_id, created=closed - DAY, closed=closed, expires=expires,
                  retention_seconds=30 * 86400, last_written=closed)
    s.add(ms)
    s.flush()
    return ms


def _cart(s, library_id: int, barcode: str, slot: int | None, **fields) -> Cartridge:
    cart = Cartridge(barcode=barcode, library_id=library_id, location_kind="slot" if slot else "outside",
                     location_number=slot, first_seen=NOW - 400 * DAY, **fields)
    s.add(cart)
    s.flush()
    return cart


def _set(s, uuid: str, media_set: MediaSet, carts: list[Cartridge], kind: str, created: datetime,
         base: int | None = None) -> int:
    row = TapeSet(uuid=uuid, media_set_id=media_set.id, group_id=None, group_name="files", kind=kind,
                  base_set_id=base, created=created, state="ok", verified=created + timedelta(hours=1),
                  files=10, bytes=1000, expires=media_set.expires)
    s.add(row)
    s.flush()
    for i, cart in enumerate(carts, 1):
        s.add(TapeSetPart(set_id=row.id, part=i, cartridge_id=cart.id, tape_file=2, index_file=3))
    return row.id


def make_site(catalog, now: datetime = NOW) -> None:
    lib = add_library(catalog, "vtl", "local:///vtl/changer", [])
    iron = create_vault(catalog, "iron", contact="Iron Mountain, +1 555 0100")
    offsite = create_pool(catalog, "offsite", lib.id, 30 * 86400, "continue", None, None, True, 0)
    local = create_pool(catalog, "local", lib.id, 30 * 86400, "continue", None, None, True, 0)
    with catalog.session() as s:
        pool = s.get(Pool, offsite.id)
        pool.vault_id = iron.id
        s.add(pool)
        m1 = _media_set(s, offsite.id, "m1", now - 2 * DAY, now + 28 * DAY)
        m0 = _media_set(s, offsite.id, "m0", now - 31 * DAY, now - DAY)
        m0b = _media_set(s, offsite.id, "m0b", now - 39 * DAY, now + 5 * DAY)
        a1 = _cart(s, lib.id, "A00001L9", 1, pool_id=offsite.id, media_set_id=m1.id, sequence=0, state="full",
                   expires=m1.expires)
        a2 = _cart(s, lib.id, "A00002L9", 2, pool_id=offsite.id, media_set_id=m1.id, sequence=1, state="full",
                   expires=m1.expires)
        full_old = {"pool_id": offsite.id, "state": "full"}
        b1 = _cart(s, lib.id, "B00001L9", 11, media_set_id=m0.id, expires=m0.expires, **full_old)
        b2 = _cart(s, lib.id, "B00002L9", 12, media_set_id=m0b.id, expires=m0b.expires, **full_old)
        c1 = _cart(s, lib.id, "C00001L9", 13, media_set_id=m0.id, expires=m0.expires, **full_old)
        d1 = _cart(s, lib.id, "D00001L9", 14, media_set_id=m0b.id, expires=m0b.expires, **full_old)
        d2 = _cart(s, lib.id, "D00002L9", 15, media_set_id=m0b.id, expires=m0b.expires, **full_old)
        e1 = _cart(s, lib.id, "E00001L9", 16, media_set_id=m0b.id, expires=m0b.expires, **full_old)
        case = case_for(s, "C7", iron.id)
        for cart in (b1, b2, c1, e1):
            move(s, cart, "courier", now - 30 * DAY, operator="ann", vault_id=iron.id)
            move(s, cart, "vault", now - 29 * DAY, operator="ann")
            cart.case_id = case.id if cart is not b1 else None
        move(s, c1, "vaultretrieve", now - 10 * DAY, operator="ann")
        move(s, d1, "courier", now - DAY, operator="tapeline", vault_id=iron.id)
        relocate(s, d1, "mailslot", 1, now - DAY, operator="tapeline")
        move(s, d2, "courier", now - 5 * DAY, operator="ann", vault_id=iron.id)
        relocate(s, e1, "slot", 5, now - 2 * DAY, operator="tapeline",
                 reason="inventory of library vtl: expected elsewhere")
        for barcode in ("S00001L9", "S00002L9"):
            _cart(s, lib.id, barcode, 20 + int(barcode[-3]), pool_id=local.id, state="scratch")
        f1 = _cart(s, lib.id, "F00001L9", 30, pool_id=local.id, state="full")
        move(s, f1, "notmountable", now - 3 * DAY, operator="tapeline",
             reason="inventory of library vtl: no longer seen")
        _cart(s, lib.id, "G00001L9", 31, pool_id=local.id, state="damaged", read_errors=2, note="verify failed")
        _set(s, "old-full", m0b, [b2], "full", now - 40 * DAY)
        full = _set(s, "new-full", m1, [a1], "full", now - 3 * DAY)
        _set(s, "new-incr", m1, [a2], "incremental", now - 2 * DAY - timedelta(hours=6), base=full)


def cartridge(catalog, barcode: str) -> Cartridge:
    with catalog.reader() as s:
        return find_cartridge(s, barcode)


def barcodes(catalog, **where) -> list[str]:
    with catalog.reader() as s:
        q = select(Cartridge.barcode)
        for key, value in where.items():
            q = q.where(getattr(Cartridge, key) == value)
        return sorted(s.exec(q).all())


def served_site(tmp_path):
    """A started daemon on a SQLite catalog holding the site (make_site, as of now) and a group `files` of an empty
    directory `tmp_path`/src."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    cat = open_catalog(url)
    make_site(cat, datetime.now(timezone.utc))
    cat.close()
    daemon = make_daemon(tmp_path, url).start()
    (tmp_path / "src").mkdir()
    daemon.run("group", "create", "files", "--source", str(tmp_path / "src"))
    return daemon
