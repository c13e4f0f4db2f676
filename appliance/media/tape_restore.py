"""The restore-from-tape job: files, directories or a whole set of a group, by set or by time, into a directory.

The appliance's copy of the set's index (index_cache) says which members are wanted and which frames hold them;
an incremental's unchanged members are read from the set that holds them. Cartridges are read in barcode then
block order (one mount each, one LOCATE per run of frames); one outside the library is asked for: the job waits,
with an alert naming it and where the catalog last saw it, until it is back (or the job is cancelled).

Invariants: the same safety rules as a disk restore (media.extract: no overwrite without `--overwrite`, no symlink
followed below the target); the job says "completed" only when every wanted member was written and made durable;
members lost to a bad block are named, and every other member is still restored.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.models import utcnow
from appliance.media import format as fmt
from appliance.media import keys
from appliance.media.extract import Extractor
from appliance.media.index_cache import IndexCache
from appliance.media.pools import IN_LIBRARY
from appliance.media.tape_read import FrameSource, ReadResult, SetLayout, plan, read_run
from appliance.ops import alerts
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import plural

log = logging.getLogger("tapeline.media.restore")

WAIT_POLL = 5.0


def wanted_paths(paths: list[str] | None):
    """A predicate over member paths (bytes, no leading "/"): under one of `paths` (full paths), or everything."""
    if not paths:
        return lambda path: True
    roots = [p.encode("utf-8", "surrogateescape").strip(b"/") for p in paths]

    def wanted(path: bytes) -> bool:
        return any(not root or path == root or path.startswith(root + b"/") for root in roots)
    return wanted


def select_entries(indexes: list["fmt.SetIndex"], paths: list[str] | None) -> list["fmt.IndexEntry"]:
    """The entries under `paths`, and the first name of every hardlink among them: a hardlink has no data of its
    own on tape, so the name that holds it is restored too (and the hardlink made to it)."""
    wanted = wanted_paths(paths)
    chosen = [e for index in indexes for e in index.entries if wanted(e.path)]
    names = {e.path for e in chosen}
    needed = {e.link for e in chosen if e.type == "hardlink" and e.link is not None and e.link not in names}
    if needed:
        chosen += [e for index in indexes for e in index.entries if e.path in needed]
    return chosen


def restore(ctx: JobContext, media, cache: IndexCache) -> Outcome:
    began = time.monotonic()
    p = ctx.params
    chosen = tape_sets.get_set(ctx.catalog, p["set_id"])
    entries = select_entries(cache.load(chosen.uuid), p.get("paths"))
    by_holder: dict[str, list] = {}
    for entry in entries:
        by_holder.setdefault(entry.in_set or chosen.uuid, []).append(entry)
    layouts: dict[str, SetLayout] = {}
    ciphers: dict = {}
    for holder in by_holder:
        info = chosen if holder == chosen.uuid else tape_sets.set_by_uuid(ctx.catalog, holder)
        if info is None or info.state != "ok":
            return Outcome("failed", f"set {chosen.id} needs set {holder}, which the catalog does not have as good",
                           fix="rebuild the tape catalog with `tapeline media rebuild --library LIBRARY --wait`")
        layouts[holder] = SetLayout.of(cache.load(holder), {part.part: part.barcode for part in info.parts})
        ciphers[holder] = keys.cipher_for_set(ctx.catalog, info)
    runs = [run for holder, wanted in by_holder.items() for run in plan(layouts[holder], wanted)]
    runs.sort(key=lambda r: (r.barcode, r.block))
    # every part of a set a run reads: a member may run on into the set's next cartridge
    needed = sorted({barcode for run in runs for barcode in run.layout.barcodes.values()})
    library = _library_of(ctx, needed)
    if not _wait_in_library(ctx, media, needed, library):
        return Outcome("cancelled", "cancelled while waiting for cartridges")
    started = time.monotonic()
    result = ReadResult()
    loaded: list[str] = []
    # The Extractor's `with`: a drive error ends its writer thread and syncs what was written before it is raised.
    with Extractor(Path(p["target"]), bool(p.get("overwrite")), ctx.progress) as extractor, \
            media.acquire_drive(library, ctx, barcode=runs[0].barcode if runs else None) as lease:
        def mount(barcode: str):
            if lease.barcode != barcode:
                lease.mount(barcode)
                loaded.append(barcode)
            return lease.drive
        sources = {holder: FrameSource(layout, mount, ciphers[holder]) for holder, layout in layouts.items()}
        first_byte: list[float] = []

        def write(info, data) -> None:
            if not first_byte:  # the first member is in hand: its frame came off the tape
                first_byte.append(time.monotonic() - began)
            extractor.write(info, data)
        for run in runs:
            if ctx.cancel.is_set():
                break
            read_run(run, sources[run.layout.set_uuid], write, result)
        bytes_read = sum(s.bytes_read for s in sources.values())
        lease.succeeded()
    done = extractor.close()
    seconds = time.monotonic() - started
    warnings = list(result.warnings) + list(done.warnings)
    if result.lost:
        shown = ", ".join("/" + p.decode("utf-8", "backslashreplace") for p in result.lost[:10])
        warnings.insert(0, f"{plural(len(result.lost), 'file')} lost to damaged blocks: {shown}")
    out = {"restore": {"set": chosen.id, "files": done.files, "bytes": done.bytes, "target": p["target"],
                       "bytes_read_from_tape": bytes_read, "cartridges_loaded": loaded,
                       "lost": len(result.lost), "seconds": round(seconds, 3),
                       "first_byte_seconds": round(first_byte[0], 3) if first_byte else None}}
    if ctx.cancel.is_set():
        return Outcome("cancelled", "cancelled by request", tuple(warnings), out)
    if result.lost or warnings:
        return Outcome("completed with warnings", warnings[0], tuple(warnings), out)
    return Outcome("completed", None, (), out)


def _library_of(ctx: JobContext, barcodes: list[str]) -> str:
    """The library the set's cartridges belong to (the first one the catalog places)."""
    for barcode in barcodes:
        cart = cat.get_cartridge(ctx.catalog, barcode)
        if cart.library_id is not None:
            return cat.library_by_id(ctx.catalog, cart.library_id).name
    libraries = cat.list_libraries(ctx.catalog)
    return libraries[0].name if libraries else "vtl"


