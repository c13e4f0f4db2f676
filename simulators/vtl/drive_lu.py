"""A tape drive logical unit (SSC-3, PDT 1): positioning, READ/WRITE rules, sense, on a cartridge image.

Position model (reference/scsi.md §4): the tape is a sequence of objects (blocks and filemarks) then EOD; the position
is "before object n" and READ POSITION counts blocks and filemarks alike.

Invariants:
- The drive holds a cartridge image open exactly while the library state has a cartridge in it; `before()` re-syncs
  with the state (another process may have planted a fault or the changer moved a cartridge) before each command.
- A command that fails leaves the position where SSC says (READ at EOD does not move; at a filemark it moves past).
- WRITE and WRITE FILEMARKS past early warning write the data and end CHECK CONDITION 00/00/02 EOM=1; a block that
  does not fit before physical end is not written (0D/00/02).
- TapeAlert flags accumulate until LOG SENSE page 0x2E reads them.
- The logical state (position, block size, compression, pending unit attentions) outlives the process like a real
  drive's while the tape stays threaded (library.py): `after()` saves it when a command changed it, except on the
  streaming paths. A WRITE leaves the position at end of data, saved once as `at_eod` and derived from the image on
  restore, so a run of WRITEs costs no state write; READs are saved by the next other command or the clean close.
  A drive whose previous process died comes back at BOP with UNIT ATTENTION 06/29/00 (power on).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from drivers.scsi import spc, ssc
from drivers.scsi.sense import (
    BECOMING_READY,
    BEGINNING_OF_MEDIUM,
    CLEANING_CARTRIDGE,
    CLEANING_REQUESTED,
    EARLY_WARNING,
    END_OF_DATA,
    FILEMARK_DETECTED,
    INCORRECT_LENGTH,
    LOGICAL_UNIT_OFFLINE,
    MEDIUM_CHANGED,
    MODE_PARAMETERS_CHANGED,
    NO_MEDIUM,
    POWER_ON_RESET,
    REMOVAL_PREVENTED,
    UNRECOVERED_READ_ERROR,
    VOLUME_OVERFLOW,
    WORM_OVERWRITE,
    WRITE_ERROR,
    WRITE_PROTECTED,
)
from simulators.vtl import cartridge as cart
from simulators.vtl import pages
from simulators.vtl.pages import (
    TA_CLEAN_NOW,
    TA_NO_REMOVAL,
    TA_READ_FAILURE,
    TA_READ_ONLY_FORMAT,
    TA_WORM_OVERWRITE,
    TA_WRITE_FAILURE,
    TA_WRITE_PROTECT,
)
from simulators.vtl.clock import Streaming, load_seconds, locate_seconds
from simulators.vtl.personality import DRIVES, MEDIA
from simulators.vtl.target import GOOD_ANSWER, Answer, Check, LogicalUnit, check, invalid_field

if TYPE_CHECKING:
    from simulators.vtl.library import Library, State

# Unit attentions a drive can hold across processes, by the code they are saved as.
ATTENTIONS = {c.sense().code: c for c in (MEDIUM_CHANGED, MODE_PARAMETERS_CHANGED, POWER_ON_RESET)}
WRITES = frozenset({ssc.WRITE_6.opcode, ssc.WRITE_FILEMARKS_6.opcode})


class DriveUnit(LogicalUnit):
    device_type = spc.PDT_TAPE

    def __init__(self, library: Library, index: int):
        super().__init__(library, f"drive{index}")
        self.index = index
        self.drive = DRIVES[library.state.drives[index].generation]
        self.cartridge: cart.Cartridge | None = None
        self.media = None
        self.position = 0
        self.block_length = 0  # 0 = variable-block mode
        self.ready_at = 0.0
        self.prevent = False
        self.compression = True
        self.tapealerts: set[int] = set()
        self.streaming = Streaming()
        self.cleaning_reported = False
        self.synced_version = -1
        self.serial = f"{library.state.serial}{index:02d}"[-10:]
        self.handlers = {
            spc.TEST_UNIT_READY.opcode: self.test_unit_ready,
            spc.REQUEST_SENSE.opcode: self.request_sense,
            spc.INQUIRY.opcode: self.inquiry,
            spc.MODE_SENSE_6.opcode: self.mode_sense,
            spc.MODE_SENSE_10.opcode: self.mode_sense,
            spc.MODE_SELECT_6.opcode: lambda f, d, n: pages.drive_mode_select(self, f, d, ten=False),
            spc.MODE_SELECT_10.opcode: lambda f, d, n: pages.drive_mode_select(self, f, d, ten=True),
            spc.LOG_SENSE.opcode: self.log_sense,
            spc.PREVENT_ALLOW_MEDIUM_REMOVAL.opcode: self.prevent_allow,
            spc.REPORT_LUNS.opcode: self.report_luns,
            ssc.READ_6.opcode: self.read,
            ssc.WRITE_6.opcode: self.write,
            ssc.WRITE_FILEMARKS_6.opcode: self.write_filemarks,
            ssc.SPACE_6.opcode: self.space,
            ssc.SPACE_16.opcode: self.space,
            ssc.REWIND.opcode: self.rewind,
            ssc.LOAD_UNLOAD.opcode: self.load_unload,
            ssc.LOCATE_10.opcode: self.locate,
            ssc.LOCATE_16.opcode: self.locate,
            ssc.READ_POSITION.opcode: self.read_position,
            ssc.READ_BLOCK_LIMITS.opcode: self.read_block_limits,
            ssc.ERASE.opcode: self.erase,
            ssc.READ_ATTRIBUTE.opcode: self.read_attribute,
        }
        self.sync()
        self._saved: tuple | None = None  # the logical state as last saved (`_logical()`), None = not saved
        self._restore()

    # ---- state ------------------------------------------------------------------------------------------------
    @property
    def state(self):
        return self.library.state.drives[self.index]

    def sync(self) -> None:
        """Open or close the cartridge image to match the library state (threaded cartridge = open image)."""
        self.synced_version = self.library.version
        want = self.state.barcode if self.state.threaded else None
        have = self.cartridge.barcode if self.cartridge else None
        if want != have:
            self._close_image()
            if want is not None:
                self._open_image(want)
        if self.cartridge is not None:
            self._apply_cartridge_faults()

    def _open_image(self, barcode: str) -> None:
        info = self.library.state.cartridges[barcode]
        self.media = MEDIA[info.media] if info.media else None
        if info.kind == "cleaning":
            self.cartridge = None
            return
        self.cartridge = cart.Cartridge(self.library.cartridge_dir, barcode, info.capacity, worm=info.kind == "worm")
        self.position = 0

    def _close_image(self) -> None:
        if self.cartridge is not None:
            self.cartridge.close()
        self.cartridge = None
        self.media = None
        self.position = 0

    def _apply_cartridge_faults(self) -> None:
        c = self.cartridge
        info = self.library.state.cartridges[c.barcode]
        c.protected = info.protected or bool(self.library.faults_for("write-protect", c.barcode))
        eom = [f.arg for f in self.library.faults_for("early-eom", c.barcode)]
        c.capacity = min([info.capacity, *eom])
        # A planted end warns at least one largest block ahead: 2% of a small N can be less than the next block,
        # which would jump from GOOD straight to 0D/00/02 with no early warning.
        c.warning_zone = max(cart.early_warning_zone(c.capacity), self.drive.max_block) if eom else None

    def loaded(self, load_time: bool = True) -> None:
        """The changer threaded a cartridge into this drive: open it, becoming ready after the load time."""
        self.sync()
        info = self.library.state.cartridges.get(self.state.barcode or "")
        first = info is not None and not info.loaded_before
        self.ready_at = self.library.clock.deadline(load_seconds(self.drive, first)) if load_time else 0.0
        self.attention(MEDIUM_CHANGED)
        self.streaming = Streaming()

    def unloaded(self) -> None:
        self._close_image()
        self.attention(MEDIUM_CHANGED)

    # ---- logical state across processes ---------------------------------------------------------------------
    def _restore(self) -> None:
        saved = self.state
        if self.library.power_cycled:  # the process that held the drive died: what it had in memory is gone
            self.pending = [POWER_ON_RESET]
            return
        self.block_length, self.compression = saved.block_length, saved.compression
        self.pending = [ATTENTIONS[code] for code in saved.attentions if code in ATTENTIONS]
        if self.cartridge is not None:
            self.position = self.cartridge.eod if saved.at_eod else min(saved.position, self.cartridge.eod)
        self._saved = self._logical(saved.at_eod)

    def _logical(self, at_eod: bool) -> tuple:
        """(at_eod, position, block length, compression, pending attentions): what `store` saves."""
        at_eod = at_eod and self.cartridge is not None and self.position == self.cartridge.eod
        return (at_eod, self.position, self.block_length, self.compression,
                tuple(c.sense().code for c in self.pending))

    def store(self, state: State, logical: tuple | None = None) -> None:
        """Write the logical state into `state` (inside `Library.mutate`)."""
        logical = logical or self._logical(bool(self._saved and self._saved[0]))
        d = state.drives[self.index]
        d.at_eod, d.position, d.block_length, d.compression, codes = logical
        d.attentions = list(codes)
        self._saved = logical

    def after(self, opcode: int) -> None:
        if opcode in WRITES and self._saved is not None and self._saved[0] and not self.pending:
            return  # still at end of data, as saved: the streaming path writes no state
        if opcode == ssc.READ_6.opcode:
            return  # reads move block by block: saved by the next other command or the clean close
        logical = self._logical(opcode in WRITES or bool(self._saved and self._saved[0]))
        if logical != self._saved:
            with self.library.mutate() as state:
                self.store(state, logical)

    def before(self, opcode: int) -> None:
        self.library.refresh()
        if self.library.version != self.synced_version:
            self.sync()

    def close(self) -> None:
        self._close_image()

    @property
    def offline(self) -> bool:
        return bool(self.library.faults_for("drive-offline", self.name))

    def _ready(self) -> cart.Cartridge:
        """The loaded data cartridge, or the NOT READY / offline sense a real drive gives."""
        if self.offline:  # a state until cleared: nothing consumes it
            raise check(LOGICAL_UNIT_OFFLINE)
        state = self.state
        if not state.barcode or not state.threaded:
            raise check(NO_MEDIUM)
        if self.cartridge is None:
            raise check(CLEANING_CARTRIDGE)
        if self.ready_at and time.monotonic() < self.ready_at:
            raise check(BECOMING_READY)
        return self.cartridge

    def _writable(self, c: cart.Cartridge) -> None:
        if self.media is not None and not self.drive.can_write(self.media):
            self.tapealerts.add(TA_READ_ONLY_FORMAT)
            raise check(WRITE_PROTECTED)
        if c.protected:
            self.tapealerts.add(TA_WRITE_PROTECT)
            raise check(WRITE_PROTECTED)
        if c.worm and self.position < c.eod:
            self.tapealerts.add(TA_WORM_OVERWRITE)
            raise check(WORM_OVERWRITE)

    def _move_to(self, c: cart.Cartridge, position: int) -> None:
        clock = self.library.clock
        if clock.on:
            clock.spend(locate_seconds(self.drive, self.media, c.bytes_between(self.position, position), c.capacity))
        self.position = position

    def needs_cleaning(self) -> bool:
        return self.state.needs_cleaning or bool(self.library.faults_for("cleaning-required", self.name))

    # ---- SPC --------------------------------------------------------------------------------------------------
    def test_unit_ready(self, fields, data_out, data_in_len) -> Answer:
        self._ready()
        if self.needs_cleaning():
            self.tapealerts.add(TA_CLEAN_NOW)
            if not self.cleaning_reported:
                self.cleaning_reported = True
                return Answer(b"", CLEANING_REQUESTED.sense())
        return GOOD_ANSWER

    def inquiry(self, fields, data_out, data_in_len) -> Answer:
        return pages.inquiry(self, spc.INQUIRY, fields, self.drive.vendor, self.drive.product, self.drive.revision)

    def read_attribute(self, fields, data_out, data_in_len) -> Answer:
        """The cartridge memory holds one attribute here: BARCODE (0x0806), the label the library reads."""
        for name in ("service_action", "volume", "partition"):  # one volume, one partition, values only
            if fields[name]:
                raise invalid_field(ssc.READ_ATTRIBUTE, name)
        c = self._ready()
        found = [ssc.barcode_attribute(c.barcode)] if fields["first_attribute"] <= ssc.MAM_BARCODE else []
        return Answer(ssc.encode_attributes(found))

    def prevent_allow(self, fields, data_out, data_in_len) -> Answer:
        if fields["prevent"] not in (spc.ALLOW_MEDIUM_REMOVAL, spc.PREVENT_MEDIUM_REMOVAL):
            raise invalid_field(spc.PREVENT_ALLOW_MEDIUM_REMOVAL, "prevent")
        self.prevent = fields["prevent"] == spc.PREVENT_MEDIUM_REMOVAL
        return GOOD_ANSWER

    def mode_sense(self, fields, data_out, data_in_len) -> Answer:
        return pages.drive_mode_sense(self, fields)

    def log_sense(self, fields, data_out, data_in_len) -> Answer:
        return pages.drive_log_sense(self, fields)

    # ---- data transfer ----------------------------------------------------------------------------------------
    def _transfer_time(self, nbytes: int) -> None:
        clock = self.library.clock
        if clock.on:  # off (tests, the local bench): no model to run, as for `_move_to`
            clock.spend(self.streaming.transfer_seconds(self.drive, self.media, nbytes, time.monotonic()))

    def read(self, fields, data_out, data_in_len) -> Answer:
        fixed, sili, length = fields["fixed"], fields["sili"], fields["length"]
        if fixed and sili:
            raise invalid_field(ssc.READ_6, "sili")
        if fixed and self.block_length == 0:
            raise invalid_field(ssc.READ_6, "fixed")
        if not fixed and length > self.drive.max_block:
            raise invalid_field(ssc.READ_6, "length")
        c = self._ready()
        if self.media is not None and not self.drive.can_read(self.media):
            raise check(WRITE_PROTECTED)
        if length == 0:
            return GOOD_ANSWER
        if fixed:
            return self._read_fixed(c, length)
        return self._read_variable(c, length, bool(sili))

    def _media_error_at(self, c: cart.Cartridge, position: int) -> bool:
        faults = self.library.faults_for("media-error", c.barcode)
        hit = any(f.arg == position for f in faults)
        if hit:
            if any(f.arg == position and not f.persistent for f in faults):
                with self.library.mutate() as state:
                    state.faults = [
                        f for f in state.faults
                        if not (f.kind == "media-error" and f.target == c.barcode and f.arg == position
                                and not f.persistent)
                    ]
        return hit

    def _read_variable(self, c: cart.Cartridge, length: int, sili: bool) -> Answer:
        if self.position >= c.eod:
            raise check(END_OF_DATA, information=length)
        if c.is_filemark(self.position):
            self.position += 1
            raise check(FILEMARK_DETECTED, information=length)
        if self._media_error_at(c, self.position):
            self.tapealerts.add(TA_READ_FAILURE)
            raise check(UNRECOVERED_READ_ERROR, information=length)
        block = c.length(self.position)
        data = c.read(self.position, length)
        self.position += 1
        self._transfer_time(len(data))
        if block == length or (block < length and sili):
            return Answer(data)
        return Answer(data, INCORRECT_LENGTH.sense(information=length - block))

    def _read_fixed(self, c: cart.Cartridge, count: int) -> Answer:
        size = self.block_length
        out = bytearray(count * size)
        view = memoryview(out)
        for done in range(count):
            if self.position >= c.eod:
                raise Check(END_OF_DATA.sense(information=count - done), view[: done * size])
            if c.is_filemark(self.position):
                self.position += 1
                raise Check(FILEMARK_DETECTED.sense(information=count - done), view[: done * size])
            if self._media_error_at(c, self.position):
                self.tapealerts.add(TA_READ_FAILURE)
                raise Check(UNRECOVERED_READ_ERROR.sense(information=count - done), view[: done * size])
            block = c.length(self.position)
            self.position += 1
            if block != size:
                # SSC-4: the wrong-length block is not transferred; INFO counts it among the blocks not read.
                raise Check(INCORRECT_LENGTH.sense(information=count - done), view[: done * size])
            c.read_into(self.position - 1, view[done * size : (done + 1) * size])
        self._transfer_time(len(out))
        return Answer(out)

    def write(self, fields, data_out, data_in_len) -> Answer:
        fixed, length = fields["fixed"], fields["length"]
        if fixed and self.block_length == 0:
            raise invalid_field(ssc.WRITE_6, "fixed")
        size = self.block_length if fixed else length
        if size > self.drive.max_block:
            raise invalid_field(ssc.WRITE_6, "length")
        total = length * size if fixed else length
        if len(data_out) != total:
            raise invalid_field(ssc.WRITE_6, "length")
        c = self._ready()
        if total == 0:
            return GOOD_ANSWER
        self._writable(c)
        blocks = [data_out[i : i + size] for i in range(0, total, size)] if fixed else [data_out]
        early = False
        for done, block in enumerate(blocks):
            residue = (len(blocks) - done) if fixed else length
            if self._media_error_at(c, self.position):
                self.tapealerts.add(TA_WRITE_FAILURE)
                raise check(WRITE_ERROR, information=residue)
            try:
                outcome = c.write(self.position, block)
            except cart.PhysicalEnd:
                raise check(VOLUME_OVERFLOW, information=residue) from None
            self.position = outcome.position
            early = outcome.early_warning
        self._transfer_time(total)
        return Answer(b"", EARLY_WARNING.sense(information=0)) if early else GOOD_ANSWER

    def write_filemarks(self, fields, data_out, data_in_len) -> Answer:
        if fields["wsmk"]:
            raise invalid_field(ssc.WRITE_FILEMARKS_6, "wsmk")
        c = self._ready()
        count = fields["count"]
        if count == 0:
            return GOOD_ANSWER
        self._writable(c)
        outcome = c.write_filemarks(self.position, count)
        self.position = outcome.position
        return Answer(b"", EARLY_WARNING.sense(information=0)) if outcome.early_warning else GOOD_ANSWER

    # ---- positioning ------------------------------------------------------------------------------------------
    def space(self, fields, data_out, data_in_len) -> Answer:
        layout = ssc.SPACE_6 if "partition" not in fields else ssc.SPACE_16
        code, count = fields["code"], fields["count"]
        if code not in (ssc.SPACE_BLOCKS, ssc.SPACE_FILEMARKS, ssc.SPACE_END_OF_DATA):
            raise invalid_field(layout, "code")
        if fields.get("partition"):
            raise invalid_field(layout, "partition")
        c = self._ready()
        start = self.position
        if code == ssc.SPACE_END_OF_DATA:
            self._move_to(c, c.eod)
        elif count > 0 and code == ssc.SPACE_BLOCKS:
            mark = c.next_filemark(start)
            if mark is not None and mark < start + count and mark < c.eod:
                self._move_to(c, mark + 1)
                raise check(FILEMARK_DETECTED, information=count - (mark - start))
            if start + count > c.eod:
                self._move_to(c, c.eod)
                raise check(END_OF_DATA, information=count - (c.eod - start))
            self._move_to(c, start + count)
        elif count < 0 and code == ssc.SPACE_BLOCKS:
            wanted = -count
            mark = c.previous_filemark(start)
            if mark is not None and mark >= start - wanted:
                self._move_to(c, mark)  # stops on the BOP side of the filemark
                raise check(FILEMARK_DETECTED, information=wanted - (start - mark - 1))
            if start - wanted < 0:
                self._move_to(c, 0)
                raise check(BEGINNING_OF_MEDIUM, information=wanted - start)
            self._move_to(c, start - wanted)
        elif count > 0:  # filemarks forward: end just after the count-th filemark
            before = c.file_number(start)
            mark = c.filemark_number(before + count - 1)
            if mark is None:
                self._move_to(c, c.eod)
                raise check(END_OF_DATA, information=count - (c.file_number(c.eod) - before))
            self._move_to(c, mark + 1)
        elif count < 0:  # filemarks backward: end on the BOP side of the count-th filemark back
            wanted = -count
            before = c.file_number(start)
            if before - wanted < 0:
                self._move_to(c, 0)
                raise check(BEGINNING_OF_MEDIUM, information=wanted - before)
            self._move_to(c, c.filemark_number(before - wanted))
        return GOOD_ANSWER

    def rewind(self, fields, data_out, data_in_len) -> Answer:
        c = self._ready()
        self._move_to(c, 0)
        return GOOD_ANSWER

    def locate(self, fields, data_out, data_in_len) -> Answer:
        layout = ssc.LOCATE_16 if "identifier" in fields else ssc.LOCATE_10
        if fields["cp"] and fields["partition"]:
            raise invalid_field(layout, "partition")
        c = self._ready()
        if layout is ssc.LOCATE_10:
            target = fields["block"]
        elif fields["dest_type"] == ssc.LOCATE_DEST_OBJECT:
            target = fields["identifier"]
        elif fields["dest_type"] == ssc.LOCATE_DEST_FILE:
            n = fields["identifier"]
            mark = c.filemark_number(n - 1) if n > 0 else -1
            target = c.eod + 1 if mark is None else mark + 1
        elif fields["dest_type"] == ssc.LOCATE_DEST_EOD:
            target = c.eod
        else:
            raise invalid_field(layout, "dest_type")
        if target > c.eod:
            self._move_to(c, c.eod)
            raise check(END_OF_DATA)
        self._move_to(c, target)
        return GOOD_ANSWER

    def read_position(self, fields, data_out, data_in_len) -> Answer:
        if fields["service_action"] not in (ssc.READ_POSITION_SHORT, ssc.READ_POSITION_LONG):
            raise invalid_field(ssc.READ_POSITION, "service_action")
        c = self._ready()
        return pages.read_position(self, c, fields)

    def read_block_limits(self, fields, data_out, data_in_len) -> Answer:
        return pages.read_block_limits(self.drive.max_block)

    def erase(self, fields, data_out, data_in_len) -> Answer:
        c = self._ready()
        if self.position < c.eod:
            self._writable(c)
            c.truncate(self.position)
        return GOOD_ANSWER

    def load_unload(self, fields, data_out, data_in_len) -> Answer:
        if self.offline:  # a state until cleared: nothing consumes it
            raise check(LOGICAL_UNIT_OFFLINE)
        if not self.state.barcode:
            raise check(NO_MEDIUM)
        if fields["load"]:
            if not self.state.threaded:
                with self.library.mutate() as state:
                    state.drives[self.index].threaded = True
                self.sync()
                self.library.clock.spend(load_seconds(self.drive, False))
            elif self.cartridge is not None:
                self._move_to(self.cartridge, 0)
            return GOOD_ANSWER
        if self.prevent:
            self.tapealerts.add(TA_NO_REMOVAL)
            raise check(REMOVAL_PREVENTED)
        if self.state.threaded:
            if self.cartridge is not None:
                self._move_to(self.cartridge, 0)
            self.library.clock.spend(self.drive.unload_s)
            with self.library.mutate() as state:
                state.drives[self.index].threaded = False
            self._close_image()
        return GOOD_ANSWER

    def condition_flags(self) -> tuple[bool, bool]:
        """(beginning of partition, in early-warning zone) at the current position, for READ POSITION."""
        c = self.cartridge
        if c is None:
            return False, False
        return self.position == 0, c.in_early_warning(self.position)

