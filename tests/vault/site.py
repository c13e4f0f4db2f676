"""A catalog with a library, pools and written media sets, made through the real pool and tape-set code (the
writes a tape backup job makes, without the tapes): what the vault policy tests start from."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from appliance.catalog import tape_sets
from sqlmodel import select

from appliance.catalog.media import add_library, create_pool, find_cartridge, get_pool
from appliance.catalog.models import Cartridge, MediaSet, Pool
from appliance.catalog.moves import move
from appliance.catalog.vaults import create_vault
from appliance.media import pools

DAY = 86400


class Site:
    def __init__(self, catalog, cartridges: int = 12):
        self.catalog = catalog
        self.library = add_library(catalog, "vtl", "local:///nowhere", [])
        self.vault = create_vault(catalog, "ironvault", contact="+1 555 0100")
        with catalog.session() as s:
            for i in range(cartridges):
                s.add(Cartridge(barcode=f"A{i:05d}L9", library_id=self.library.id, state="scratch",
                                location_kind="slot", location_number=i + 1))
        self._next = 0

    def pool(self, name: str, retention_days: int | None = 7, allocation: str = "always", vault: bool = True,
             **policy) -> Pool:
        create_pool(self.catalog, name, self.library.id, None if retention_days is None else retention_days * DAY,
                    allocation, None, None, True, 0)
        with self.catalog.session() as s:
            row = s.get(Pool, get_pool(self.catalog, name).id)
            row.vault_id = self.vault.id if vault else None
            for key, value in policy.items():
                setattr(row, key, value)
            s.add(row)
        return get_pool(self.catalog, name)

    def write(self, pool: str, when: datetime, group: str = "docs", verified: bool = True, state: str = "ok",
              tapes: int = 1, point: int | None = None, snapshot: str | None = None) -> list[str]:
        """One tape set of `group` into the pool's media set at `when` (a new media set starts on `tapes` fresh
        cartridges); returns the barcodes of that media set's cartridges."""
        ms = pools.media_set_for_write(self.catalog, pool, when)
        if not self.barcodes(ms.id):
            for _ in range(tapes):
                pools.join_media_set(self.catalog, f"A{self._next:05d}L9", ms, when)
                self._next += 1
        set_id = tape_sets.create_set(self.catalog, str(uuid.uuid4()), ms.id, None, group, point, snapshot, "full",
                                      None, when)
        for part, barcode in enumerate(self.barcodes(ms.id)[-tapes:], start=1):
            tape_sets.add_part(self.catalog, set_id, part, barcode, 2 * part, 2 * part + 1, 0, 10)
        ms = pools.stamp_set(self.catalog, ms.id, when)  # as the job does after its last part, before the verify
        if state != "writing":
            tape_sets.finish_set(self.catalog, set_id, state, 10, 1000, ms.expires, when if verified else None)
        return self.barcodes(ms.id)

    def barcodes(self, media_set_id: int) -> list[str]:
        with self.catalog.reader() as s:
            return list(s.exec(select(Cartridge.barcode).where(Cartridge.media_set_id == media_set_id)
                               .order_by(Cartridge.sequence)).all())

    def media_set_of(self, barcode: str) -> MediaSet:
        with self.catalog.reader() as s:
            return s.get(MediaSet, find_cartridge(s, barcode).media_set_id)

    def send(self, barcodes: list[str], when: datetime, to: str = "vault") -> None:
        """The cartridges went out and arrived in the vault."""
        with self.catalog.session() as s:
            for barcode in barcodes:
                cart = find_cartridge(s, barcode)
                move(s, cart, "courier", when, operator="ann", vault_id=self.vault.id)
                if to == "vault":
                    move(s, cart, "vault", when + timedelta(hours=4), operator="ann")