def _wait_in_library(ctx: JobContext, media, barcodes: list[str], library: str) -> bool:
    """Wait (with an alert) until every needed cartridge is in the library (a fast inventory each look: an
    operator only has to put them in); False if cancelled meanwhile."""
    asked = None
    while True:
        outside = []
        for barcode in barcodes:
            cart = cat.get_cartridge(ctx.catalog, barcode)
            if cart.location_kind not in IN_LIBRARY:
                where = cart.location_kind if cart.location_number is None else \
                    f"{cart.location_kind} {cart.location_number}"
                outside.append(f"{barcode} ({where})")
        prefix = f"restore job {ctx.job_id} needs cartridges outside library '{library}'"
        if not outside:
            if asked:
                alerts.resolve_message(ctx.catalog, prefix)
            return True
        if ctx.cancel.is_set():
            return False
        message = f"{prefix}: {', '.join(outside)}"
        if asked != message:
            if asked:  # the cartridges moved (a mail slot, another one back): one alert, the current one
                alerts.resolve_message(ctx.catalog, asked)
            alerts.raise_alert(ctx.catalog, "error", message,
                               f"put them into library '{library}' (through the mail slot, then into a slot); the "
                               "job finds them by itself and goes on", None, ctx.job_id,
                               about=("library", library))
            asked = message
            ctx.event("waited", f"for cartridges outside library '{library}': {', '.join(outside)}")
        ctx.progress(0, None, f"waiting for {', '.join(outside)}")
        ctx.cancel.wait(WAIT_POLL)
        media.library(library).inventory(utcnow())
