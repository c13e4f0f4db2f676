"""The import job (`tapeline vault import`): what an operator put into the mail slots, recognised and put away.

Invariants:
- Only cartridges an operator placed in a mail slot (Element.impexp) are taken: ones this appliance ejected wait
  there for the courier. Each is recognised by its barcode against the catalog before anything moves:
  - an expected return (courier-retrieve, vault-retrieve, on-site-retrieve, not mountable, or on site already) goes
    to a free slot and becomes mountable (the move recorded with the job's id; it leaves its case). One whose data
    expired becomes scratch once the pool's reuse delay has passed (MediaService.expire, as for any cartridge).
  - an unknown barcode (one the catalog never had, or only saw in this mail slot: a fast inventory records a new
    barcode as blank), or one the catalog has as foreign: imported, marked foreign (never written until labelled),
    with a discrepancy alert.
  - one the catalog has in a vault or on its way there (vault, courier): a discrepancy, "present but expected in
    vault V"; it stays in the mail slot until the operator says it is back (`--accept BARCODE`), and then the move
    is recorded out of the cycle with the operator's name. `--accept` also takes one already in a slot or drive
    (put there by hand: the fast inventory raised the same discrepancy): it becomes mountable where it is.
  - a barcode seen twice in the library, or no readable barcode: refused (it stays in the mail slot), with an alert.
- No free slot: the job says so and waits, as export does (export.wait_for), until one is free.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlmodel import select

from appliance.catalog import media as cat
from appliance.catalog.models import Cartridge, CartridgeMove, Vault, utcnow
from appliance.catalog.moves import NEXT, RETURNS, SHOWN, move, relocate
from appliance.errors import TapelineError
from appliance.media.library import where as library_place
from appliance.ops import alerts
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import plural
from appliance.vault import checks
from appliance.vault.export import wait_for
from drivers.changer import Element
from drivers.errors import DeviceError


def _unknown(s, cart: Cartridge | None) -> bool:
    """Never known before it was put into the mail slot (a fast inventory may have recorded it there as blank)."""
    if cart is None:
        return True
    if cart.state != "blank" or cart.label_uuid is not None or cart.location_kind != "mailslot":
        return False
    moves = s.exec(select(CartridgeMove.to_location).where(CartridgeMove.cartridge_id == cart.id)).all()
    return all(to.startswith("mail slot") for to in moves)


class Import:
    """One run of the import job."""

    def __init__(self, ctx: JobContext, media):
        self.ctx, self.media, self.catalog = ctx, media, ctx.catalog
        self.accept = set(ctx.params.get("accept") or [])
        self.operator = ctx.params.get("operator") or "operator"
        self.done: set[str] = set()
        self.warnings: list[str] = []
        self.result: dict = {"imported": [], "unknown": [], "discrepancies": [], "refused": [], "scratch": [],
                             "expired": []}

    def run(self) -> Outcome:
        library = self.ctx.params.get("library")
        names = [library] if library else [lib.name for lib in cat.list_libraries(self.catalog)]
        for name in names:
            if not self._library(name):
                return self._end(cancelled=True)
        for barcode in sorted(self.accept - self.done):
            self.warnings.append(f"--accept {barcode}: no cartridge {barcode} waits for your word in a mail slot or "
                                 "slot; nothing was done for it")
        self.media.expire(utcnow())  # and the index copies of the sets that stopped counting
        back = [i["barcode"] for i in self.result["imported"] if i["as"] in ("return", "accepted")]
        with self.catalog.reader() as s:
            states = {c.barcode: c.state for c in s.exec(select(Cartridge).where(Cartridge.barcode.in_(back)))}
        self.result["scratch"] = sorted(b for b, state in states.items() if state == "scratch")
        self.result["expired"] = sorted(b for b, state in states.items() if state == "expired")  # reuse delay
        self.result["checks"] = checks.queue_pending(self.catalog, self.media.engine, back)  # sampled read-backs
        return self._end()

    def _library(self, library: str) -> bool:
        handle = self.media.library(library)
        inv = handle.current()
        seen = Counter(e.barcode for e in inv.slots + inv.drives + inv.mailslots if e.full and e.barcode)
        placed = [m for m in inv.mailslots if m.full and m.impexp]
        # every verdict before anything moves: the inventories below record a new barcode as a known blank one
        verdicts = [(m, self._verdict(library, m, seen)) for m in placed]
        for m, verdict in verdicts:
            if self.ctx.cancel.is_set():
                return False
            if verdict is None:
                continue
            slot = self._free_slot(library)
            if slot is None:
                return False
            self.ctx.progress(len(self.result["imported"]), len(placed), f"importing {m.barcode} into slot {slot}")
            try:
                with handle.lock:
                    handle.changer.import_(m.mailslot_number, slot)
            except (TapelineError, DeviceError) as exc:
                handle.reset()
                self.warnings.append(f"{m.barcode}: not imported from mail slot {m.mailslot_number}: {exc}")
                continue
            self._record(handle.row.id, library, m, slot, verdict, utcnow())
        self._accept_inside(handle)
        return True

    def _accept_inside(self, handle) -> None:
        """The operator's word on cartridges already in a slot or drive that the catalog has in a vault (the fast
        inventory alerted them): mountable where they are, the move recorded out of the cycle with their name."""
        inv = handle.current()
        for barcode in sorted(self.accept - self.done):
            element = inv.find(barcode)
            if element is None or element.kind not in ("slot", "drive"):
                continue
            with self.catalog.session() as s:
                cart = cat.find_cartridge(s, barcode)
                if cart is None or cart.rotation == "mountable":
                    continue
                move(s, cart, "mountable", utcnow(), operator=self.operator,
                     reason=f"accepted back in the library by the operator (vault import, job {self.ctx.job_id})",
                     place=library_place(element), skip=True, job_id=self.ctx.job_id)
                cart.case_id = None
                s.add(cart)
            self.done.add(barcode)
            alerts.resolve_message(self.catalog, f"cartridge {barcode} is present in ")
            self.result["imported"].append({"barcode": barcode, "slot": element.number, "as": "accepted"})

    def _free_slot(self, library: str) -> int | None:
        """A free slot, once there is one and the mail slot door is shut (the changer cannot reach a mail slot
        while an operator has it open); None when cancelled meanwhile."""
        while True:
            inv = wait_for(self.ctx, self.media, library, lambda inv: bool(inv.empty_slots()),
                           f"library {library} has no free slot for the cartridges in its mail slots",
                           "take out cartridges it no longer needs (`tapeline vault export`, or the mail slot): the "
                           "job goes on by itself")
            if inv is None:
                return None
            inv = wait_for(self.ctx, self.media, library, lambda inv: all(m.access for m in inv.mailslots),
                           f"the mail slot door of library {library} is open", "shut it: the import goes on by itself")
            if inv is None:
                return None
            if inv.empty_slots():
                return inv.empty_slots()[0].number

    def _verdict(self, library: str, m: Element, seen: Counter) -> str | None:
        """What the cartridge in mail slot `m` is: "return", "unknown", "foreign", "accepted"; None: it stays (a
        discrepancy or a refusal, alerted)."""
        where = f"mail slot {m.mailslot_number} of library {library}"
        if not m.barcode:
            self._alert(f"{where} holds a cartridge without a readable barcode: not imported",
                        "take it out, put a barcode label on it, and put it back", "refused", None)
            return None
        if seen[m.barcode] > 1:
            self._alert(f"barcode {m.barcode} is on two cartridges in library {library} (one in {where}): not "
                        "imported", f"take the one in {where} out and give it a barcode of its own", "refused",
                        m.barcode)
            return None
        with self.catalog.reader() as s:
            cart = cat.find_cartridge(s, m.barcode)
            if _unknown(s, cart):
                return "unknown"
            if cart.state == "foreign":
                return "foreign"
            if cart.rotation == "mountable" or cart.rotation in RETURNS:
                return "return"
            vault = s.get(Vault, cart.vault_id) if cart.vault_id is not None else None
        if m.barcode in self.accept:
            return "accepted"
        expected = f"vault {vault.name}" if vault else "a vault"
        self._alert(f"cartridge {m.barcode} is present in {where} but expected in {expected} "
                    f"({SHOWN[cart.rotation]}): left in the mail slot",
                    f"if it really came back, `tapeline vault import --accept {m.barcode}` (recorded with your "
                    "name); if not, check its barcode label", "discrepancies", m.barcode, severity="error")
        return None

    def _alert(self, message: str, fix: str, kind: str, barcode: str | None, severity: str = "warning") -> None:
        alerts.raise_alert(self.catalog, severity, message, fix, None, self.ctx.job_id)
        self.warnings.append(message)
        self.result[kind].append({"barcode": barcode, "message": message, "fix": fix})

    def _record(self, library_id: int, library: str, m: Element, slot: int, verdict: str, now: datetime) -> None:
        jid = self.ctx.job_id
        with self.catalog.session() as s:
            cart = cat.find_cartridge(s, m.barcode)
            if cart is None:
                cart = Cartridge(barcode=m.barcode, state="foreign", first_seen=now)
                s.add(cart)
                s.flush()
            cart.library_id = library_id
            if verdict in ("unknown", "foreign"):
                cart.state = "foreign"
                cart.note = "put into the mail slot unknown to the catalog: label it before Tapeline writes to it" \
                    if verdict == "unknown" else cart.note
                relocate(s, cart, "slot", slot, now, operator="tapeline", reason=f"vault import (job {jid})")
            elif cart.rotation == "mountable":
                relocate(s, cart, "slot", slot, now, operator="tapeline", reason=f"vault import (job {jid})")
            else:
                accepted = verdict == "accepted"
                move(s, cart, "mountable", now, operator=self.operator if accepted else "tapeline",
                     reason=("accepted back through the mail slot by the operator" if accepted
                             else "returned through the mail slot") + f" (vault import, job {jid})",
                     place=("slot", slot), skip="mountable" not in NEXT[cart.rotation], job_id=jid)
            cart.case_id = None  # out of its case, back in the library
            s.add(cart)
        self.result["imported"].append({"barcode": m.barcode, "slot": slot, "as": verdict})
        self.done.add(m.barcode)
        if verdict == "accepted":
            alerts.resolve_message(self.catalog, f"cartridge {m.barcode} is present in ")
        if verdict in ("unknown", "foreign"):
            self._alert(f"cartridge {m.barcode} put into library {library} is {verdict} to this catalog: imported "
                        f"into slot {slot}, never written until labelled",
                        f"label it for a pool with `tapeline media label {m.barcode} --pool POOL` (add --force if "
                        "what it holds may be lost)", "unknown", m.barcode)

    def _end(self, cancelled: bool = False) -> Outcome:
        r = self.result
        r["summary"] = (f"{plural(len(r['imported']), 'cartridge')} imported"
                        + (f" ({len(r['scratch'])} back to scratch)" if r["scratch"] else "")
                        + (f", {len(r['unknown'])} unknown" if r["unknown"] else "")
                        + (f", {plural(len(r['discrepancies']), 'discrepancy', 'discrepancies')}"
                           if r["discrepancies"] else "")
                        + (f", {len(r['refused'])} refused" if r["refused"] else ""))
        if cancelled:
            return Outcome("cancelled", "cancelled by request", tuple(self.warnings), r)
        if self.warnings:
            return Outcome("completed with warnings", self.warnings[0], tuple(self.warnings), r)
        return Outcome("completed", None, (), r)
