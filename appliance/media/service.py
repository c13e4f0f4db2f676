"""`MediaService`: the appliance's libraries, drives, pools and cartridges (`Appliance.media`).

The daemon builds one; the API calls its request methods (which check and queue, never touch a tape), and the job
bodies (media_tasks.py, and the lead's tape jobs) call the methods that load cartridges, through a `DriveLease`.

Invariants:
- Drives are leased one job at a time (`acquire_drive`): an enabled, free drive that answers (an offline one is
  skipped with an alert); while none is free the job waits, with an alert once it has waited `wait_alert` seconds,
  and stops waiting when cancelled. A lease's end (`release`) cleans the drive when it asked for cleaning
  (TapeAlert clean now), between jobs.
- Nothing here writes over a cartridge holding unexpired data (pools.unexpired_data, checked again on the tape's
  own label before any write), nor over foreign data without the operator's --force, nor on a write-protected or
  outside cartridge.
- Labelling writes tape file 0 (the volume label) and nothing else; a cartridge joining a media set also gets file
  1 (the media-set label) from `start_media_set_on`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.engine import Catalog
from appliance.catalog.models import Cartridge, Drive, MediaSet, Pool
from appliance.errors import Conflict, NotFound, TapelineError, UsageError
from appliance.media import pools
from appliance.media.drives import DriveLease, DriveOffline, ForeignCartridge, LabelMismatch, LoadFailed, why_unusable
from appliance.media.format import (MediaSetLabel, VolumeLabel, decode_media_set_label, encode_media_set_label,
                                    encode_volume_label, FormatError)
from appliance.media.index_cache import IndexCache
from appliance.media.library import InventoryReport, LibraryHandle, cause_of, match_drives, shown_url
from appliance.ops import alerts
from appliance.text import plural
from drivers.errors import DeviceError
from drivers.scsi.sense import BlankCheck, LogicalUnitOffline, ScsiError, WriteProtected
from drivers.scsi.tapelog import TapeAlertFlag
from drivers.tape import TapeDrive

log = logging.getLogger("tapeline.media")

WAIT_ALERT = 60.0  # seconds a job waits for a drive before an alert says so
CLEAN_NOW, CLEANING_EXPIRED = 0x14, 0x16  # TapeAlert flags


def now() -> datetime:
    return datetime.now(timezone.utc)


class MediaService:
    def __init__(self, catalog: Catalog, settings, wait_alert: float = WAIT_ALERT):
        self.catalog = catalog
        self.settings = settings
        self.block_size: int = settings.media_block_size
        self.drive_failures: int = settings.drive_failures
        self.wait_alert = wait_alert
        self.index = IndexCache(settings.data_dir / "tape-index")  # the copy of every set's index files
        self.engine = None  # the daemon's JobEngine, set once built (its bodies include this service's)
        self._handles: dict[str, LibraryHandle] = {}
        self._cond = threading.Condition()
        self._leases: dict[tuple[int, int], DriveLease | None] = {}  # (library id, drive) -> lease (None: probing)
        # The TapeAlert flags each drive last reported, (library, drive) -> flags: reading them clears them on a
        # real drive, so the metrics show what a lease's end read rather than reading again (ops/metrics.py).
        self.drive_flags: dict[tuple[str, int], tuple[TapeAlertFlag, ...]] = {}

    # -- libraries ----------------------------------------------------------------------------------------------

    def library(self, name: str) -> LibraryHandle:
        row = cat.get_library(self.catalog, name)
        with self._cond:
            handle = self._handles.get(name)
            if handle is None or handle.row.id != row.id or handle.row.changer_url != row.changer_url:
                if handle is not None:
                    handle.close()
                handle = self._handles[name] = LibraryHandle(self.catalog, row)
            return handle

    def add_library(self, name: str, changer_url: str, drive_urls: list[str]) -> tuple[object, InventoryReport]:
        """Register a library (its drives matched to the changer's elements) and take a fast inventory."""
        cat.check_name("library", name)
        if not drive_urls:
            raise UsageError("a library needs at least one drive URL", "give the drives after the changer URL")
        specs = match_drives(changer_url, drive_urls)
        row = cat.add_library(self.catalog, name, changer_url, [(d.number, d.url, d.serial) for d in specs])
        return row, self.library(name).inventory(now())

    def register(self, name: str, changer_url: str, drive_urls: list[str]) -> InventoryReport:
        """`tapeline up`'s embedded library: added on the first start, its URLs refreshed on the next ones (the
        token path or the port may change)."""
        try:
            row = cat.get_library(self.catalog, name)
        except NotFound:
            return self.add_library(name, changer_url, drive_urls)[1]
        if row.changer_url != changer_url or list(row.drive_urls) != list(drive_urls):
            specs = match_drives(changer_url, drive_urls)
            cat.replace_library_urls(self.catalog, row.id, changer_url, [(d.number, d.url, d.serial) for d in specs])
        return self.library(name).inventory(now())

    def close(self) -> None:
        with self._cond:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()

    # -- drive leases -------------------------------------------------------------------------------------------

    def acquire_drive(self, library: str, job=None, barcode: str | None = None,
                      number: int | None = None) -> DriveLease:
        """A lease on a free drive of `library` (see the module's invariants): the one that holds `barcode` if free,
        or drive `number` (enabled or not: an operator's request, such as a cleaning)."""
        handle = self.library(library)
        started = time.monotonic()
        alerted = False
        offline: set[int] = set()
        while True:
            if job is not None and job.cancel.is_set():
                raise TapelineError(f"cancelled while waiting for a drive of library '{library}'",
                                    "start the job again when a drive is free")
            chosen = self._reserve(handle, barcode, number, offline)
            if chosen is not None:
                lease = self._probe(handle, chosen, job)
                if lease is not None:
                    if alerted:
                        alerts.resolve(self.catalog, None, self._wait_message(library, job))
                    return lease
                if number is not None:
                    raise DriveOffline(f"drive {number} of library '{library}'")
                offline.add(chosen.number)
                continue
            if not alerted and time.monotonic() - started >= self.wait_alert:
                alerted = True
                alerts.raise_alert(self.catalog, "warning", self._wait_message(library, job),
                                   self._wait_fix(handle), job_id=getattr(job, "job_id", None),
                                   about=("library", library))
                if hasattr(job, "event"):  # a job's history says it waited (a request has none)
                    job.event("waited", f"for a drive of library '{library}'")
            with self._cond:
                self._cond.wait(1.0)
            if time.monotonic() - started > 10 and offline:
                offline.clear()  # look again: an operator may have brought one back online

    def _wait_message(self, library: str, job) -> str:
        who = f"job {job.job_id}" if job is not None else "a request"
        return f"{who} waits for a drive of library '{library}'"

    def _wait_fix(self, handle: LibraryHandle) -> str:
        drives = cat.list_drives(self.catalog, handle.row.id)
        off = [d.number for d in drives if not d.enabled]
        if off and len(off) == len(drives):
            return (f"every drive is out of service: check them, then `tapeline drive enable {handle.name} "
                    f"{off[0]}`")
        return "the others are busy or offline: see `tapeline drive list` and `tapeline jobs`; bring an offline " \
               "drive online at the library"

    def _reserve(self, handle: LibraryHandle, barcode: str | None, number: int | None,
                 offline: set[int]) -> Drive | None:
        drives = cat.list_drives(self.catalog, handle.row.id)
        if number is not None:
            if not any(d.number == number for d in drives):
                cat.get_drive(self.catalog, handle.name, number)  # NotFound naming the drives
            drives = [d for d in drives if d.number == number]
        else:
            drives = [d for d in drives if d.enabled and d.number not in offline]
        if barcode is not None:
            try:
                cart = cat.get_cartridge(self.catalog, barcode)
                holding = cart.location_number if cart.location_kind == "drive" else None
            except NotFound:
                holding = None
            drives.sort(key=lambda d: d.number != holding)
        with self._cond:
            for d in drives:
                key = (handle.row.id, d.number)
                if key not in self._leases:
                    self._leases[key] = None
                    return d
        return None

    def _probe(self, handle: LibraryHandle, row: Drive, job) -> DriveLease | None:
        """The lease on a reserved drive, or None (reservation dropped) when the drive is offline."""
        try:
            lease = DriveLease(self, handle, row, getattr(job, "job_id", None))
        except DeviceError as exc:
            with self._cond:
                self._leases.pop((handle.row.id, row.number), None)
                self._cond.notify_all()
            handle.current()  # LibraryDown (and its alert) when the whole library is down, not just this drive
            raise TapelineError(f"drive {row.number} of library '{handle.name}' cannot be reached ({cause_of(exc)})",
                                f"check the library and the drive's URL ({shown_url(row.url)})") from None
        try:
            lease.drive.test_unit_ready()
        except LogicalUnitOffline:
            self._drop(lease)
            alerts.raise_alert(self.catalog, "warning", f"{lease.name} is offline: jobs use the other drives",
                               "bring it online at the library (or check the library for a fault)",
                               about=("drive", f"{lease.handle.name} {lease.number}"))
            return None
        except (ScsiError, DeviceError):
            pass  # empty, or becoming ready: mount waits for it
        with self._cond:
            self._leases[(handle.row.id, row.number)] = lease
        return lease

    def _drop(self, lease: DriveLease) -> None:
        lease.close()
        with self._cond:
            self._leases.pop((lease.handle.row.id, lease.number), None)
            self._cond.notify_all()

    def release(self, lease: DriveLease, exc: BaseException | None = None) -> None:
        """A lease's end: clean the drive if it asked for it, then free it for the next job."""
        try:
            if self._needs_cleaning(lease):
                self.clean(lease)
        except Exception as err:  # cleaning is housekeeping: a failure is an alert, the job's outcome stands
            log.warning("%s: cleaning after the job failed: %s", lease.name, err)
            alerts.raise_alert(self.catalog, "warning", f"{lease.name} asked for cleaning, which failed: {err}",
                               f"run `tapeline drive clean {lease.handle.name} {lease.number}` once fixed",
                               about=("drive", f"{lease.handle.name} {lease.number}"))
        finally:
            self._drop(lease)

    def take_from_drive(self, handle: LibraryHandle, number: int, barcode: str) -> None:
        """Another (idle) drive holds the cartridge a lease wants: put it back in its home slot first."""
        with self._cond:
            busy = (handle.row.id, number) in self._leases
        if busy:
            raise Conflict(f"cartridge {barcode} is in drive {number} of library '{handle.name}', which another job "
                           "is using", "wait for that job (`tapeline jobs`), then retry")
        row = cat.get_drive(self.catalog, handle.name, number)
        with TapeDrive(row.url, label=f"drive {number} of library '{handle.name}'") as drive:
            try:
                drive.unload()
            except ScsiError:
                pass
        handle.changer.unload(number)

    # -- cleaning -----------------------------------------------------------------------------------------------

    def _needs_cleaning(self, lease: DriveLease) -> bool:
        flags = self._flags(lease)
        return lease.drive.cleaning_requested or any(f.number == CLEAN_NOW for f in flags)

    def clean(self, lease: DriveLease) -> dict:
        """Load the library's cleaning cartridge into the lease's drive and put it back; count its use. A used-up
        cleaning cartridge (the drive reports TapeAlert 0x16) raises an alert: the drive was not cleaned."""
        handle = lease.handle
        with handle.lock:
            inv = handle.current()
            cleaner = next((e for e in inv.slots if e.full and e.cleaning), None)
            if cleaner is None:
                alerts.raise_alert(self.catalog, "error", f"{lease.name} needs cleaning, but library '{handle.name}' "
                                   "has no cleaning cartridge in its slots", "import one (its barcode starts with "
                                   f"CLN), then `tapeline drive clean {handle.name} {lease.number}`",
                                   about=("drive", f"{handle.name} {lease.number}"))
                raise Conflict(f"library '{handle.name}' has no cleaning cartridge in its slots",
                               "import one (its barcode starts with CLN) and run `tapeline library inventory "
                               f"{handle.name}`")
            if inv.drive(lease.number).full:
                lease._unload_locked()
            try:
                handle.changer.clean(lease.number, cleaner.number)
            except DeviceError as exc:
                handle.reset()
                raise TapelineError(f"{lease.name}: cleaning with {cleaner.barcode} failed ({exc})",
                                    "check the drive and the cleaning cartridge at the library") from None
        lease.drive.cleaning_requested = False
        flags = self._flags(lease)
        expired = any(f.number == CLEANING_EXPIRED for f in flags)
        when = now()
        cart = cat.update_cartridge(self.catalog, cleaner.barcode,
                                    cleaning_uses=cat.get_cartridge(self.catalog, cleaner.barcode).cleaning_uses + 1,
                                    last_used=when, note="used up: replace it" if expired else None)
        if expired:
            alerts.raise_alert(self.catalog, "error", f"cleaning cartridge {cleaner.barcode} in library "
                               f"'{handle.name}' is used up (after {cart.cleaning_uses} uses here): {lease.name} was "
                               "not cleaned", f"export it, import a new cleaning cartridge, then `tapeline drive clean "
                               f"{handle.name} {lease.number}`", about=("cartridge", cleaner.barcode))
        else:
            cat.update_drive(self.catalog, lease.row.id, cleanings=lease.row.cleanings + 1, last_cleaned=when)
        return {"library": handle.name, "drive": lease.number, "cleaning_cartridge": cleaner.barcode,
                "cleaned": not expired, "uses": cart.cleaning_uses}

    def _flags(self, lease: DriveLease) -> tuple[TapeAlertFlag, ...]:
        try:
            flags = tuple(lease.drive.tape_alerts())
        except (ScsiError, DeviceError):
            return ()
        self.drive_flags[(lease.handle.name, lease.number)] = flags
        return flags

    def busy_drives(self) -> set[tuple[int, int]]:
        """(library id, drive number) of every drive a job holds now."""
        with self._cond:
            return set(self._leases)

    # -- what a tape holds ------------------------------------------------------------------------------------

    def contents(self, cart: Cartridge) -> str | None:
        """What the catalog says the cartridge holds (None: nothing worth keeping)."""
        if cart.state not in pools.HOLDS_DATA or cart.media_set_id is None:
            return None
        ms = cat.media_set_by_id(self.catalog, cart.media_set_id)
        sets = cat.sets_on(self.catalog, cart.id)
        groups = sorted({s.group_name for s in sets})
        expiry = "never expires" if cart.expires is None else f"expires {_when(cart.expires)}"
        return (f"media set {ms.uuid} ({plural(len(sets), 'set')} of {', '.join(groups) or 'no group'}, "
                f"{cart.bytes_written} bytes; {expiry})")

    def _media_set_on_tape(self, lease: DriveLease) -> MediaSetLabel | None:
        """Tape file 1, if the tape has one and it is a media-set label."""
        try:
            lease.at_file(1)
            block = lease.drive.read(self.block_size)
        except BlankCheck:
            return None
        except ScsiError:
            return None
        try:
            return decode_media_set_label(block)
        except FormatError:
            return None

    def _refuse_unexpired(self, cart: Cartridge, when: datetime, doing: str) -> None:
        if pools.unexpired_data(cart, when):
            raise Conflict(f"cartridge {cart.barcode} holds unexpired data, {self.contents(cart)}: it is never "
                           f"{doing}", "wait until it expires (`tapeline media show "
                           f"{cart.barcode}`), or choose another cartridge")

    def _check_writable(self, lease: DriveLease, cart: Cartridge) -> None:
        if lease.drive.status().write_protected:
            cat.update_cartridge(self.catalog, cart.barcode, write_protected=True, note="write-protected")
            alerts.raise_alert(self.catalog, "warning", f"cartridge {cart.barcode} is write-protected: skipped for "
                               "writing", f"slide its write-protect tab back (or take it out), then run `tapeline "
                               f"library inventory {lease.handle.name} --detailed`", job_id=lease.job_id,
                               about=("cartridge", cart.barcode))
            raise Conflict(f"cartridge {cart.barcode} is write-protected",
                           "slide its write-protect tab back, or choose another cartridge")
        if cart.write_protected:
            cat.update_cartridge(self.catalog, cart.barcode, write_protected=False, note=None)

    # -- label and erase (jobs) ---------------------------------------------------------------------------------

    def label_cartridge(self, lease: DriveLease, barcode: str, pool: Pool, force: bool) -> dict:
        """Write tape file 0 (the volume label) for `pool` and nothing else. Refuses unexpired data outright, and
        any other data (foreign, unreadable, or Tapeline's own) without `force`, naming what would be lost."""
        when = now()
        cart = cat.get_cartridge(self.catalog, barcode)
        self._refuse_unexpired(cart, when, "relabelled")
        lost = self.contents(cart)
        try:
            label = lease.mount(barcode)
            on_tape = self._media_set_on_tape(lease) if label is not None else None
            unknown = on_tape is not None and cat.media_set_by_uuid(self.catalog, on_tape.media_set) is None
            if unknown and lost is None:
                lost = f"Tapeline media set {on_tape.media_set} of pool {on_tape.pool}, unknown to this catalog"
        except (ForeignCartridge, LabelMismatch, FormatError) as exc:
            lost = why_unusable(exc)
        if lost and not force:
            raise Conflict(f"cartridge {barcode} holds {lost}", "rerun with --force if it may be lost")
        self._check_writable(lease, cart)
        new = VolumeLabel(barcode=barcode, uuid=str(uuid.uuid4()), pool=pool.name, created=when,
                          block_size=self.block_size)
        lease.at_file(0)
        lease.drive.write(encode_volume_label(new))
        lease.drive.write_filemarks(1)
        self._forget_sets(cart)
        cat.update_cartridge(self.catalog, barcode, state="scratch", label_uuid=new.uuid, pool_id=pool.id,
                             media_set_id=None, sequence=None, next_file=1, expires=None, note=None,
                             library_id=lease.handle.row.id)
        return {"barcode": barcode, "pool": pool.name, "label_uuid": new.uuid, "lost": lost}

    def erase_cartridge(self, lease: DriveLease, barcode: str) -> dict:
        """Erase the tape (a short erase: end of data at the beginning) and forget what it held; never one with
        unexpired data."""
        when = now()
        cart = cat.get_cartridge(self.catalog, barcode)
        self._refuse_unexpired(cart, when, "erased")
        lost = self.contents(cart)
        try:
            lease.mount(barcode)
        except (ForeignCartridge, LabelMismatch, FormatError) as exc:
            lost = lost or why_unusable(exc)
        self._check_writable(lease, cart)
        lease.drive.rewind()
        lease.drive.erase(long=False)
        self._forget_sets(cart)
        cat.update_cartridge(self.catalog, barcode, state="scratch", label_uuid=None, pool_id=None,
                             media_set_id=None, sequence=None, next_file=0, expires=None, note=None,
                             bytes_written=0, library_id=lease.handle.row.id)
        return {"barcode": barcode, "lost": lost}

    def _forget_sets(self, cart: Cartridge) -> None:
        cat.drop_parts_on(self.catalog, cart.id)

    # -- writing: the lead's tape jobs --------------------------------------------------------------------------

    def start_media_set_on(self, lease: DriveLease, cartridge: Cartridge, media_set: MediaSet) -> Cartridge:
        """Make the mounted scratch (or blank) cartridge the media set's next tape: its volume label for the pool
        (rewritten unless it already is the pool's) and the media-set label, files 0 and 1. Sets go from file 2."""
        when = now()
        cart = cat.get_cartridge(self.catalog, cartridge.barcode)
        if cart.media_set_id == media_set.id:
            return cart
        self._refuse_unexpired(cart, when, "written")
        pool = cat.pool_by_id(self.catalog, media_set.pool_id)
        joined = pools.join_media_set(self.catalog, cart.barcode, media_set, when)
        label_uuid = cart.label_uuid
        if label_uuid is None or cart.pool_id != pool.id:
            label_uuid = str(uuid.uuid4())
            lease.at_file(0)
            lease.drive.write(encode_volume_label(VolumeLabel(cart.barcode, label_uuid, pool.name, when,
                                                              self.block_size)))
            lease.drive.write_filemarks(1)
        else:
            lease.at_file(1)
        lease.drive.write(encode_media_set_label(MediaSetLabel(pool.name, media_set.uuid, joined.sequence,
                                                               media_set.key_fingerprint, when), self.block_size))
        lease.drive.write_filemarks(1)
        return cat.update_cartridge(self.catalog, cart.barcode, label_uuid=label_uuid, next_file=2)

    def expire(self, when: datetime) -> pools.ExpireResult:
        """Expiry and recycling (`pools.expire`); the index copies of the sets that stopped counting go with them
        (nothing reads them again: restores refuse such a set, and an incremental only leans on good ones)."""
        result = pools.expire(self.catalog, when)
        for set_uuid in result.sets:
            self.index.drop(set_uuid)
        return result

    def fail_unfinished(self) -> int:
        """At start: the sets a killed daemon left "writing" turn "failed" (`tape_sets.fail_unfinished`) and their
        index copies go; returns how many."""
        failed = tape_sets.fail_unfinished(self.catalog)
        for set_uuid in failed:
            self.index.drop(set_uuid)
        return len(failed)

    def writable_cartridge(self, lease: DriveLease, pool: Pool, media_set: MediaSet,
                           busy: frozenset[str] = frozenset()) -> Cartridge | None:
        """A cartridge of the media set, mounted in the lease's drive and positioned at its `next_file`, ready for
        the next set; None when the pool has none (the caller waits with an alert naming the pool). Cartridges
        found unusable on the way (foreign data, wrong label, write-protected, outside, one that fails to load)
        are marked and skipped, with an alert for the write-protected and unloadable ones; a second load failure
        is raised (LoadFailed): then the drive is the suspect."""
        skipped: set[str] = set(busy)
        load_failures = 0
        while True:
            when = now()
            self.expire(when)
            cart = pools.next_cartridge(self.catalog, pool, media_set, frozenset(skipped), when)
            if cart is None:
                return None
            skipped.add(cart.barcode)
            try:
                label = lease.mount(cart.barcode)
                self._check_writable(lease, cart)
            except (ForeignCartridge, LabelMismatch, FormatError) as exc:
                cat.update_cartridge(self.catalog, cart.barcode, state="foreign", note=why_unusable(exc))
                continue
            except Conflict as exc:  # write-protected, outside the library, in another job's drive
                log.warning("%s: %s: skipped", lease.name, exc)
                continue
            except LoadFailed as exc:
                load_failures += 1
                if load_failures > 1:
                    raise  # a second cartridge that will not load: the drive is the suspect, not the cartridges
                cat.update_cartridge(self.catalog, cart.barcode, note=f"failed to load into {lease.name}")
                alerts.raise_alert(self.catalog, "warning", f"cartridge {cart.barcode} failed to load into "
                                   f"{lease.name}: skipped for writing", exc.fix, job_id=lease.job_id,
                                   about=("cartridge", cart.barcode))
                continue
            if cart.media_set_id == media_set.id:
                if label is None or label.uuid != cart.label_uuid:
                    cat.update_cartridge(self.catalog, cart.barcode, state="damaged",
                                         note="its label is not the one Tapeline wrote")
                    continue
                lease.at_file(cart.next_file)
                return cart
            if label is not None and cart.state == "blank" and self._media_set_on_tape(lease) is not None:
                cat.update_cartridge(self.catalog, cart.barcode, state="foreign",
                                     note="holds a Tapeline media set this catalog does not know: `tapeline media "
                                          "rebuild` reads it back")
                continue
            cart = self.start_media_set_on(lease, cart, media_set)
            lease.at_file(cart.next_file)
            return cart


def _when(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S")
