"""The tape job bodies the engine runs: tape backup (D2D2T, D2T), restore from tape, media verify, media rebuild."""

from __future__ import annotations

from typing import Callable

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.models import utcnow
from appliance.errors import NotFound
from appliance.media import format as fmt
from appliance.media import keys, pools, tape_backup, tape_rebuild, tape_restore
from appliance.media.index_cache import IndexCache
from appliance.media.tape_scan import verify_parts_on
from appliance.ops import alerts
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import plural
from appliance.vault.checks import record_check


class TapeTasks:
    def __init__(self, store, media, cache: IndexCache, block_size: int = fmt.BLOCK_SIZE):
        self.store, self.media, self.cache, self.block_size = store, media, cache, block_size

    def bodies(self) -> dict[str, Callable[[JobContext], Outcome]]:
        return {"tape-backup": self.backup, "tape-restore": self.restore, "media-verify": self.verify,
                "media-rebuild": self.rebuild}

    def backup(self, ctx: JobContext) -> Outcome:
        return tape_backup.backup(ctx, self.store, self.media, self.cache, self.block_size)

    def restore(self, ctx: JobContext) -> Outcome:
        return tape_restore.restore(ctx, self.media, self.cache)

    def rebuild(self, ctx: JobContext) -> Outcome:
        return tape_rebuild.rebuild(ctx, self.media, self.cache, self.block_size)

    def verify(self, ctx: JobContext) -> Outcome:
        barcode = ctx.params["barcode"]
        cart = cat.get_cartridge(ctx.catalog, barcode)
        library = cat.library_by_id(ctx.catalog, cart.library_id).name
        parts = [(s.uuid, p) for s in tape_sets.list_sets(ctx.catalog, states=("ok",))
                 for p in s.parts if p.barcode == barcode]
        try:
            indexes = {uuid: self.cache.load(uuid) for uuid in {u for u, _ in parts}}
        except FileNotFoundError:  # the appliance's copy, not the cartridge: no check is recorded against it
            raise NotFound(f"this appliance has no index copy of a set on {barcode}: without it the frames cannot "
                           "be checked", f"read the index copies back from the tapes with `tapeline media rebuild "
                           f"--library {library} --wait`, then verify again") from None
        ciphers = {s.uuid: keys.cipher_for_set(ctx.catalog, s) for s in tape_sets.list_sets(ctx.catalog)
                   if s.uuid in indexes}
        with self.media.acquire_drive(library, ctx, barcode=barcode) as lease:
            lease.mount(barcode)
            ctx.progress(0, None, f"reading {barcode}")
            found = verify_parts_on(lease.drive, barcode, parts, indexes, self.block_size, ciphers.get)
            lease.succeeded()
        result = {"verify": {"barcode": barcode, "sets": len({u for u, _ in parts}), **found}}
        record_check(ctx.catalog, barcode, utcnow(), found["problems"][0] if found["problems"] else None)
        if found["problems"]:
            pools.mark_suspect(ctx.catalog, barcode, f"verify found {plural(len(found['problems']), 'problem')}: "
                               f"{found['problems'][0]}"[:200], write=False)
            alerts.raise_alert(ctx.catalog, "error", f"cartridge {barcode} failed its verify: {found['problems'][0]}",
                               f"write its sets again to another cartridge (`tapeline tape backup GROUP --pool POOL`) "
                               f"and retire it; it is marked damaged and never written again", None, ctx.job_id,
                               about=("cartridge", barcode))
            return Outcome("failed", f"cartridge {barcode}: {plural(len(found['problems']), 'problem')}: "
                           f"{found['problems'][0]}", tuple(found["problems"]), result,
                           fix=f"write its sets again to another cartridge (`tapeline tape backup GROUP --pool "
                               f"POOL`) and retire it")
        return Outcome("completed", None, (), result)
