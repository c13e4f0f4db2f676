"""The tape backup job: a recovery point of a group from the disk replica (D2D2T, full or incremental) or the
group's sources read directly (D2T), written as one set into the pool's media set, then verified.

Invariants:
- The cartridge written is one `pools.next_cartridge` chose: in the pool's library, not write protected, holding no
  unexpired data of another set. A scratch cartridge gets its volume label and media-set label (files 0 and 1)
  when it joins the media set; a cartridge of the set is appended to at its `next_file`, after its label was read
  and found to be the one the catalog expects (a wrong cartridge in the drive is refused, both barcodes named).
- No cartridge: the job waits, with an alert naming the pool and what it needs, until one appears or it is
  cancelled. A write-protected cartridge is skipped for writing, with an alert.
- The set counts ("ok") only once its last part's index is on tape and, unless the pool says otherwise, reading it
  back found every frame's hash right. A library that stops answering mid-write (its server killed) fails the job
  naming the library; no part of the set is recorded unless its index is on tape, so the next run is written over
  what the dead one left, after the last good set.
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib

from drivers.errors import TransportError
from drivers.scsi.sense import HardwareError, LogicalUnitOffline, MediumError

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.groups import get_group
from appliance.catalog.models import utcnow
from appliance.media import archive, keys, members, pools
from appliance.media import format as fmt
from appliance.media.index_cache import IndexCache
from appliance.media.snapshot_frames import frames_from_snapshot
from appliance.media.library import LibraryDown, cause_of
from appliance.media.tape_read import FrameSource, SetLayout
from appliance.media.tape_write import Abandon, Cancelled, PartWritten, Target, write_set
from appliance.ops import alerts
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import plural

log = logging.getLogger("tapeline.media.backup")

WAIT_POLL = 5.0  # seconds between two looks for a cartridge while a job waits for one
# The lowest speed-matching rate of each LTO generation's full-height drives (MB/s), by the density code a drive
# reports for the loaded cartridge (IBM's published speed-matching steps): fed slower, a drive stops and backhitches.
SPEED_FLOOR_MB_S = {0x58: 40, 0x5A: 40, 0x5C: 101, 0x5D: 112, 0x5E: 112, 0x60: 177}
MIN_MEASURED_S = 5.0  # a write shorter than this says nothing about streaming


class Streaming:
    """How fast the data reached the drive once it streamed: from the first frame on tape to the last (the drive's
    acquisition, the cartridge's load, an LTO-9's 20-minute first load, the labels are not streaming)."""

    def __init__(self):
        self.since: float | None = None
        self.until = 0.0
        self.done_then = self.done = 0  # archive bytes written at the first frame, at the last

    def too_slow(self, stats, floor: int | None) -> str | None:
        """A warning when the data reached the drive slower than its lowest speed-matching rate and the drive
        waited for it (the source was the slow part): the drive shoe-shined."""
        seconds = 0.0 if self.since is None else self.until - self.since
        if floor is None or seconds < MIN_MEASURED_S or not stats.stalls or not stats.raw_bytes:
            return None
        rate = (self.done - self.done_then) * stats.tape_bytes / stats.raw_bytes / seconds / 1e6
        if rate >= floor:
            return None
        return (f"the data reached the drive at {rate:.0f} MB/s, below its lowest speed-matching rate {floor} MB/s "
                f"(it waited {stats.stall_seconds:.0f} s for data): the drive stopped and restarted (shoe-shining)")


class JobTarget(Target):
    """The tape job's side of `write_set`: cartridges from the pool, labels, and the catalog records."""

    def __init__(self, ctx: JobContext, media, lease, pool, media_set, set_id: int, set_uuid: str,
                 cache: IndexCache, block_size: int):
        self.ctx, self.media, self.lease, self.pool, self.media_set = ctx, media, lease, pool, media_set
        self.set_id, self.set_uuid, self.cache, self.block_size = set_id, set_uuid, cache, block_size
        self.done: list[PartWritten] = []  # the parts of this attempt on tape so far
        self.skipped: set[str] = set()  # failed a write in this job

    # -- choosing a cartridge ----------------------------------------------------------------------------------

    def start_part(self, part: int):
        """A cartridge of the media set mounted and positioned at its `next_file` (the media service labels a
        scratch one and skips what must not be written); waits with an alert while the pool has none."""
        asked = False
        while True:
            cart = self.media.writable_cartridge(self.lease, self.pool, self.media_set, frozenset(self.skipped))
            if cart is not None:
                if asked:
                    alerts.resolve_message(self.ctx.catalog, self._need_message())
                return self.lease.drive, cart.barcode, cart.next_file
            if self.ctx.cancel.is_set():
                raise Cancelled()
            if not asked:
                library = self._library()
                alerts.raise_alert(self.ctx.catalog, "error", self._need_message(),
                                   f"put a blank or expired cartridge into library '{library}' and run `tapeline "
                                   f"library inventory {library}`, or label one with `tapeline media label BARCODE "
                                   f"--pool {self.pool.name}`; the job goes on by itself", None, self.ctx.job_id,
                                   about=("pool", self.pool.name))
                self.ctx.event("waited", f"for a cartridge: {self._need_message()}")
                asked = True
            self.ctx.progress(0, None, f"waiting for a cartridge to write for pool {self.pool.name}")
            self.ctx.cancel.wait(WAIT_POLL)

    def _library(self) -> str:
        return cat.library_by_id(self.ctx.catalog, self.pool.library_id).name

    def _need_message(self) -> str:
        return f"pool '{self.pool.name}' has no cartridge to write to in library '{self._library()}'"

    # -- records ----------------------------------------------------------------------------------------------

    def trailer(self, part: PartWritten) -> bytes:
        return media_set_catalog(self.ctx.catalog, self.media_set.id, self.block_size, self.cache,
                                 current=[*self.done, part])

    def part_done(self, part: PartWritten, full: bool) -> None:
        self.done.append(part)
        self.cache.save(self.set_uuid, part.part, part.index)
        tape_sets.add_part(self.ctx.catalog, self.set_id, part.part, part.barcode, part.tape_file, part.index_file,
                           part.first_block, part.blocks)
        pools.record_written(self.ctx.catalog, part.barcode, part.index_file + 1, part.blocks * self.block_size,
                             utcnow())
        if full:
            pools.cartridge_full(self.ctx.catalog, part.barcode)

    def suspect(self, barcode: str, cause: Exception) -> None:
        self.skipped.add(barcode)
        self.done.clear()
        tape_sets.drop_parts(self.ctx.catalog, self.set_id)
        pools.mark_suspect(self.ctx.catalog, barcode, f"write failed: {cause}")
        alerts.raise_alert(self.ctx.catalog, "error", f"cartridge {barcode} failed a write and is marked damaged: "
                           f"{cause}", "the set is written again on another cartridge; retire this one with "
                           f"`tapeline media show {barcode}` once its sets expire", None, self.ctx.job_id,
                           about=("cartridge", barcode))


