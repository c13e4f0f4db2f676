"""`tapeline media rebuild --library LIB`: the tape catalog again from the cartridges alone (their labels and index
files), after the catalog and the disk store were lost.

Every cartridge in the library's slots and drives is mounted and walked (tape_scan); pools and media sets unknown to
the catalog are created from the labels (a pool found this way keeps its data forever until an operator sets its
retention: nothing found on tape is ever recycled by a guess); each set whose parts are all found, the last one
complete, is recorded "ok" with its parts, and its index files are kept as the appliance's copy (index_cache).
A set with a part missing (a cartridge not in the library) is named in the result, and recorded once it is found.
"""

from __future__ import annotations

import logging
from datetime import timezone

from sqlmodel import select

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.groups import list_groups
from appliance.catalog.models import Cartridge, MediaSet, Pool, utcnow
from appliance.errors import NotFound
from appliance.media import format as fmt
from appliance.media.drives import ForeignCartridge, LabelMismatch
from appliance.media.index_cache import IndexCache
from appliance.media.pools import IN_LIBRARY
from appliance.media.tape_scan import FoundPart, scan_tape
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import noun

log = logging.getLogger("tapeline.media.rebuild")


def rebuild(ctx: JobContext, media, cache: IndexCache, block_size: int = fmt.BLOCK_SIZE) -> Outcome:
    name = ctx.params["library"]
    library = cat.get_library(ctx.catalog, name)
    ctx.progress(0, None, f"inventory of library {name}")
    media.library(name).inventory(utcnow())
    carts = [c for c in cat.list_cartridges(ctx.catalog)
             if c.library_id == library.id and c.location_kind in IN_LIBRARY and c.state != "cleaning"]
    found: dict[str, list[FoundPart]] = {}
    warnings: list[str] = []
    read = stored = 0
    tapes = 0
    with media.acquire_drive(name, ctx) as lease:
        for i, cart in enumerate(carts):
            if ctx.cancel.is_set():
                return Outcome("cancelled", "cancelled by request")
            ctx.progress(i, len(carts), f"reading the labels and indexes of {cart.barcode}")
            try:
                lease.mount(cart.barcode)
            except (ForeignCartridge, LabelMismatch) as exc:
                warnings.append(f"{cart.barcode}: {exc.message}")
                if isinstance(exc, ForeignCartridge):
                    cat.update_cartridge(ctx.catalog, cart.barcode, state="foreign", note=exc.message[:200])
                continue
            scan = scan_tape(lease.drive, cart.barcode, block_size)
            read += scan.bytes_read
            stored += scan.bytes_on_tape
            warnings.extend(scan.problems)
            _record_cartridge(ctx, library, cart, scan)
            tapes += 1
            for part in scan.parts:
                found.setdefault(part.header.set_uuid, []).append(part)
        lease.succeeded()
    recorded, partial = _record_sets(ctx, found, cache)
    for uuid, missing in partial:
        warnings.append(f"set {uuid} lacks {noun(len(missing), 'part')} {', '.join(map(str, missing))}: put the "
                        f"cartridges holding them into the library and run `tapeline media rebuild --library {name}` "
                        "again")
    result = {"rebuild": {"cartridges": tapes, "sets": recorded, "incomplete_sets": len(partial),
                          "bytes_read": read, "bytes_on_tape": stored}}
    state = "completed with warnings" if warnings else "completed"
    return Outcome(state, warnings[0] if warnings else None, tuple(warnings), result)


def _record_cartridge(ctx: JobContext, library, cart: Cartridge, scan) -> None:
    if scan.blank:
        cat.update_cartridge(ctx.catalog, cart.barcode, state="scratch", label_uuid=None)
        return
    if scan.foreign is not None:
        cat.update_cartridge(ctx.catalog, cart.barcode, state="foreign", note=scan.foreign[:200])
        return
    if scan.media_set is None:  # labelled, in no media set yet
        pool = _pool(ctx, library, scan.volume.pool) if scan.volume.pool else None
        cat.update_cartridge(ctx.catalog, cart.barcode, state="scratch", label_uuid=scan.volume.uuid,
                             pool_id=pool.id if pool else None)
        return
    pool = _pool(ctx, library, scan.media_set.pool)
    ms = _media_set(ctx, pool, scan.media_set)
    cat.update_cartridge(ctx.catalog, cart.barcode, state="allocated", label_uuid=scan.volume.uuid, pool_id=pool.id,
                         media_set_id=ms.id, sequence=scan.media_set.sequence, next_file=scan.next_file,
                         bytes_written=scan.bytes_on_tape, expires=ms.expires)


def _pool(ctx: JobContext, library, name: str) -> Pool:
    """The pool a label names; one the catalog lacks is created keeping its data forever (see the module's doc)."""
    try:
        return cat.get_pool(ctx.catalog, name)
    except NotFound:
        return cat.create_pool(ctx.catalog, name, library.id, None, "continue", None, None, True, 0)


def _media_set(ctx: JobContext, pool: Pool, label: "fmt.MediaSetLabel") -> MediaSet:
    with ctx.catalog.session() as s:
        ms = s.exec(select(MediaSet).where(MediaSet.uuid == label.media_set)).first()
        if ms is None:
            ms = MediaSet(uuid=label.media_set, pool_id=pool.id, created=label.created.astimezone(timezone.utc),
                          retention_seconds=pool.retention_seconds, key_fingerprint=label.key_fingerprint)
            s.add(ms)
            s.flush()
        return ms


def _record_sets(ctx: JobContext, found: dict[str, list[FoundPart]], cache: IndexCache) -> tuple[int, list]:
    """Record the whole sets found (those the catalog has already are kept as they are); (whole sets, partial)."""
    recorded, partial = 0, []
    groups = {g.name: g.id for g in list_groups(ctx.catalog)}
    for uuid, parts in found.items():
        parts.sort(key=lambda p: p.header.part)
        numbers = [p.header.part for p in parts]
        last = parts[-1]
        if numbers != list(range(1, len(parts) + 1)) or not last.index.complete:
            missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers)) or [max(numbers) + 1]
            partial.append((uuid, missing))
            continue
        recorded += 1
        if tape_sets.set_by_uuid(ctx.catalog, uuid) is not None:
            continue  # the catalog has it already
        header = parts[0].header
        ms = cat.media_set_by_uuid(ctx.catalog, header.media_set)
        for part in parts:
            cache.save(uuid, part.header.part, part.raw_index)
        set_id = tape_sets.create_set(ctx.catalog, uuid, ms.id, groups.get(header.group), header.group, header.point,
                                      header.snapshot_id, header.kind, None, header.created.astimezone(timezone.utc))
        for part in parts:
            tape_sets.add_part(ctx.catalog, set_id, part.header.part, part.barcode, part.tape_file, part.index_file,
                               part.first_block, part.blocks)
        files = sum(1 for p in parts for e in p.index.entries if e.in_set is None)
        nbytes = sum(f.raw_length for p in parts for f in p.index.frames)
        tape_sets.finish_set(ctx.catalog, set_id, "ok", files, nbytes, ms.expires)
    return recorded, partial
