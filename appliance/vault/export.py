"""The export job (`tapeline vault export`): offsite-ready cartridges out through the mail slots, in batches.

Invariants:
- Before any cartridge leaves, each rotating pool with something to send gets the catalog and the configuration
  written into its current media set (drplan.backup_catalog), and then, with any allocation but `always`
  (`continue` or a calendar event: policy.closes_for_export), its open media set is closed when no job writes to it
  (policy.close_for_export): the batch that leaves carries the catalog.
  A catalog backup that fails is a warning, never a reason to keep the cartridges back. From then on the job uses
  no drive (the changer ejects; a person empties the mail slots): it gives its drive slot back
  (JobContext.release_drive), so the night's tape jobs do not wait behind an operator.
- A cartridge becomes `courier` only once the changer has put it into a mail slot (recorded at that mail slot, with
  the job's id, in its case); one the catalog has on site out of the library is handed to the courier as it is.
  The operator taking it out of the mail slot is seen by the next fast inventory: it goes "in transit".
- More cartridges than mail slots: after each batch the job says so (progress message, a job event and one alert:
  "empty the mail slots of library L: N cartridges are waiting") and polls the changer (a fast inventory each look)
  until this job's cartridges are out of the mail slots and the door is shut; then the next batch, by itself.
  Cancelling stops between batches; what already left stays courier.
- The DR plan is written after each batch (drplan.write), so the newest one travels with the batch.
- A cartridge the catalog places in the library but the changer does not hold, or one in a drive another job uses,
  is named in a warning: nothing is skipped silently.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Callable

from sqlmodel import select

from appliance.catalog import media as cat
from appliance.catalog.models import IN_LIBRARY_LOCATIONS, MediaSet, Pool, TapeSet, utcnow
from appliance.catalog.moves import move
from appliance.catalog.vaults import case_for
from appliance.errors import Conflict, TapelineError, UsageError
from appliance.media.library import apply_inventory
from appliance.ops import alerts
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import plural
from appliance.vault import drplan, policy
from drivers.changer import Inventory
from drivers.errors import DeviceError

log = logging.getLogger("tapeline.vault")

WAIT_POLL = 2.0  # seconds between two looks at the mail slots while a job waits for the operator


def rotating_pools(catalog, pool: str | None) -> list[Pool]:
    """The pools an export sends from: `pool` (which must name a vault), or every pool that names one."""
    if pool is not None:
        row = cat.get_pool(catalog, pool)
        if row.vault_id is None:
            raise UsageError(f"pool '{pool}' sends its cartridges to no vault",
                             f"name one with `tapeline pool set {pool} --vault NAME`")
        return [row]
    with catalog.reader() as s:
        rows = list(s.exec(select(Pool).where(Pool.vault_id != None).order_by(Pool.name)).all())  # noqa: E711
    if not rows:
        raise UsageError("no pool sends its cartridges to a vault",
                         "create a vault (`tapeline vault create NAME`) and name it on a pool (`tapeline pool set "
                         "POOL --vault NAME`)")
    return rows


def wait_for(ctx: JobContext, media, library: str, ready: Callable[[Inventory], bool], message: str,
             fix: str) -> Inventory | None:
    """Poll library `library` until `ready(inventory)`: a progress message, a job event and one alert while it
    waits (resolved when it stops waiting); each look is a fast inventory, so what the operator took out is
    recorded before anything else goes into its place. None when cancelled meanwhile."""
    handle = media.library(library)
    asked = False
    while True:
        with handle.lock:
            inv = handle.current()
            apply_inventory(ctx.catalog, handle.row, inv, utcnow())
        if ready(inv):
            if asked:
                alerts.resolve_message(ctx.catalog, message)
            return inv
        if ctx.cancel.is_set():
            return None
        if not asked:
            alerts.raise_alert(ctx.catalog, "warning", message, fix, None, ctx.job_id)
            ctx.event("waited", message)
            asked = True
        ctx.progress(0, None, message)
        ctx.cancel.wait(WAIT_POLL)


def _open_set(catalog, pool: Pool) -> MediaSet | None:
    with catalog.reader() as s:
        return s.exec(select(MediaSet).where(MediaSet.pool_id == pool.id, MediaSet.closed == None)  # noqa: E711
                      .order_by(MediaSet.id.desc())).first()


def _holds_sets(catalog, media_set: MediaSet) -> bool:
    with catalog.reader() as s:
        return s.exec(select(TapeSet).where(TapeSet.media_set_id == media_set.id, TapeSet.state == "ok",
                                            TapeSet.group_name != drplan.DR_GROUP)).first() is not None


def _to_courier(catalog, barcode: str, mailslot: int | None, vault_id: int, case: str, job_id: int,
                now: datetime) -> None:
    with catalog.session() as s:
        cart = cat.find_cartridge(s, barcode)
        row = move(s, cart, "courier", now, operator="tapeline", reason=f"vault export (job {job_id})",
                   vault_id=vault_id, job_id=job_id)
        if mailslot is not None:  # in the mail slot until the operator takes it: the next inventory says "in transit"
            cart.location_kind, cart.location_number = "mailslot", mailslot
            if row is not None:
                row.to_location = f"mail slot {mailslot}"
        cart.case_id = case_for(s, case, vault_id).id
        s.add(cart)


class Export:
    """One run of the export job."""

    def __init__(self, ctx: JobContext, media, settings, backup_catalog: Callable[[str], Outcome]):
        self.ctx, self.media, self.settings, self.backup_catalog = ctx, media, settings, backup_catalog
        self.catalog = ctx.catalog
        self.warnings: list[str] = []
        self.result: dict = {"catalog_backups": [], "closed": [], "ejected": [], "handed_over": [], "batches": 0,
                             "plans": []}

    def run(self) -> Outcome:
        p = self.ctx.params
        pools = rotating_pools(self.catalog, p.get("pool"))
        for pool in pools:
            if self.ctx.cancel.is_set() or not self._prepare(pool):
                return self._end(cancelled=True)
        self.ctx.release_drive()  # the catalog is on tape: the rest is the changer and a person at the mail slots
        now = utcnow()
        carts = policy.offsite_ready(self.catalog, now, p.get("pool"))
        vault_of = {pool.id: pool.vault_id for pool in pools}
        cases = {pool.id: p.get("case") or f"{pool.name}-{now:%Y%m%d}-{self.ctx.job_id}" for pool in pools}
        by_library: dict[int | None, list] = defaultdict(list)
        for cart in carts:
            if cart.pool_id in vault_of:
                by_library[cart.library_id].append(cart)
        for library_id, group in by_library.items():
            if not self._send(library_id, group, vault_of, cases):
                return self._end(cancelled=True)
        if not self.result["batches"]:
            self.result["plans"].append(str(drplan.write(self.catalog, self.settings, utcnow())))
        return self._end()

    def _prepare(self, pool: Pool) -> bool:
        """The catalog to tape in the pool's media, then its open set closed for the trip (any allocation but
        `always`: policy.closes_for_export); False when cancelled meanwhile."""
        open_set = _open_set(self.catalog, pool)
        news = open_set is not None and policy.closes_for_export(pool) and _holds_sets(self.catalog, open_set)
        if not news and not policy.offsite_ready(self.catalog, utcnow(), pool.name):
            return True
        self.ctx.progress(0, None, f"writing the catalog and the configuration to pool {pool.name}")
        try:
            out = self.backup_catalog(pool.name)
        except (TapelineError, DeviceError) as exc:
            out = Outcome("failed", str(exc))
        if out.state == "cancelled":
            return False
        if out.state in ("completed", "completed with warnings"):
            tape = out.result["tape"]
            self.result["catalog_backups"].append({"pool": pool.name, "set": tape["set"],
                                                   "cartridges": tape["cartridges"]})
        else:
            self.warnings.append(f"pool {pool.name}: the catalog backup was not written ({out.reason}): this batch "
                                 "leaves without it")
        open_set = _open_set(self.catalog, pool)
        if policy.closes_for_export(pool) and open_set is not None:
            try:
                policy.close_for_export(self.catalog, open_set, utcnow())
                self.result["closed"].append(open_set.uuid)
            except Conflict as exc:
                self.warnings.append(f"{exc.message}: its cartridges leave with a later export")
        return True

    def _send(self, library_id: int | None, carts: list, vault_of: dict, cases: dict) -> bool:
        """Hand over the cartridges on the shelf and eject the others in batches; False when cancelled."""
        jid = self.ctx.job_id
        for cart in carts:
            if cart.location_kind not in IN_LIBRARY_LOCATIONS:
                _to_courier(self.catalog, cart.barcode, None, vault_of[cart.pool_id], cases[cart.pool_id], jid,
                            utcnow())
                self.result["handed_over"].append(cart.barcode)
        pending = [c for c in carts if c.location_kind in IN_LIBRARY_LOCATIONS]
        if not pending:
            return True
        library = cat.library_by_id(self.catalog, library_id).name
        handle = self.media.library(library)
        if not handle.current().mailslots:
            self.warnings.append(f"library {library} has no mail slots: take {', '.join(c.barcode for c in pending)} "
                                 "out by hand, then `tapeline library inventory` and `tapeline vault export` again")
            return True
        last_batch: set[str] = set()
        fix = (f"take the cartridges out of the mail slots of library {library} and shut the door: the job goes on "
               "by itself")

        def ready(inv: Inventory) -> bool:
            return (all(m.access for m in inv.mailslots) and any(not m.full for m in inv.mailslots)
                    and not any(m.barcode in last_batch for m in inv.mailslots if m.full))
        while pending:
            message = (f"empty the mail slots of library {library}: {plural(len(pending), 'cartridge')} "
                       f"{'is' if len(pending) == 1 else 'are'} waiting")
            inv = wait_for(self.ctx, self.media, library, ready, message, fix)
            if inv is None:
                return False
            free = [m.mailslot_number for m in inv.mailslots if not m.full]
            last_batch = set()
            while free and pending:
                cart = pending.pop(0)
                self.ctx.progress(len(self.result["ejected"]), None, f"ejecting {cart.barcode}")
                slot = free[0]
                if self._eject(handle, cart.barcode, slot):
                    free.pop(0)
                    _to_courier(self.catalog, cart.barcode, slot, vault_of[cart.pool_id], cases[cart.pool_id], jid,
                                utcnow())
                    self.result["ejected"].append({"barcode": cart.barcode, "mailslot": slot,
                                                   "case": cases[cart.pool_id], "batch": self.result["batches"] + 1})
                    last_batch.add(cart.barcode)
            if last_batch:
                self.result["batches"] += 1
                self.result["plans"].append(str(drplan.write(self.catalog, self.settings, utcnow())))
        return True

    def _eject(self, handle, barcode: str, mailslot: int) -> bool:
        """Move `barcode` (from its slot, or an idle drive) into `mailslot`; a warning naming it when it cannot."""
        try:
            with handle.lock:
                element = handle.current().find(barcode)
                if element is not None and element.kind == "drive":
                    self.media.take_from_drive(handle, element.number, barcode)
                    element = handle.current().find(barcode)
                if element is None or element.kind != "slot":
                    where = "in a mail slot already" if element is not None else "nowhere"
                    self.warnings.append(f"{barcode}: library {handle.name} holds it {where}: not ejected (run "
                                         f"`tapeline library inventory {handle.name}`)")
                    return False
                handle.changer.export(element.number, mailslot)
            return True
        except (TapelineError, DeviceError) as exc:
            handle.reset()
            self.warnings.append(f"{barcode}: not ejected: {exc}")
            return False

    def _end(self, cancelled: bool = False) -> Outcome:
        r = self.result
        cases = sorted({e["case"] for e in r["ejected"]})
        batches = plural(r["batches"], "batch", "batches")
        r["summary"] = (f"{plural(len(r['ejected']), 'cartridge')} ejected in {batches}"
                        + (f", {len(r['handed_over'])} handed over from the shelf" if r["handed_over"] else "")
                        + (f" (cases {', '.join(cases)})" if cases else "")
                        + (f"; catalog on {', '.join(b['cartridges'][-1] for b in r['catalog_backups'])}"
                           if r["catalog_backups"] else "")
                        + ("" if r["ejected"] or r["handed_over"] else ": nothing is ready to go offsite"))
        if cancelled:
            return Outcome("cancelled", "cancelled by request", tuple(self.warnings), r)
        if self.warnings:
            return Outcome("completed with warnings", self.warnings[0], tuple(self.warnings), r)
        return Outcome("completed", None, (), r)