def media_set_catalog(catalog, media_set_id: int, block_size: int, cache: IndexCache,
                      current: list[PartWritten] | None = None) -> bytes:
    """The media set's catalog file: every good set of the media set with its parts, and the set being written."""
    ms = cat.media_set_by_id(catalog, media_set_id)
    pool = cat.pool_by_id(catalog, ms.pool_id)
    sequence = {c.barcode: c.sequence for c in cat.list_cartridges(catalog, media_set_id=media_set_id)}
    label = fmt.MediaSetLabel(pool.name, ms.uuid, 0, ms.key_fingerprint, ms.created)
    sets = []
    for info in tape_sets.list_sets(catalog, states=("ok",), media_set_id=media_set_id):
        if not cache.has(info.uuid):
            continue
        header = cache.header(info.uuid)
        sets.append(fmt.CatalogSet(header, [fmt.CatalogPart(p.part, p.barcode, sequence.get(p.barcode, 0),
                                                            p.tape_file, p.index_file or p.tape_file + 1,
                                                            p.first_block, p.blocks) for p in info.parts], True))
    if current:
        sets.append(fmt.CatalogSet(current[0].header, [fmt.CatalogPart(p.part, p.barcode, sequence.get(p.barcode, 0),
                                                                       p.tape_file, p.index_file, p.first_block,
                                                                       p.blocks) for p in current],
                                   current[-1].complete))
    return fmt.encode_catalog(fmt.MediaSetCatalog(label, sets), block_size)


