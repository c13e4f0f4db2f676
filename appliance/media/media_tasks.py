"""Job bodies of the media commands that load cartridges: detailed inventory, label, erase, clean, load, unload.

Invariants:
- Each job leases one drive for its whole run (`MediaService.acquire_drive`), and counts the drive's outcome on it
  (a failure in the drive's record only when the drive itself failed: not for a refusal such as foreign data).
- A detailed inventory reads the label of every data cartridge in the library's slots and idle drives and puts
  each back in its home slot; what it finds sets the cartridge's state: a blank tape is `scratch`, a Tapeline label
  keeps (or recovers) what the catalog knows, anything else is `foreign` and is never written. One cartridge that
  cannot be read is a warning naming it; the others are still read.
- Only the detailed inventory is a job (it loads cartridges); the fast one is answered at once (service.py).
- `load` leaves the cartridge in the drive when its lease ends (the next job that needs the drive puts it back in
  its slot first); a cartridge whose label is not ours is still loaded, and the result says what it holds.
- Job results name what was done in `summary` (the line `--wait` prints) and list the cartridges by outcome.
"""

from __future__ import annotations

import logging
from typing import Callable

from appliance.catalog import media as cat
from appliance.catalog.moves import where
from appliance.errors import TapelineError, as_error
from appliance.media import pools
from appliance.media.drives import CartridgeOutside, DriveLease, ForeignCartridge, LabelMismatch, why_unusable
from appliance.media.format import FormatError
from appliance.media.service import MediaService, now
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import plural
from drivers.errors import DeviceError

log = logging.getLogger("tapeline.media")


