"""`TapeDrive`: a SCSI sequential-access device (SSC-3) over any transport.

Public API:

    TapeDrive(url_or_transport, label=None)    label names the drive in every error; by default the drive's own
                                                "LTO-8 drive 1 (URL)": generation from INQUIRY, number from the
                                                URL's last `driveN` (else the VPD 0x80 serial)
        .cartridge -> "A00012L8" | None         the loaded cartridge's barcode: set by whoever loaded it, else read
                                                from the cartridge memory (READ ATTRIBUTE, MAM 0x0806) when first
                                                needed; errors end "on cartridge A00012L8"
        .status() -> DriveStatus                ready, medium, write protect, position, BOP/EOD/EOM, density, block size
        .test_ready() -> bool  .test_unit_ready()   the second raises the typed NotReady (NoMedium, ...)
        .wait_ready(timeout)                    polls TEST UNIT READY; an offline drive (02/04/12) fails at once
        .clear_unit_attention()                 what Linux st does at open: TEST UNIT READY until no UNIT ATTENTION
        .write(block) -> bool                   True once past early warning: the block WAS written, finish up
        .write_blocks(blocks) -> bool           same, for many blocks
        .write_filemarks(n=1) -> bool
        .read(max_len) -> bytes                 one block (variable mode) or max_len // block size blocks (fixed);
                                                a shorter block comes back short; raises FilemarkDetected (position
                                                now past the mark), EndOfData (BlankCheck), IncorrectLength (block
                                                longer than max_len; .residue is negative); in fixed
                                                mode the blocks read before the stop are in the error's .partial
        .read_file(max_len) -> Iterator[bytes]  the blocks up to the next filemark, which it consumes
        .space_blocks(n) .space_filemarks(n)    negative n goes backwards
        .space_to_eod()  .locate(block)  .read_position() -> Position  .rewind()  .load()  .unload() / .eject()
        .set_block_size(n)                      0 = variable-block mode
        .set_density(code)  .mode_sense(page) -> ModeData  .retension()  .erase(long=True)
        .prevent_removal(on)                    lock / unlock the cartridge in the drive
        .set_compression(on)  .block_limits() -> BlockLimits  .tape_alerts() -> tuple[TapeAlertFlag]
        .capacity() -> TapeCapacity  .inquiry() -> InquiryData  .serial() -> str

Invariants:
- The per-block path of `write` is one `execute` with a CDB rebuilt only when the block length changes, the caller's
  buffer passed through untouched (bytes, bytearray or memoryview), and no sense decoding unless the status is not
  GOOD: writing through `local://` runs near `dd` speed.
- Early warning (00/00/02 EOM=1) and cleaning requests (00/00/17) on a write are not errors: the data was written;
  `write` returns True at early warning and `cleaning_requested` records the request. Physical end (0D/00/02) raises
  VolumeOverflow: that block was NOT written.
- UNIT ATTENTION (medium changed, reset, mode parameters changed) on commands other than READ/WRITE is retried up to
  `UA_RETRIES` times; it clears itself on the device when reported (`drivers.device.ScsiDevice`, shared with
  `MediaChanger`).
- Every error is a `drivers.scsi.sense` exception naming the drive's label, the command and `cartridge`.
- The barcode read from the cartridge memory is kept until this driver loads or unloads, or the drive reports UNIT
  ATTENTION (another cartridge, a reset); it costs one command, on the first error or `status()` after that, never on
  the per-block path. A barcode set by the caller is kept until this driver loads or unloads.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from drivers.device import ScsiDevice
from drivers.errors import DeviceError
from drivers.scsi import spc, ssc, tapelog
from drivers.scsi.cdb import Cdb
from drivers.scsi.sense import (
    BlankCheck,
    CleaningRequired,
    EndOfMedium,
    FilemarkDetected,
    IllegalRequest,
    IncorrectLength,
    InvalidOpcode,
    LogicalUnitOffline,
    NoMedium,
    NotReady,
    ScsiError,
    StatusError,
    UnitAttention,
    raise_for_result,
)
from drivers.scsi.ssc import BlockLimits, CompressionPage, Position
from drivers.transport.base import DEFAULT_TIMEOUT, GOOD, ScsiResult, Transport

LONG_TIMEOUT = 3 * 3600.0  # LOAD, REWIND, SPACE to EOD and LOCATE can take many minutes on a full tape
ERASE_TIMEOUT = 6 * 3600.0  # a long erase writes the whole length of the tape
MODE_ALLOC = 0xFF
ATTRIBUTE_ALLOC = 4 + ssc.ATTRIBUTE_HEADER_LENGTH + ssc.MAM_BARCODE_LENGTH
_UNREAD = object()  # the cartridge memory has not been asked since the last load, unload or UNIT ATTENTION
_GENERATION = re.compile(r"(?:TD|HH|ULTRIUM[ -]?)(\d+)", re.IGNORECASE)  # IBM ULT3580-TD8, HP "Ultrium 8-SCSI"
_DRIVE_INDEX = re.compile(r"drive(\d+)")


@dataclass(frozen=True, slots=True)
class DriveStatus:
    ready: bool
    medium_present: bool
    write_protected: bool = False
    position: Position | None = None
    bop: bool = False
    eod: bool = False  # the last operation ended at end of data (writes, space to EOD, a read that hit it)
    eom: bool = False  # between early warning and the end of the partition
    density: int = 0
    medium_type: int = 0
    block_size: int = 0  # 0 = variable
    model: str = ""  # vendor and product as INQUIRY gives them
    cartridge: str | None = None
    cleaning_requested: bool = False

    @property
    def file(self) -> int | None:
        return self.position.file if self.position else None

    @property
    def block(self) -> int | None:
        return self.position.block if self.position else None


class TapeDrive(ScsiDevice):
    def __init__(self, device: str | Transport, label: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(device, label, timeout)
        self._cartridge: str | None = None  # the caller's
        self._mam_barcode: object = _UNREAD
        self.cleaning_requested = False
        self._block_size: int | None = None  # None = not read from the drive yet
        self._write_len = -1
        self._write_cdb = b""
        self._long_position: bool | None = None
        self._locate16: bool = True
        self._at_eod = False
        self._model: str | None = None

    # --- one command ------------------------------------------------------------------------------------------

    def _check(self, result: ScsiResult, name: str) -> None:
        try:
            raise_for_result(result, name)
        except UnitAttention as err:
            self._mam_barcode = _UNREAD
            raise self._named(err, self._cartridge)
        except ScsiError as err:
            raise self._named(err, self._cartridge)
        except StatusError:
            raise_for_result(result, name, self.label)

    def _run(
        self, table: Cdb, cdb: bytes, data_in_len: int = 0, data_out: bytes = b"", timeout: float | None = None
    ) -> ScsiResult:
        return self._command(table, cdb, data_in_len, data_out, timeout, self._cartridge)

    def _unit_attention(self) -> None:
        self._block_size = None  # a new medium or a reset may change the mode
        self._mam_barcode = _UNREAD

    def _describe(self) -> str | None:
        inq = self._identity()
        if inq is None:
            return None
        generation = _GENERATION.search(inq.product)
        name = f"LTO-{generation.group(1)}" if generation else " ".join(p for p in (inq.vendor, inq.product) if p)
        url = self.transport.url
        index = _DRIVE_INDEX.fullmatch(url.rstrip("/").rsplit("/", 1)[-1])
        number = index.group(1) if index else self._quiet_serial()
        return f"{name} drive {number} ({url})" if number else f"{name} drive ({url})"

    def _quiet_serial(self) -> str:
        cdb = spc.INQUIRY.encode(evpd=1, page_code=spc.VPD_UNIT_SERIAL_NUMBER, alloc=255)
        try:
            result = self.transport.execute(cdb, b"", 255, self.timeout)
            return spc.decode_vpd_serial(result.data) if result.status == GOOD else ""
        except (DeviceError, ValueError):
            return ""

    @property
    def cartridge(self) -> str | None:
        if self._cartridge is not None:
            return self._cartridge
        if self._mam_barcode is _UNREAD:
            return self._read_mam_barcode()
        return self._mam_barcode  # type: ignore[return-value]

    @cartridge.setter
    def cartridge(self, barcode: str | None) -> None:
        self._cartridge = barcode

    def _cartridge_for_error(self) -> str | None:
        return self.cartridge

    def _read_mam_barcode(self) -> str | None:
        """MAM attribute 0x0806, run straight on the transport (it serves the error path); kept once answered."""
        cdb = ssc.READ_ATTRIBUTE.encode(
            service_action=ssc.READ_ATTRIBUTE_VALUES, first_attribute=ssc.MAM_BARCODE, alloc=ATTRIBUTE_ALLOC
        )
        try:
            result = self.transport.execute(cdb, b"", ATTRIBUTE_ALLOC, self.timeout)
            if result.status != GOOD:
                return None  # no cartridge, not ready, or no cartridge memory: ask again next time
            found = [a for a in ssc.decode_attributes(result.data) if a.identifier == ssc.MAM_BARCODE]
        except (DeviceError, ValueError):
            return None
        barcode = (found[0].text if found else "") or None
        self._mam_barcode = barcode
        return barcode

    def _accept(self, err: ScsiError) -> bool:
        if isinstance(err, CleaningRequired):
            self.cleaning_requested = True
            return True
        return False

    # --- identity and readiness -------------------------------------------------------------------------------

    def inquiry(self) -> spc.InquiryData:
        return spc.InquiryData.decode(self._run(spc.INQUIRY, spc.INQUIRY.encode(alloc=96), 96).data)

    def serial(self) -> str:
        cdb = spc.INQUIRY.encode(evpd=1, page_code=spc.VPD_UNIT_SERIAL_NUMBER, alloc=255)
        return spc.decode_vpd_serial(self._run(spc.INQUIRY, cdb, 255).data)

    def test_unit_ready(self) -> None:
        """TEST UNIT READY; raises NotReady (NoMedium, LogicalUnitOffline, ...) when the drive cannot take commands."""
        self._run(spc.TEST_UNIT_READY, spc.TEST_UNIT_READY.encode())

    def test_ready(self) -> bool:
        """True when a medium is loaded and ready; False while empty or becoming ready."""
        try:
            self.test_unit_ready()
        except NotReady:
            return False
        return True

    def clear_unit_attention(self) -> None:
        """Report any pending UNIT ATTENTION (a new cartridge, a reset) now, as Linux st does at open, so that the
        next command (a WRITE FILEMARKS, which is not retried) does not meet it. Other conditions are left to it."""
        try:
            self.test_unit_ready()
        except ScsiError:
            pass

    def wait_ready(self, timeout: float = 600.0, poll: float = 0.25) -> None:
        """Poll until ready. An offline drive fails at once (waiting cannot help); after `timeout` the error says
        whether the drive is empty or still becoming ready."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.test_unit_ready()
                return
            except LogicalUnitOffline as err:
                raise LogicalUnitOffline(
                    err.sense, err.command, err.device, err.cartridge,
                    "drive offline, waiting will not help: bring the drive online at the library "
                    "(or check the library for a fault), then retry",
                ) from None
            except NotReady as err:
                if time.monotonic() >= deadline:
                    fix = ("load a cartridge into it (mtx load / the changer), then retry"
                           if isinstance(err, NoMedium) else "check the drive and the library, then retry")
                    raise type(err)(
                        err.sense, err.command, err.device, err.cartridge,
                        f"not ready after {timeout:g} s, {err.text}: {fix}",
                    ) from None
            time.sleep(poll)

    def status(self) -> DriveStatus:
        if self._model is None:
            inq = self.inquiry()
            self._model = f"{inq.vendor} {inq.product}"
        try:
            ready = self.test_ready()
        except ScsiError:
            ready = False
        if not ready:
            present = True
            try:
                self._run(spc.TEST_UNIT_READY, spc.TEST_UNIT_READY.encode())
            except NoMedium:
                present = False
            except ScsiError:
                pass
            return DriveStatus(False, present, model=self._model, cartridge=self._cartridge)
        mode = self.mode_sense(0)
        block = mode.block_descriptor or spc.BlockDescriptor()
        self._block_size = block.block_length
        position = self.read_position()
        return DriveStatus(
            ready=True,
            medium_present=True,
            write_protected=mode.wp,
            position=position,
            bop=position.bop,
            eod=self._at_eod,
            eom=position.eop,
            density=block.density,
            medium_type=mode.medium_type,
            block_size=block.block_length,
            model=self._model,
            cartridge=self.cartridge,
            cleaning_requested=self.cleaning_requested,
        )

    # --- data -------------------------------------------------------------------------------------------------

    def _fixed(self) -> int:
        """The current block size (0 = variable), read from the drive once per medium."""
        if self._block_size is None:
            descriptor = self.mode_sense(0).block_descriptor
            self._block_size = descriptor.block_length if descriptor else 0
        return self._block_size

    def write(self, block: bytes | bytearray | memoryview) -> bool:
        """Write one block (variable mode) or whole blocks back to back (fixed mode: one WRITE of many blocks, cut
        where the transport's `max_transfer` says); True once past early warning (every block was still
        written)."""
        size = self._fixed() if len(block) > self.transport.max_transfer else 0
        if not size:
            return self._write(block)
        step = max(size, self.transport.max_transfer // size * size)
        warned = False
        with memoryview(block) as view:
            for at in range(0, len(view), step):
                warned = self._write(view[at:at + step]) or warned
        return warned

    def _write(self, block: bytes | bytearray | memoryview) -> bool:
        n = len(block)
        if n != self._write_len:
            size = self._fixed()
            if size and n % size:
                raise ValueError(f"{self.label}: fixed {size}-byte blocks: {n} bytes is not a whole number of them")
            self._write_cdb = ssc.WRITE_6.encode(fixed=int(bool(size)), length=n // size if size else n)
            self._write_len = n
        result = self.transport.execute(self._write_cdb, block, 0, self.timeout)
        self._at_eod = True
        if result.status == GOOD:
            return False
        return self._write_outcome(result, ssc.WRITE_6.name)

    def _write_outcome(self, result: ScsiResult, name: str) -> bool:
        try:
            self._check(result, name)
        except EndOfMedium:
            return True
        except CleaningRequired:
            self.cleaning_requested = True
        except UnitAttention:
            self._write_len = -1
            self._block_size = None
            raise
        return False

    def write_blocks(self, blocks: Iterable[bytes | bytearray | memoryview]) -> bool:
        """Write each block; True if early warning was reached (every block was still written)."""
        warned = False
        for block in blocks:
            warned = self.write(block) or warned
        return warned

    def write_filemarks(self, count: int = 1) -> bool:
        cdb = ssc.WRITE_FILEMARKS_6.encode(count=count)
        result = self.transport.execute(cdb, b"", 0, self.timeout)
        self._at_eod = True
        if result.status == GOOD:
            return False
        return self._write_outcome(result, ssc.WRITE_FILEMARKS_6.name)

    def read(self, max_len: int) -> bytes:
        size = self._fixed()
        if size:
            count = max_len // size
            if not count:
                raise ValueError(f"{self.label}: fixed {size}-byte blocks: read at least {size} bytes, not {max_len}")
            cdb, want = ssc.READ_6.encode(fixed=1, length=count), count * size
        else:
            cdb, want = ssc.READ_6.encode(fixed=0, length=max_len), max_len
        result = self.transport.execute(cdb, b"", want, self.timeout)
        data = result.data
        if result.status != GOOD:
            try:
                self._check(result, ssc.READ_6.name)
            except IncorrectLength as err:
                if size and len(data) >= size:
                    err.partial = bytes(data[: len(data) - len(data) % size])
                if err.residue < 0 or size:
                    raise  # the block was longer than max_len (its tail is lost), or a fixed-mode length mismatch
                # A shorter block in variable mode is the normal case of reading with a big buffer, as st does.
            except ScsiError as err:
                self._at_eod = isinstance(err, BlankCheck)
                if size and len(data) >= size:
                    err.partial = bytes(data[: len(data) - len(data) % size])
                raise
        self._at_eod = False
        n = min(len(data), want - result.resid)
        if n == len(data) and isinstance(data, bytes):
            return data
        return bytes(data[:n])

    def read_file(self, max_len: int) -> Iterator[bytes]:
        """The blocks from here to the next filemark (consumed); ends quietly at end of data too."""
        while True:
            try:
                yield self.read(max_len)
            except (FilemarkDetected, BlankCheck):
                return

    # --- positioning ------------------------------------------------------------------------------------------

    def _space(self, code: int, count: int) -> None:
        self._at_eod = False
        if -(1 << 23) <= count < (1 << 23):
            self._run(ssc.SPACE_6, ssc.SPACE_6.encode(code=code, count=count), timeout=LONG_TIMEOUT)
        else:
            self._run(ssc.SPACE_16, ssc.SPACE_16.encode(code=code, count=count), timeout=LONG_TIMEOUT)

    def space_blocks(self, count: int) -> None:
        self._space(ssc.SPACE_BLOCKS, count)

    def space_filemarks(self, count: int) -> None:
        """Forward: ends after the count-th filemark; backward: ends on the BOP side of it (mt fsf / bsf)."""
        self._space(ssc.SPACE_FILEMARKS, count)

    def space_to_eod(self) -> None:
        self._space(ssc.SPACE_END_OF_DATA, 0)
        self._at_eod = True

    def locate(self, block: int) -> None:
        """Position before logical object `block` (blocks and filemarks count alike), LOCATE(16) when supported."""
        self._at_eod = False
        if self._locate16:
            try:
                self._run(ssc.LOCATE_16, ssc.LOCATE_16.encode(identifier=block), timeout=LONG_TIMEOUT)
                return
            except InvalidOpcode:
                self._locate16 = False
        self._run(ssc.LOCATE_10, ssc.LOCATE_10.encode(block=block), timeout=LONG_TIMEOUT)

    def read_position(self) -> Position:
        if self._long_position is not False:
            cdb = ssc.READ_POSITION.encode(service_action=ssc.READ_POSITION_LONG)
            try:
                data = self._run(ssc.READ_POSITION, cdb, ssc.READ_POSITION_LONG_LENGTH).data
                self._long_position = True
                return Position.decode(data, ssc.READ_POSITION_LONG)
            except IllegalRequest:
                if self._long_position:
                    raise
                self._long_position = False
        cdb = ssc.READ_POSITION.encode(service_action=ssc.READ_POSITION_SHORT)
        return Position.decode(self._run(ssc.READ_POSITION, cdb, ssc.READ_POSITION_SHORT_LENGTH).data)

    def rewind(self) -> None:
        self._at_eod = False
        self._run(ssc.REWIND, ssc.REWIND.encode(), timeout=LONG_TIMEOUT)

    def _forget_cartridge(self) -> None:
        self._cartridge = None
        self._mam_barcode = _UNREAD

    def load(self) -> None:
        self._at_eod = False
        self._block_size = None
        self._forget_cartridge()
        self._run(ssc.LOAD_UNLOAD, ssc.LOAD_UNLOAD.encode(load=1), timeout=LONG_TIMEOUT)

    def unload(self) -> None:
        """Rewind and eject (mt offline); the changer can then take the cartridge out."""
        self._at_eod = False
        self._run(ssc.LOAD_UNLOAD, ssc.LOAD_UNLOAD.encode(load=0), timeout=LONG_TIMEOUT)
        self._block_size = None
        self._forget_cartridge()

    eject = unload

    def retension(self) -> None:
        """Wind to the end and back (LOAD UNLOAD with RETEN); the tape ends at BOP."""
        self._at_eod = False
        self._run(ssc.LOAD_UNLOAD, ssc.LOAD_UNLOAD.encode(reten=1, load=1), timeout=LONG_TIMEOUT)

    def erase(self, long: bool = True) -> None:
        """Erase from the current position to the end of the partition (long) or just write EOD here (short)."""
        self._run(ssc.ERASE, ssc.ERASE.encode(long=int(long)), timeout=ERASE_TIMEOUT)
        self._at_eod = True

    def prevent_removal(self, prevent: bool) -> None:
        """Lock the cartridge in the drive (mt lock), or allow its removal again (mt unlock)."""
        value = spc.PREVENT_MEDIUM_REMOVAL if prevent else spc.ALLOW_MEDIUM_REMOVAL
        self._run(spc.PREVENT_ALLOW_MEDIUM_REMOVAL, spc.PREVENT_ALLOW_MEDIUM_REMOVAL.encode(prevent=value))

    # --- modes and logs ---------------------------------------------------------------------------------------

    def mode_sense(self, page: int = 0) -> spc.ModeData:
        """MODE SENSE(6): the header, the block descriptor and page `page` (0 = none)."""
        cdb = spc.MODE_SENSE_6.encode(page_code=page, alloc=MODE_ALLOC)
        return spc.ModeData.decode(self._run(spc.MODE_SENSE_6, cdb, MODE_ALLOC).data)

    def _mode_select(self, mode: spc.ModeData) -> None:
        data = mode.encode(for_select=True)
        self._run(spc.MODE_SELECT_6, spc.MODE_SELECT_6.encode(pf=1, param_len=len(data)), data_out=data)

    def set_block_size(self, size: int) -> None:
        """Fixed `size`-byte blocks, or variable-block mode with 0 (MODE SELECT block descriptor)."""
        mode = self.mode_sense(0)
        current = mode.block_descriptor or spc.BlockDescriptor()
        self._mode_select(spc.ModeData(buffered_mode=mode.buffered_mode,
                                       block_descriptor=spc.BlockDescriptor(current.density, 0, size)))
        self._block_size = size
        self._write_len = -1

    def set_density(self, density: int) -> None:
        """The density code for the next write from BOP (0 = the drive's default), block size unchanged."""
        mode = self.mode_sense(0)
        current = mode.block_descriptor or spc.BlockDescriptor()
        self._mode_select(spc.ModeData(buffered_mode=mode.buffered_mode,
                                       block_descriptor=spc.BlockDescriptor(density, 0, current.block_length)))

    def set_compression(self, on: bool) -> None:
        raw = self.mode_sense(ssc.PAGE_COMPRESSION).page(ssc.PAGE_COMPRESSION)
        page = CompressionPage.decode(raw) if raw else CompressionPage()
        new = CompressionPage(on, page.dcc, page.dde, page.compression_algorithm, page.decompression_algorithm)
        self._mode_select(spc.ModeData(pages=(new.encode(),)))

    def compression(self) -> bool:
        raw = self.mode_sense(ssc.PAGE_COMPRESSION).page(ssc.PAGE_COMPRESSION)
        return bool(raw) and CompressionPage.decode(raw).dce

    def block_limits(self) -> BlockLimits:
        return BlockLimits.decode(self._run(ssc.READ_BLOCK_LIMITS, ssc.READ_BLOCK_LIMITS.encode(), 6).data)

    def _log_sense(self, page: int, alloc: int) -> bytes:
        cdb = spc.LOG_SENSE.encode(pc=spc.LOG_PAGE_CONTROL_CUMULATIVE, page_code=page, alloc=alloc)
        return bytes(self._run(spc.LOG_SENSE, cdb, alloc).data)

    def tape_alerts(self) -> tuple[tapelog.TapeAlertFlag, ...]:
        """The TapeAlert flags set since the last read (reading clears them on the drive)."""
        return tapelog.decode_tape_alert(self._log_sense(tapelog.PAGE_TAPE_ALERT, 4 + 64 * 5))

    def capacity(self) -> tapelog.TapeCapacity:
        return tapelog.TapeCapacity.decode(self._log_sense(tapelog.PAGE_TAPE_CAPACITY, 0x40))