def backup(ctx: JobContext, store, media, cache: IndexCache, block_size: int = fmt.BLOCK_SIZE,
           group=None) -> Outcome:
    """`group`: the group written (default the job's); vault/drplan.py passes its reserved catalog group."""
    p = ctx.params
    pool = cat.get_pool(ctx.catalog, p["pool"])
    library = cat.library_by_id(ctx.catalog, pool.library_id)
    group = group or get_group(ctx.catalog, ctx.group_name)
    kind = p.get("kind", "full")
    warnings: list[str] = []
    now = utcnow()
    media_set = pools.media_set_for_write(ctx.catalog, pool, now)
    base = tape_sets.last_set(ctx.catalog, group.name, pool.id) if kind == "incremental" else None
    if kind == "incremental" and (base is None or not cache.has(base.uuid)):
        kind = "full"
        warnings.append(f"group '{group.name}' has no earlier set in pool '{pool.name}': a full set was written")
    elif kind == "incremental" and base.media_set != media_set.uuid:
        # An incremental never leans on another media set: that one could expire (and be written over) first.
        kind, base = "full", None
        warnings.append(f"pool '{pool.name}' began a new media set: a full set was written, so the new media set "
                        "holds everything its sets need")
    snapshot_id, point_id = (None, None) if kind == "direct" else (p["snapshot_id"], p.get("point_id"))
    # The point the job was asked for, pinned against prune since it was queued (it may be older than the replica).
    total = None if snapshot_id is None else store.snapshot(snapshot_id).bytes
    set_uuid = str(uuidlib.uuid4())
    set_id = tape_sets.create_set(ctx.catalog, set_uuid, media_set.id, group.id, group.name, point_id, snapshot_id,
                                  kind, base.id if base else None, now)
    carried: list = []
    read_warnings: list[str] = []  # a direct set's sources, as the archive met them
    cipher = keys.cipher_for_pool(pool, set_uuid)
    if kind == "direct":
        make_members = members.from_tree([s.path for s in group.sources], read_warnings)

        def make_frames():
            writer = archive.ArchiveWriter(cipher=cipher)
            for member in make_members():
                yield from writer.add(member)
            yield from writer.close(end=True)
    else:
        base_map = members.base_entries([cache.load(base.uuid)]) if base else None
        make_frames = frames_from_snapshot(store, snapshot_id, base_map, carried, cipher)

    def header(part: int, tape_file: int) -> fmt.SetHeader:
        return fmt.SetHeader(set_uuid, group.name, point_id, snapshot_id, now, kind, part, tape_file, pool.name,
                             media_set.uuid, block_size, encrypted=cipher is not None)

    def progress(done: int, total: int | None, message: str) -> None:
        if streaming.since is None:  # tests stop a job here, its first frame on tape, to kill the daemon mid-write
            ctx.hold("tape-writing")
            streaming.since, streaming.done_then = time.monotonic(), done
        streaming.until, streaming.done = time.monotonic(), done
        ctx.progress(done, total, message)

    started = time.monotonic()
    for attempt in (1, 2):
        streaming = Streaming()  # the attempt that went through is judged, not a failed drive's window before it
        try:
            leased = media.acquire_drive(library.name, ctx)
        except LibraryDown as exc:  # down before the set began: a scheduled run is retried, it may come back
            _failed(ctx, cache, set_id, set_uuid)
            return Outcome("failed", exc.message, tuple(warnings), fix=exc.fix, transient=True)
        with leased as lease:
            target = JobTarget(ctx, media, lease, pool, media_set, set_id, set_uuid, cache, block_size)
            try:
                stats = write_set(target, make_frames, header, block_size, ctx.cancel, progress, total, carried)
            except LogicalUnitOffline as exc:
                lease.failed(exc)
                if attempt == 2:
                    _failed(ctx, cache, set_id, set_uuid)
                    raise
                warnings.append(f"{lease.name} went offline while writing ({exc.text}): the set was written again "
                                "on another drive")
                tape_sets.drop_parts(ctx.catalog, set_id)
                cache.drop(set_uuid)
                continue
            except Cancelled:
                _failed(ctx, cache, set_id, set_uuid)
                return Outcome("cancelled", "cancelled by request", tuple(warnings))
            except TransportError as exc:  # the library itself stopped answering (its server died, a cable)
                _failed(ctx, cache, set_id, set_uuid)
                return Outcome("failed", f"library '{library.name}' stopped answering while the set was written "
                               f"({cause_of(exc)}): the set does not count", tuple(warnings),
                               fix=f"bring library '{library.name}' back (a virtual one: restart `tapeline-vtl serve` "
                                   f"or its service, or `tapeline up`; a real one: its power and cabling), check it "
                                   f"with `tapeline library inventory {library.name}`, then run the backup again: it "
                                   "is written after the last good set", transient=True)
            except Abandon as exc:
                _failed(ctx, cache, set_id, set_uuid)
                return Outcome("failed", f"the set could not be written: {exc}", tuple(warnings),
                               fix=f"see `tapeline media list --pool {pool.name}` for the cartridges marked damaged, "
                                   f"put good ones in the library and run it again")
            except BaseException as exc:
                if isinstance(exc, HardwareError):  # the drive's fault, not the cartridge's: counted against it
                    lease.failed(exc)
                _failed(ctx, cache, set_id, set_uuid)
                raise
            write_seconds = time.monotonic() - started
            verified = None
            verify_result = None
            if pool.verify:
                ctx.progress(0, stats.tape_bytes, "verifying the set")
                verify_result = verify_parts(lease, stats.parts, block_size, cipher, ctx.progress)
                if verify_result["bad_frames"]:
                    _failed(ctx, cache, set_id, set_uuid)
                    for barcode in verify_result["bad_cartridges"]:
                        pools.mark_suspect(ctx.catalog, barcode, "verify after write found bad frames", write=False)
                    return Outcome("failed", f"verify after write: {plural(verify_result['bad_frames'], 'frame')} read "
                                   f"back wrong on {', '.join(verify_result['bad_cartridges'])}", tuple(warnings),
                                   fix="run it again: the cartridges were marked damaged and another is chosen")
                verified = utcnow()
            floor = SPEED_FLOOR_MB_S.get(lease.drive.status().density)
            lease.succeeded()
            break
    warnings.extend(read_warnings)
    slow = streaming.too_slow(stats, floor)
    if slow:
        warnings.append(slow)
        alerts.raise_alert(ctx.catalog, "warning", f"tape backup of group '{group.name}': {slow}",
                           "feed the drive faster: write from the disk replica (not --direct), from faster disks, "
                           "or at a quieter time", group.name, ctx.job_id)
    ms = pools.stamp_set(ctx.catalog, media_set.id, utcnow())
    files = sum(1 for part in stats.parts for e in part.entries if e.in_set is None)
    tape_sets.finish_set(ctx.catalog, set_id, "ok", files, stats.raw_bytes, ms.expires, verified)
    result = {"tape": {"set": set_id, "uuid": set_uuid, "kind": kind, "pool": pool.name, "media_set": media_set.uuid,
                       "files": files, "carried": len(carried), "bytes": stats.raw_bytes,
                       "tape_bytes": stats.tape_bytes, "seconds": round(write_seconds, 3),
                       "mb_s": round(stats.raw_bytes / write_seconds / 1e6, 1) if write_seconds else None,
                       "cartridges": [part.barcode for part in stats.parts], "drive_waits": stats.stalls,
                       "drive_wait_seconds": round(stats.stall_seconds, 3)}}
    if verify_result is not None:
        result["verify"] = {k: v for k, v in verify_result.items() if k != "bad_cartridges"}
    return Outcome("completed with warnings" if warnings else "completed", warnings[0] if warnings else None,
                   tuple(warnings), result)