class MediaTasks:
    def __init__(self, service: MediaService):
        self.service = service

    def bodies(self) -> dict[str, Callable[[JobContext], Outcome]]:
        return {"inventory": self.inventory, "label": self.label, "erase": self.erase, "clean": self.clean,
                "load": self.load, "unload": self.unload}

    # -- detailed inventory -------------------------------------------------------------------------------------

    def inventory(self, ctx: JobContext) -> Outcome:
        library = ctx.params["library"]
        service = self.service
        handle = service.library(library)
        report = handle.inventory(now())
        result: dict = {"library": library, "new": list(report.new), "outside": list(report.outside)}
        todo = [c for c in cat.list_cartridges(service.catalog, library_id=handle.row.id)
                if c.state != "cleaning" and c.location_kind in pools.IN_LIBRARY]
        found: dict[str, list[str]] = {"scratch": [], "known": [], "foreign": [], "damaged": [],
                                       "write_protected": []}
        warnings: list[str] = []
        with service.acquire_drive(library, ctx) as lease:
            for i, cart in enumerate(todo):
                if ctx.cancel.is_set():
                    return Outcome("cancelled", "cancelled by request", tuple(warnings), result)
                ctx.progress(i, len(todo), f"reading the label of {cart.barcode}")
                try:
                    outcome = self._identify(lease, cart.barcode)
                    found[outcome].append(cart.barcode)
                    if lease.drive.status().write_protected:
                        found["write_protected"].append(cart.barcode)
                    cat.update_cartridge(service.catalog, cart.barcode,
                                         write_protected=cart.barcode in found["write_protected"])
                except CartridgeOutside:
                    continue  # taken out meanwhile: the fast inventory above will say so next time
                except (TapelineError, DeviceError) as exc:
                    warnings.append(f"{cart.barcode}: {exc}")
                finally:
                    try:
                        lease.unmount()
                    except TapelineError as exc:
                        warnings.append(f"{cart.barcode}: {exc}")
                        lease.failed(exc)
                        break
            unread = self._without_barcode(ctx, lease, found, warnings)
            lease.succeeded()
        result.update(found)
        result["without_barcode"] = unread
        result["summary"] = (f"library {library}: {plural(len(todo) + len(unread), 'cartridge')} read: "
                             f"{len(found['scratch'])} scratch, {len(found['known'])} known, "
                             f"{len(found['foreign'])} foreign, {len(found['damaged'])} damaged"
                             + (f", {len(found['write_protected'])} write-protected"
                                if found["write_protected"] else ""))
        state = "completed with warnings" if warnings else "completed"
        reason = f"{plural(len(warnings), 'cartridge')} could not be read" if warnings else None
        return Outcome(state, reason, tuple(warnings), result)

    def _without_barcode(self, ctx: JobContext, lease: DriveLease, found: dict[str, list[str]],
                         warnings: list[str]) -> list[str]:
        """Cartridges in slots whose barcode the changer cannot read: one with a Tapeline label is recorded under
        the label's barcode (and sorted as the others); any other is a warning (the catalog can only name a
        cartridge by its barcode)."""
        catalog = self.service.catalog
        slots = [e.number for e in lease.handle.current().slots if e.full and not e.barcode and not e.cleaning]
        seen = []
        for slot in slots:
            if ctx.cancel.is_set():
                break
            ctx.progress(0, None, f"reading the label of the cartridge in slot {slot} (no barcode)")
            try:
                label = lease.mount_slot(slot)
                if label is None:
                    warnings.append(f"slot {slot}: a blank cartridge without a readable barcode: put a barcode "
                                    "label on it, then run the inventory again")
                    continue
                if cat.find_barcode(catalog, label.barcode) is None:
                    cat.add_cartridge(catalog, label.barcode, lease.handle.row.id, "slot", slot, now())
                cat.update_cartridge(catalog, label.barcode, location_kind="slot", location_number=slot,
                                     library_id=lease.handle.row.id)
                found[self._classify(lease, label.barcode, label)].append(label.barcode)
                cat.update_cartridge(catalog, label.barcode, note=f"its barcode cannot be read (slot {slot}): put a "
                                     f"barcode label {label.barcode} on it")
                seen.append(label.barcode)
            except (TapelineError, DeviceError) as exc:
                warnings.append(f"slot {slot} (no barcode): {exc}")
            finally:
                try:
                    lease.unmount()
                except TapelineError as exc:
                    warnings.append(f"slot {slot}: {exc}")
                    break
        return seen

    def _identify(self, lease: DriveLease, barcode: str) -> str:
        """Read one cartridge's label and record what it is: scratch, known, foreign or damaged."""
        try:
            label = lease.mount(barcode)
        except (ForeignCartridge, LabelMismatch, FormatError) as exc:
            return self._unusable(barcode, exc)
        return self._classify(lease, barcode, label)

    def _unusable(self, barcode: str, exc: TapelineError) -> str:
        """A cartridge whose tape is not usable: damaged where the catalog has sets on it, else foreign."""
        service = self.service
        catalog = service.catalog
        cart = cat.get_cartridge(catalog, barcode)
        if service.contents(cart):  # ours by the catalog, unreadable on tape
            cat.update_cartridge(catalog, barcode, state="damaged", note=why_unusable(exc))
            return "damaged"
        cat.update_cartridge(catalog, barcode, state="foreign", note=why_unusable(exc), label_uuid=None,
                             pool_id=None, media_set_id=None)
        return "foreign"

    def _classify(self, lease: DriveLease, barcode: str, label) -> str:
        """What a cartridge whose label (or blank tape: None) was just read is, recorded in the catalog."""
        service = self.service
        catalog = service.catalog
        cart = cat.get_cartridge(catalog, barcode)
        if label is None:
            if service.contents(cart):
                cat.update_cartridge(catalog, barcode, state="damaged",
                                     note="reads blank, but the catalog has sets on it")
                return "damaged"
            cat.update_cartridge(catalog, barcode, state="scratch", label_uuid=None, pool_id=None, media_set_id=None,
                                 sequence=None, next_file=0, note=None)
            return "scratch"
        if label.uuid == cart.label_uuid and cart.state not in ("blank", "foreign"):
            return "known"
        pool = next((p for p in cat.list_pools(catalog) if p.name == label.pool), None)
        on_tape = service._media_set_on_tape(lease)
        if on_tape is None:
            cat.update_cartridge(catalog, barcode, state="scratch", label_uuid=label.uuid,
                                 pool_id=pool.id if pool else None, media_set_id=None, sequence=None, next_file=1,
                                 note=None)
            return "scratch"
        ms = cat.media_set_by_uuid(catalog, on_tape.media_set)
        if ms is None:
            cat.update_cartridge(catalog, barcode, state="foreign", label_uuid=label.uuid,
                                 note=f"holds Tapeline media set {on_tape.media_set} of pool {on_tape.pool}, unknown "
                                      "to this catalog: `tapeline media rebuild` reads it back")
            return "foreign"
        cat.update_cartridge(catalog, barcode, label_uuid=label.uuid, pool_id=ms.pool_id, media_set_id=ms.id,
                             sequence=on_tape.sequence, state="allocated" if ms.closed is None else "full",
                             expires=ms.expires, note=None)
        return "known"

    # -- label, erase, clean ------------------------------------------------------------------------------------

    def label(self, ctx: JobContext) -> Outcome:
        p = ctx.params
        pool = cat.get_pool(self.service.catalog, p["pool"])
        return self._each(ctx, p["barcodes"], "labelled",
                          lambda lease, barcode: self.service.label_cartridge(lease, barcode, pool, p["force"]),
                          lambda done: f"{plural(len(done), 'cartridge')} labelled for pool {pool.name}")

    def erase(self, ctx: JobContext) -> Outcome:
        return self._each(ctx, [ctx.params["barcode"]], "erased", self.service.erase_cartridge,
                          lambda done: f"{plural(len(done), 'cartridge')} erased")

    def _each(self, ctx: JobContext, barcodes: list[str], verb: str, act, summary) -> Outcome:
        """Run `act(lease, barcode)` for each cartridge of the library holding the first one."""
        catalog = self.service.catalog
        first = cat.get_cartridge(catalog, barcodes[0])
        library = cat.library_by_id(catalog, first.library_id).name
        done: list[dict] = []
        failed: list[TapelineError] = []
        with self.service.acquire_drive(library, ctx, barcode=barcodes[0]) as lease:
            for i, barcode in enumerate(barcodes):
                if ctx.cancel.is_set():
                    break
                ctx.progress(i, len(barcodes), f"{barcode}: loading")
                try:
                    done.append(act(lease, barcode))
                except (TapelineError, DeviceError) as exc:
                    failed.append(as_error(exc))
            lease.succeeded()
        result = {verb: done, "summary": summary(done)}
        shown = tuple(str(e) for e in failed)
        if ctx.cancel.is_set():
            return Outcome("cancelled", "cancelled by request", shown, result)
        if failed and not done:
            return Outcome("failed", failed[0].message, shown[1:], result, fix=failed[0].fix)
        if failed:
            return Outcome("completed with warnings", f"{plural(len(failed), 'cartridge')} not {verb}", shown, result)
        return Outcome("completed", result=result)

    def clean(self, ctx: JobContext) -> Outcome:
        p = ctx.params
        with self.service.acquire_drive(p["library"], ctx, number=p["drive"]) as lease:
            done = self.service.clean(lease)
            lease.succeeded()
        if not done["cleaned"]:
            return Outcome("failed", f"cleaning cartridge {done['cleaning_cartridge']} is used up: drive "
                           f"{done['drive']} was not cleaned", result=done,
                           fix="import a new cleaning cartridge, then clean the drive again")
        done["summary"] = (f"drive {done['drive']} of library {done['library']} cleaned with "
                           f"{done['cleaning_cartridge']} (use {done['uses']})")
        return Outcome("completed", result=done)

    # -- load, unload -------------------------------------------------------------------------------------------

    def load(self, ctx: JobContext) -> Outcome:
        p = ctx.params
        barcode = p["barcode"]
        with self.service.acquire_drive(p["library"], ctx, barcode=barcode, number=p["drive"]) as lease:
            ctx.progress(0, 1, f"{barcode}: loading into {lease.name}")
            try:
                label = lease.mount(barcode)
                holds = "blank" if label is None else f"labelled for pool {label.pool or '-'}"
            except (ForeignCartridge, LabelMismatch, FormatError) as exc:  # loaded all the same: it is said
                holds = why_unusable(exc)
            lease.succeeded()
        result = {"barcode": barcode, "library": p["library"], "drive": lease.number, "holds": holds,
                  "summary": f"cartridge {barcode} loaded into {lease.name} ({holds})"}
        return Outcome("completed", result=result)

    def unload(self, ctx: JobContext) -> Outcome:
        p = ctx.params
        catalog = self.service.catalog
        if p["barcode"] is not None:
            cart = cat.get_cartridge(catalog, p["barcode"])
            if cart.location_kind != "drive":  # moved since the request (a job took it back to its slot)
                return Outcome("completed", result={"summary": f"cartridge {cart.barcode} is no longer in a drive "
                                                               f"({where(cart)}): nothing to unload"})
            number = cart.location_number
        else:
            number = p["drive"]
        with self.service.acquire_drive(p["library"], ctx, number=number) as lease:
            held = lease.handle.current().drive(number)
            if not held.full:
                lease.succeeded()
                return Outcome("completed", result={"drive": number, "summary": f"{lease.name} was empty"})
            ctx.progress(0, 1, f"unloading {held.barcode or 'the cartridge'} from {lease.name}")
            lease.unmount()
            lease.succeeded()
        back = cat.find_barcode(catalog, held.barcode) if held.barcode else None
        to = where(back) if back is not None else "its home slot"
        return Outcome("completed", result={"barcode": held.barcode, "drive": number, "to": to,
                                            "summary": f"cartridge {held.barcode or '(no barcode)'} unloaded from "
                                                       f"{lease.name} to {to}"})
