"""The medium changer logical unit (SMC-3, PDT 8): element status, MOVE MEDIUM, mail slot, inventory.

Invariants:
- Every MOVE MEDIUM is one atomic state change (`Library.mutate`): the cartridge leaves its source and reaches its
  destination in the same saved state, or nothing changes and CHECK CONDITION says why.
- A cartridge moved into a drive is threaded at once (auto-load); moved out of a threaded drive it is unloaded first
  (auto-unload), unless the drive's PREVENT MEDIUM REMOVAL is set (05/53/02).
- A cleaning cartridge moved into a drive cleans it and is ejected: the move happens and ends 02/30/03, as a real
  library reports it and mtx prints "Cleaning Cartridge Installed and Ejected". One with no uses left cleans
  nothing: the drive raises TapeAlert 0x16 (expired cleaning media) instead.
- The drive's source address is the element the cartridge came from (its home slot for a slot-to-drive move), so
  mtx prints the true home slot, which stays empty while the cartridge is out.
- Closing the mail slot door (an operator action in another process) raises 06/28/01 once on the changer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.scsi import smc, spc
from drivers.scsi.sense import (
    CLEANING_CARTRIDGE,
    DESTINATION_FULL,
    IMPORT_EXPORT_ACCESSED,
    INCOMPATIBLE_MEDIUM,
    INVALID_ELEMENT,
    LOAD_EJECT_FAILED,
    MANUAL_INTERVENTION,
    REMOVAL_PREVENTED,
    SOURCE_EMPTY,
)
from simulators.vtl import pages
from simulators.vtl.pages import TA_CLEAN_NOW, TA_EXPIRED_CLEANING
from simulators.vtl.library import DATA_TRANSFER, IMPORT_EXPORT, STORAGE, TRANSPORT
from simulators.vtl.personality import CLEANING_USES, MEDIA
from simulators.vtl.target import GOOD_ANSWER, Answer, LogicalUnit, check, invalid_field

if TYPE_CHECKING:
    from simulators.vtl.drive_lu import DriveUnit
    from simulators.vtl.library import Library

ELEMENT_TYPES = (smc.ELEMENT_ALL, smc.ELEMENT_TRANSPORT, smc.ELEMENT_STORAGE, smc.ELEMENT_IMPORT_EXPORT,
                 smc.ELEMENT_DATA_TRANSFER)


class ChangerUnit(LogicalUnit):
    device_type = spc.PDT_CHANGER

    def __init__(self, library: Library, drives: list[DriveUnit]):
        super().__init__(library, "changer")
        self.drives = drives
        self.door_events = library.state.door_events
        self.handlers = {
            spc.TEST_UNIT_READY.opcode: self.test_unit_ready,
            spc.REQUEST_SENSE.opcode: self.request_sense,
            spc.INQUIRY.opcode: self.inquiry,
            spc.MODE_SENSE_6.opcode: self.mode_sense,
            spc.MODE_SENSE_10.opcode: self.mode_sense,
            spc.PREVENT_ALLOW_MEDIUM_REMOVAL.opcode: self.prevent_allow,
            spc.REPORT_LUNS.opcode: self.report_luns,
            smc.READ_ELEMENT_STATUS.opcode: self.read_element_status,
            smc.MOVE_MEDIUM.opcode: self.move_medium,
            smc.INITIALIZE_ELEMENT_STATUS.opcode: self.initialize_element_status,
            smc.INITIALIZE_ELEMENT_STATUS_WITH_RANGE.opcode: self.initialize_element_status,
            smc.POSITION_TO_ELEMENT.opcode: self.position_to_element,
        }

    def before(self, opcode: int) -> None:
        self.library.refresh()
        if self.library.state.door_events != self.door_events:
            self.door_events = self.library.state.door_events
            self.attention(IMPORT_EXPORT_ACCESSED)

    def after(self, opcode: int) -> None:
        for drive in self.drives:  # a MOVE loads or unloads them, with a unit attention to save
            drive.after(-1)

    # ---- SPC --------------------------------------------------------------------------------------------------
    def test_unit_ready(self, fields, data_out, data_in_len) -> Answer:
        if self.library.state.door_open:
            raise check(MANUAL_INTERVENTION)
        return GOOD_ANSWER

    def inquiry(self, fields, data_out, data_in_len) -> Answer:
        p = self.library.personality
        return pages.inquiry(self, spc.INQUIRY, fields, p.vendor, p.product, p.revision)

    def mode_sense(self, fields, data_out, data_in_len) -> Answer:
        return pages.changer_mode_sense(self, fields)

    def prevent_allow(self, fields, data_out, data_in_len) -> Answer:
        if fields["prevent"] not in (spc.ALLOW_MEDIUM_REMOVAL, spc.PREVENT_MEDIUM_REMOVAL):
            raise invalid_field(spc.PREVENT_ALLOW_MEDIUM_REMOVAL, "prevent")
        locked = fields["prevent"] == spc.PREVENT_MEDIUM_REMOVAL
        if locked != self.library.state.mail_locked:
            with self.library.mutate() as state:
                state.mail_locked = locked
        return GOOD_ANSWER

    # ---- SMC --------------------------------------------------------------------------------------------------
    def read_element_status(self, fields, data_out, data_in_len) -> Answer:
        etype = fields["element_type"]
        if etype not in ELEMENT_TYPES:
            raise invalid_field(smc.READ_ELEMENT_STATUS, "element_type")
        start, count = fields["start"], fields["count"]
        chosen = [e for e in self.library.elements() if (etype == smc.ELEMENT_ALL or e[0] == etype) and e[2] >= start]
        if not chosen and self.library.element(start) is None:
            raise check(INVALID_ELEMENT)  # mtx's altres loop reads 21/01 as "end of list"
        # The count keeps the lowest addresses whatever their type (reference/scsi.md §3); pages stay in type order.
        first = sorted(chosen, key=lambda e: e[2])[:count]
        in_order = sorted(first, key=lambda e: (e[0], e[2]))
        views = [(etype, address, self.element_view(etype, index)) for etype, index, address in in_order]
        return pages.element_status(views, fields)

    def _resolve(self, address: int) -> tuple[int, int]:
        found = self.library.element(address)
        if found is None:
            raise check(INVALID_ELEMENT)
        return found

    def move_medium(self, fields, data_out, data_in_len) -> Answer:
        lib = self.library
        if fields["transport"] not in (0, lib.personality.transport_base):
            raise check(INVALID_ELEMENT)
        if fields["invert"]:
            raise invalid_field(smc.MOVE_MEDIUM, "invert")
        src, dst = self._resolve(fields["source"]), self._resolve(fields["destination"])
        state = lib.state
        if state.door_open and IMPORT_EXPORT in (src[0], dst[0]):
            raise check(MANUAL_INTERVENTION)
        barcode = lib.occupant(*src)
        if barcode is None:
            raise check(SOURCE_EMPTY)
        if src == dst:
            return GOOD_ANSWER
        if lib.occupant(*dst) is not None:
            raise check(DESTINATION_FULL)
        info = state.cartridges[barcode]
        source_drive = self.drives[src[1]] if src[0] == DATA_TRANSFER else None
        if source_drive is not None and source_drive.prevent:
            raise check(REMOVAL_PREVENTED)
        drive = self.drives[dst[1]] if dst[0] == DATA_TRANSFER else None
        if drive is not None:
            # An offline drive cannot take the cartridge: a real library's picker fails the load and reports it as
            # a load failure (04/53/00), as for a cartridge that will not load; the drive itself says 02/04/12.
            if drive.offline or lib.faults_for("load-failure", barcode):
                self._fire_load_failure(barcode)
                raise check(LOAD_EJECT_FAILED)
            media = MEDIA[info.media] if info.media else None
            if media is not None and not drive.drive.can_read(media):
                raise check(INCOMPATIBLE_MEDIUM)
        lib.clock.spend(lib.personality.move_s)
        home = fields["source"]
        with lib.mutate() as state:
            if source_drive is not None:
                was = state.drives[src[1]]
                home = was.source if was.source is not None else home
                if was.threaded:
                    lib.clock.spend(source_drive.drive.unload_s)
                was.threaded, was.source = False, None
            lib.set_occupant(*src, None)
            lib.set_occupant(*dst, barcode)
            if src[0] == IMPORT_EXPORT:
                state.mail_placed[src[1]] = False
            if dst[0] == IMPORT_EXPORT:
                state.mail_placed[dst[1]] = False
            if drive is not None:
                target = state.drives[dst[1]]
                target.source = home if lib.element(home) and lib.element(home)[0] in (STORAGE, IMPORT_EXPORT) else None
                target.threaded = info.kind != "cleaning"
                cleaned = info.kind == "cleaning" and self._clean(state, dst[1], barcode)
        if source_drive is not None:
            source_drive.unloaded()
        if drive is not None:
            if info.kind == "cleaning":
                if cleaned:
                    drive.tapealerts.discard(TA_CLEAN_NOW)
                    drive.cleaning_reported = False
                else:
                    drive.tapealerts.add(TA_EXPIRED_CLEANING)
                drive.sync()
                raise check(CLEANING_CARTRIDGE)
            drive.loaded()
            if not info.loaded_before:
                with lib.mutate() as state:
                    state.cartridges[barcode].loaded_before = True
        return GOOD_ANSWER

    def _clean(self, state, drive_index: int, barcode: str) -> bool:
        """A cleaning cartridge in a drive: clean it (one use), then it sits ejected in the drive. False when it
        has no use left (it cleans nothing)."""
        name = f"drive{drive_index}"
        cleaner = state.cartridges[barcode]
        if cleaner.cleaning_uses <= 0:
            return False
        state.drives[drive_index].needs_cleaning = False
        state.faults = [f for f in state.faults if not (f.kind == "cleaning-required" and f.target == name)]
        cleaner.cleaning_uses = max(0, min(cleaner.cleaning_uses, CLEANING_USES) - 1)
        return True

    def _fire_load_failure(self, barcode: str) -> None:
        faults = self.library.faults_for("load-failure", barcode)
        if any(not f.persistent for f in faults):
            with self.library.mutate() as state:
                state.faults = [f for f in state.faults
                                if not (f.kind == "load-failure" and f.target == barcode and not f.persistent)]

    def initialize_element_status(self, fields, data_out, data_in_len) -> Answer:
        if fields.get("range"):
            first, n = fields["start"], fields["count"]
            if self.library.element(first) is None:
                raise check(INVALID_ELEMENT)
            scanned = sum(1 for e in self.library.elements() if first <= e[2] < first + max(n, 1))
        else:
            scanned = len(self.library.elements())
        self.library.clock.spend(0.1 * scanned)  # a barcode scan per element
        return GOOD_ANSWER

    def position_to_element(self, fields, data_out, data_in_len) -> Answer:
        if fields["invert"]:
            raise invalid_field(smc.POSITION_TO_ELEMENT, "invert")
        if fields["transport"] not in (0, self.library.personality.transport_base):
            raise check(INVALID_ELEMENT)
        self._resolve(fields["destination"])
        self.library.clock.spend(self.library.personality.move_s / 2)
        return GOOD_ANSWER

    def element_view(self, etype: int, index: int) -> dict:
        """What an element descriptor says about one element (used by `pages.element_status`)."""
        lib, state = self.library, self.library.state
        barcode = lib.occupant(etype, index)
        view = {"barcode": barcode, "access": True, "impexp": False, "source": None, "except": None,
                "medium": None}
        if barcode is not None:
            view["medium"] = state.cartridges[barcode].kind
        if etype == IMPORT_EXPORT:
            view["access"] = not state.door_open
            view["impexp"] = state.mail_placed[index]
        elif etype == DATA_TRANSFER:
            d = state.drives[index]
            view["access"] = not d.threaded
            view["source"] = d.source
            view["drive"] = self.drives[index]
        elif etype == TRANSPORT:
            view["access"] = False
        return view