def _failed(ctx: JobContext, cache: IndexCache, set_id: int, set_uuid: str) -> None:
    """The set does not count: the catalog says so, and the appliance forgets the index of its parts."""
    tape_sets.finish_set(ctx.catalog, set_id, "failed")
    cache.drop(set_uuid)


def verify_parts(lease, parts: list[PartWritten], block_size: int, cipher, progress) -> dict:
    """Read a set's parts back, checking every frame's hash."""
    started = time.monotonic()
    indexes = [fmt.SetIndex(p.header, p.frames, [], p.complete) for p in parts]
    layout = SetLayout.of(indexes, {p.part: p.barcode for p in parts})
    source = FrameSource(layout, lambda barcode: _mounted(lease, barcode), cipher)
    bad, bad_cartridges, frames = 0, [], 0
    for part in parts:
        if not part.frames:
            continue
        first = part.frames[0].number
        try:
            for _raw in source.frames(first, stop_at_part_end=True, check_only=True):
                frames += 1
                progress(source.bytes_read, None, f"verifying {part.barcode}")
        except (archive.ArchiveError, MediumError) as exc:
            log.error("verify of %s: %s", part.barcode, exc)
            bad += 1
            bad_cartridges.append(part.barcode)
    seconds = time.monotonic() - started
    return {"frames": frames, "bad_frames": bad, "bytes_read": source.bytes_read, "seconds": round(seconds, 3),
            "bad_cartridges": bad_cartridges}


def _mounted(lease, barcode: str):
    if lease.barcode != barcode:
        lease.mount(barcode)
    return lease.drive
