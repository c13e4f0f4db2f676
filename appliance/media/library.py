"""A tape library as the appliance sees it: a changer URL plus its drives' URLs, and the cartridges the changer sees.

Invariants:
- A library's drives are numbered as its changer numbers its data transfer elements (mtx numbering, 0..). When the
  changer reports drive identifiers (DVCID), each drive URL is matched to its element by serial number, whatever
  the order given; otherwise the order given is the element order.
- The changer is reached through `drivers` only (`MediaChanger` for SCSI URLs, `MtxChanger` for `mtx://`): one code
  path for the simulator and real libraries. One lock per library serialises every changer command of this
  process (the changer has one transport; moves must not interleave).
- Fast inventory reads barcodes from the changer and moves nothing: a cartridge seen for the first time is `blank`
  (what is on it is unknown until a drive reads it: the detailed inventory, or the first write, which reads the
  label before writing anything); a known cartridge the changer no longer sees is `outside` (on site, not
  mountable; one on its way to a vault stays in transit); cleaning cartridges (CLN barcodes or the cleaning medium
  type) are `cleaning`. These changes of place are recorded as moves (catalog/moves.py).
- A cartridge seen in a slot or drive that the catalog has on its way to or in a vault (courier, vault) is not moved
  back silently: it is reported as `unexpected`, with an alert naming the vault it is expected in (`tapeline vault
  import --accept BARCODE` is the operator's word that it is back). One that is an expected return (moves.RETURNS,
  as `vault import` takes them: on site, or recalled from the vault) becomes mountable, the move recorded by
  "tapeline" with the inventory as its reason; one recalled from the vault but seen in a mail slot is left there
  for `vault import`, which records its return with its job.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import cartridges_in, touch_library
from appliance.catalog.models import IN_LIBRARY_LOCATIONS, Cartridge, Library, Vault
from appliance.catalog.moves import NEXT, PLACE, RETURNS, SHOWN, element_shown, move, relocate
from appliance.errors import TapelineError, UsageError
from appliance.ops import alerts
from drivers.changer import KIND_MAILSLOT, Element, Inventory, MediaChanger
from drivers.errors import DeviceError, DeviceNotFound, TransportError
from drivers.mtx import MtxChanger
from drivers.tape import TapeDrive

SERIAL_AT = 24  # a DVCID identifier is vendor (8) + product (16) + serial, as IBM and STK libraries send it


@dataclass(frozen=True)
class DriveSpec:
    number: int
    url: str
    serial: str | None


def shown_url(url: str) -> str:
    """A device URL as a message shows it: without its query (a token file's path tells the reader nothing)."""
    return urlunsplit(urlsplit(url)._replace(query=""))


def cause_of(exc: Exception) -> str:
    """What the transport said, without the device URL that begins its message and the advice after it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    url, sep, rest = text.partition(": ")
    return (rest if sep and "://" in url else text).split("; ")[0]


class LibraryDown(TapelineError):
    """The library's changer cannot be reached at all: its server is not running (a served virtual library), or
    the library is off or unplugged."""


def open_changer(url: str, label: str | None = None) -> MediaChanger | MtxChanger:
    return MtxChanger(url, label) if url.startswith("mtx://") else MediaChanger(url, label)


def _serial(url: str) -> str | None:
    try:
        with TapeDrive(url) as drive:
            return drive.serial().strip() or None
    except DeviceError as exc:
        raise UsageError(f"drive {url} does not answer ({exc})",
                         "check the URL (`tapeline-vtl status DIR` lists a simulated library's drives)") from None


def match_drives(changer_url: str, drive_urls: list[str]) -> list[DriveSpec]:
    """Each drive URL with its element number in the changer (see the module's invariants)."""
    try:
        with open_changer(changer_url) as changer:
            inv = (changer.inventory(identifiers=True) if isinstance(changer, MediaChanger)
                   else changer.inventory())
    except DeviceError as exc:
        raise UsageError(f"changer {changer_url} does not answer ({exc})",
                         "check the URL (`tapeline-vtl serve` prints a simulated library's)") from None
    if len(drive_urls) > len(inv.drives):
        raise UsageError(f"{len(drive_urls)} drive URLs given, but the changer has {len(inv.drives)} drives",
                         "give one URL per drive, in the changer's drive order")
    if len(set(drive_urls)) != len(drive_urls):
        raise UsageError("a drive URL is given twice", "give each drive once")
    serials = [_serial(url) for url in drive_urls]
    reported = {(e.device_id or "")[SERIAL_AT:].strip(): e.number for e in inv.drives if e.device_id}
    if not reported:
        return [DriveSpec(i, url, serial) for i, (url, serial) in enumerate(zip(drive_urls, serials))]
    specs = []
    for url, serial in zip(drive_urls, serials):
        if serial not in reported:
            raise UsageError(f"drive {url} (serial {serial}) is not one of this changer's drives (serials "
                             f"{', '.join(sorted(reported))})", "give the URLs of this library's own drives")
        specs.append(DriveSpec(reported[serial], url, serial))
    return sorted(specs, key=lambda d: d.number)


def where(element: Element) -> tuple[str, int]:
    """(location kind, number) of a full element, as the catalog records it."""
    if element.kind == KIND_MAILSLOT:
        return "mailslot", element.mailslot_number or element.number
    return element.kind, element.number


@dataclass(frozen=True)
class InventoryReport:
    library: str
    cartridges: int  # data cartridges seen
    new: tuple[str, ...]  # seen for the first time
    outside: tuple[str, ...]  # known, no longer seen
    cleaning: tuple[str, ...]
    without_barcode: tuple[str, ...]  # "slot 7": full elements whose cartridge has no readable barcode
    unexpected: tuple[str, ...] = ()  # seen in the library while the catalog has them bound for or in a vault


def apply_inventory(catalog: Catalog, library: Library, inv: Inventory, now: datetime) -> InventoryReport:
    """Record where the changer sees each cartridge (see the module's invariants)."""
    seen: dict[str, Element] = {}
    unread = []
    for e in inv.slots + inv.mailslots + inv.drives:
        if e.full and e.barcode:
            seen[e.barcode] = e
        elif e.full:
            unread.append(element_shown(*where(e)))
    new, outside, cleaning, unexpected = [], [], [], []
    elsewhere: list[tuple[str, str, str, str]] = []
    by = f"inventory of library {library.name}"
    with catalog.session() as s:
        # not one query per barcode: export's wait_for calls this every 2 s
        known = {c.barcode: c for c in cartridges_in(s, Cartridge.barcode, seen)}
        for barcode, e in seen.items():
            cart = known.get(barcode)
            if cart is None:
                cart = Cartridge(barcode=barcode, state="cleaning" if e.cleaning else "blank", first_seen=now)
                new.append(barcode)
                s.add(cart)
                s.flush()
            if e.cleaning:
                cart.state = "cleaning"
                cleaning.append(barcode)
            cart.library_id = library.id
            place = where(e)
            in_cycle = "mountable" in NEXT[cart.rotation]
            if cart.rotation in RETURNS and (in_cycle or place[0] != "mailslot"):
                # back from the shelf, or from the vault (as `vault import` takes it); one from the vault in a mail
                # slot is left for the import, which records its return with its job
                move(s, cart, "mountable", now, operator="tapeline", place=place, skip=not in_cycle,
                     reason=by if in_cycle else f"{by}: back from the vault ({SHOWN[cart.rotation]})")
                cart.case_id = None  # out of its case, back in the library (as the import does)
            elif cart.rotation != "mountable" and place[0] != "mailslot":
                unexpected.append(barcode)
                vault = s.get(Vault, cart.vault_id) if cart.vault_id is not None else None
                elsewhere.append((barcode, element_shown(*place), f"vault {vault.name}" if vault else "a vault",
                                  SHOWN[cart.rotation]))
                relocate(s, cart, *place, now, operator="tapeline", reason=f"{by}: expected elsewhere")
            else:
                relocate(s, cart, *place, now, operator="tapeline", reason=by)
        for cart in s.exec(select(Cartridge).where(Cartridge.library_id == library.id)).all():
            if cart.barcode not in seen and cart.location_kind in IN_LIBRARY_LOCATIONS:
                if cart.rotation == "mountable":
                    move(s, cart, "notmountable", now, operator="tapeline", reason=f"{by}: no longer seen")
                else:
                    relocate(s, cart, PLACE[cart.rotation] if PLACE[cart.rotation] != "vault" else "transit", None,
                             now, operator="tapeline", reason=f"{by}: taken out")
                outside.append(cart.barcode)
    touch_library(catalog, library.id, now)
    for barcode, place, vault, state in elsewhere:  # a discrepancy: said, never fixed here (vault import --accept)
        alerts.raise_alert(catalog, "error", f"cartridge {barcode} is present in {place} of library {library.name} "
                           f"but expected in {vault} ({state})",
                           f"if it really came back, `tapeline vault import --accept {barcode}` (recorded with your "
                           "name); if not, check its barcode label", about=("cartridge", barcode))
    return InventoryReport(library.name, len(seen) - len(cleaning), tuple(new), tuple(outside), tuple(cleaning),
                           tuple(unread), tuple(unexpected))


class LibraryHandle:
    """One library of this process: its changer (opened on first use) behind the library's lock."""

    def __init__(self, catalog: Catalog, library: Library):
        self.catalog = catalog
        self.row = library
        self.name = library.name
        self.lock = threading.RLock()
        self._changer: MediaChanger | MtxChanger | None = None
        # Whether an alert that the library is down may be open: the first reading after a start resolves one left by
        # the last run, later ones only after a failure. Every changer reading (every 2 s while an export waits on the
        # mail slots) would otherwise queue for the catalog's write lock behind the jobs.
        self._maybe_down = True

    @property
    def changer(self) -> MediaChanger | MtxChanger:
        """The changer; hold `lock` around every use."""
        if self._changer is None:
            self._changer = open_changer(self.row.changer_url, f"library {self.name}")
        return self._changer

    def reset(self) -> None:
        """Forget the connection (after a transport error: the next use opens a new one)."""
        with self.lock:
            if self._changer is not None:
                try:
                    self._changer.close()
                except DeviceError:
                    pass
            self._changer = None

    def current(self) -> Inventory:
        """A fresh reading of the changer (no catalog change). LibraryDown, with an alert naming the library, when
        it cannot be reached at all."""
        with self.lock:
            for attempt in (1, 2):
                try:
                    inventory = self.changer.inventory()
                    break
                except (TransportError, DeviceNotFound) as exc:
                    # A connection the server dropped (it died, or restarted) fails once: a new one tells which.
                    self.reset()
                    if attempt == 2 or isinstance(exc, DeviceNotFound):
                        raise self._down(exc) from None
                except DeviceError as exc:
                    self.reset()
                    raise TapelineError(f"library '{self.name}': the changer does not answer ({exc})",
                                        f"check the library and its URL ({shown_url(self.row.changer_url)}), then "
                                        "retry") from None
            if self._maybe_down:
                alerts.resolve_message(self.catalog, self._down_message)
                self._maybe_down = False
        return inventory

    @property
    def _down_message(self) -> str:
        return f"library '{self.name}' does not answer"

    def _down(self, exc: Exception) -> LibraryDown:
        url = self.row.changer_url
        if url.startswith("stream+"):  # a library served by `tapeline-vtl serve` (tapeline-vtl.service)
            fix = ("start its server: `systemctl start tapeline-vtl` (or `tapeline up`, which serves its own), then "
                   f"`tapeline library inventory {self.name}`")
        else:
            fix = f"check that the library is on and cabled, then `tapeline library inventory {self.name}`"
        message = f"{self._down_message} at {shown_url(url)} ({cause_of(exc)})"
        self._maybe_down = True
        alerts.raise_alert(self.catalog, "error", message, fix, same_as=self._down_message,
                           about=("library", self.name))
        return LibraryDown(message, fix)

    def inventory(self, now: datetime) -> InventoryReport:
        """Fast inventory: barcodes from the changer into the catalog."""
        with self.lock:
            return apply_inventory(self.catalog, self.row, self.current(), now)

    def close(self) -> None:
        self.reset()

