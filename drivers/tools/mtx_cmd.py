"""`tapeline-mtx`: mtx 1.3.12 on any device URL (`-f sg:///dev/sg3`, `local:///DIR/changer`,
`stream+socket://HOST:PORT/changer`; a plain path is an sg node).

It prints what mtx prints, byte for byte (reference/mtx.md §1 and §4): the command line is read left to right and
commands chain (`unload 3 0 load 4 0`); numeric arguments must start with a digit; the first command that needs
the library's status reads it once (INQUIRY, MODE SENSE page 0x1D, READ ELEMENT STATUS per type) and load/unload
update only the Full flags of that cache; errors are mtx's FatalError lines on stderr without a prefix, after the
`mtx: Request Sense:` dump where mtx prints one; exit 1 on any failure or usage error, 0 otherwise. Like mtx,
`--version` prints to stderr and exits 1, and a failed `eject` still exits 0.
Without `-f` the device is `$CHANGER`, then `$TAPE`, then `/dev/changer`.
"""

from __future__ import annotations

import os
import sys

from drivers.mtx import MTX_SENSE_KEYS
from drivers.scsi import smc, spc, ssc
from drivers.scsi.sense import (
    CLEANING_CARTRIDGE,
    DESTINATION_FULL,
    FIXED_CURRENT,
    FIXED_DEFERRED,
    NO_MEDIUM,
    SOURCE_EMPTY,
    SenseData,
)
from drivers.console import reader_gone
from drivers.tools.common import MINUTE, OpenFailed, Outcome, open_device
from drivers.tools.common import run as run_cdb
from drivers.tools.mtx_elements import (
    Elements,
    Flags,
    MtxFailure,
    attached,
    inquiry,
    read_element_status,
    run_clearing_ua,
    same_asc,
)
from drivers.transport.base import Transport

VERSION = "1.3.12"
USAGE = """Usage:
\tmtx --version
\tmtx [ -f <loader-dev> ] noattach <more commands>
\tmtx [ -f <loader-dev> ] inquiry | inventory 
\tmtx [ -f <loader-dev> ] [altres] [nobarcode] status
\tmtx [ -f <loader-dev> ] [altres] first [<drive#>]
\tmtx [ -f <loader-dev> ] [altres] last [<drive#>]
\tmtx [ -f <loader-dev> ] [altres] previous [<drive#>]
\tmtx [ -f <loader-dev> ] [altres] next [<drive#>]
\tmtx [ -f <loader-dev> ] [altres] [invert] load <storage-element-number> [<drive#>]
\tmtx [ -f <loader-dev> ] [altres] [invert] unload [<storage-element-number>][<drive#>]
\tmtx [ -f <loader-dev> ] [altres] [eepos eepos-number] transfer <storage-element-number> <storage-element-number>
\tmtx [ -f <loader-dev> ] [altres] [eepos eepos-number][invert][invert2] exchange <storage-element-number> <storage-element-number>
\tmtx [ -f <loader-dev> ] [altres] position <storage-element-number>
\tmtx [ -f <loader-dev> ] eject
"""
PERIPHERAL_TYPES = ["Disk Drive", "Tape Drive", "Printer", "Processor", "Write-once", "CD-ROM", "Scanner", "Optical",
                    "Medium Changer", "Communications", "ASC IT8", "ASC IT8", "RAID Array", "Enclosure Services",
                    "RBC Simplified Disk", "OCR/W", "Bridging Expander"] + ["Reserved"] * 14 + ["Unknown"]


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# MOVE MEDIUM / EXCHANGE MEDIUM failures mtx names itself (by ASC/ASCQ alone), else it dumps the sense.
MOVE_FAILURES = (
    ((CLEANING_CARTRIDGE.asc, CLEANING_CARTRIDGE.ascq), "Cleaning Cartridge Installed and Ejected"),
    ((NO_MEDIUM.asc, NO_MEDIUM.ascq), "Drive needs offline before move"),
    ((DESTINATION_FULL.asc, DESTINATION_FULL.ascq), "Destination Element Address {dest} is Already Full"),
    ((SOURCE_EMPTY.asc, SOURCE_EMPTY.ascq), "Source Element Address {src} is Empty"),
)
ERROR_CODES = {FIXED_CURRENT: "Current", FIXED_DEFERRED: "Deferred"}


def print_request_sense(write_err, sense: SenseData | None) -> None:
    """mtx's PrintRequestSense of decoded sense; all zeros (as mtx's cleared buffer) when there is none."""
    s = sense if sense is not None else SenseData(response_code=0)
    yn = ("no", "yes")
    lines = [
        "Long Report=yes",
        f"Valid Residual={yn[s.valid]}",
        f"Error Code={s.response_code:x} ({ERROR_CODES.get(s.response_code, 'Unknown?!')})",
        f"Sense Key={MTX_SENSE_KEYS[s.key]}",
        f"FileMark={yn[s.filemark]}",
        f"EOM={yn[s.eom]}",
        f"ILI={yn[s.ili]}",
    ]
    if s.valid:
        lines.append("Residual = " + " ".join(f"{b:02X}" for b in s.information.to_bytes(4, "big", signed=True)))
    lines += [f"Additional Sense Code = {s.asc:02X}", f"Additional Sense Qualifier = {s.ascq:02X}"]
    if s.sksv:
        lines.append(f"Field in Error = {s.bit_pointer:02X}")
    lines += [f"BPV={yn[s.bpv]}", f"Error in CDB={yn[s.cd]}", f"SKSV={yn[s.sksv]}"]
    if s.bpv or s.sksv:
        lines.append("Field Pointer = " + " ".join(f"{b:02X}" for b in s.field_pointer.to_bytes(2, "big")))
    write_err("".join(f"mtx: Request Sense: {line}\n" for line in lines).encode())


class Mtx:
    """One mtx invocation: the device, the cached status and the modifiers, as mtx.c keeps them."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.device: str | None = None
        self.dev: Transport | None = None
        self.inq: spc.InquiryData | None = None
        self.el: Elements | None = None
        self.flags = Flags()
        self.arg1 = self.arg2 = self.arg3 = -1

    # -- output -----------------------------------------------------------------------------------------------
    @staticmethod
    def out(text: str | bytes, flush: bool = False) -> None:
        sys.stdout.buffer.write(text if isinstance(text, bytes) else os.fsencode(text))
        if flush or sys.stdout.isatty():
            sys.stdout.buffer.flush()

    @staticmethod
    def err(data: bytes) -> None:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()

    def fatal(self, message: str, sense: SenseData | None = None, dump: bool = False) -> None:
        if dump or sense is not None:
            print_request_sense(self.err, sense)
        self.err(os.fsencode(message + "\n"))
        raise Exit(1)

    def usage(self) -> None:
        self.err(USAGE.encode())
        raise Exit(1)

    # -- device and status ------------------------------------------------------------------------------------
    def open_device(self) -> None:
        if self.dev is not None:
            self.dev.close()
        assert self.device is not None
        try:
            self.dev = open_device(self.device, "{dev} is not an sg device, or old sg driver",
                                   "cannot open SCSI device '{dev}' - {why}")
        except OpenFailed as exc:
            self.fatal(exc.line)

    def status_needed(self) -> Elements:
        if self.el is None:
            assert self.dev is not None
            try:
                self.inq = inquiry(self.dev)
                self.el = read_element_status(self.dev, self.inq, self.flags, self._mode_sense_failed,
                                              lambda line: self.err(f"{line}\n".encode()))
            except MtxFailure as exc:
                self.fatal(exc.message, exc.sense, exc.dump)
        assert self.el is not None
        return self.el

    def _mode_sense_failed(self, sense: SenseData | None, message: str) -> None:
        print_request_sense(self.err, sense)
        self.err(f"{message}\n".encode())

    # -- the command line -------------------------------------------------------------------------------------
    COMMANDS = {  # name: (numeric args, needs the device, needs the status)
        "inquiry": (0, True, False), "status": (0, True, True), "invert": (0, False, False),
        "noattach": (0, False, False), "eepos": (1, False, False), "load": (2, True, True),
        "unload": (2, True, True), "transfer": (2, True, True), "first": (1, True, True),
        "last": (1, True, True), "previous": (1, True, True), "next": (1, True, True),
        "--version": (0, False, False), "inventory": (0, True, False), "eject": (0, True, False),
        "erase": (0, True, False), "nobarcode": (0, False, False), "position": (1, True, True),
        "invert2": (0, False, False), "exchange": (3, True, True), "altres": (0, False, False),
    }

    def get_arg(self, i: int) -> int:
        if i >= len(self.argv) or not self.argv[i][:1].isdigit() or not self.argv[i][0].isascii():
            return -1
        digits = ""
        for ch in self.argv[i]:
            if not ("0" <= ch <= "9"):
                break
            digits += ch
        return int(digits)

    def main(self) -> None:
        i = 1
        argv = self.argv
        while i < len(argv):
            if argv[i] == "-f":
                i += 1
                if i >= len(argv):
                    self.usage()
                self.device = argv[i]
                i += 1
                self.open_device()
                continue
            name = argv[i]
            if name not in self.COMMANDS:
                self.usage()
            nargs, need_device, need_status = self.COMMANDS[name]
            i += 1
            if nargs:
                self.arg1 = self.get_arg(i)
                if self.arg1 != -1:
                    i += 1
                if nargs >= 2 and self.arg1 != -1:
                    self.arg2 = self.get_arg(i)
                    if self.arg2 != -1:
                        i += 1
                    if nargs == 3 and self.arg2 != -1:
                        self.arg3 = self.get_arg(i)
                        if self.arg3 != -1:
                            i += 1
            if self.device is None and need_device:
                self.device = os.environ.get("CHANGER") or os.environ.get("TAPE") or "/dev/changer"
                self.open_device()
            if need_status:
                self.status_needed()
            getattr(self, "do_" + name.lstrip("-").replace("-", "_"))()
            self.arg1 = self.arg2 = self.arg3 = -1

    # -- commands ---------------------------------------------------------------------------------------------
    def do_version(self) -> None:
        self.err(f"mtx version {VERSION}\n\n".encode())
        self.usage()

    def do_noattach(self) -> None:
        self.flags.no_attached = True

    def do_invert(self) -> None:
        self.flags.invert = True

    def do_invert2(self) -> None:
        self.flags.invert2 = True

    def do_nobarcode(self) -> None:
        self.flags.no_barcodes = True

    def do_altres(self) -> None:
        self.flags.altres = True

    def do_eepos(self) -> None:
        if self.arg1 < 0 or self.arg1 > 3:
            self.fatal("eepos equires argument between 0 and 3.")
        self.flags.eepos = self.arg1

    def do_inquiry(self) -> None:
        assert self.dev is not None
        try:
            inq = inquiry(self.dev, "INQUIRY Command Failed")
        except MtxFailure as exc:
            self.fatal(exc.message, exc.sense, exc.dump)
        # mtx prints the raw fields; the codec strips their space padding, so it is put back
        self.out(f"Product Type: {PERIPHERAL_TYPES[inq.pdt]}\nVendor ID: '{inq.vendor:<8}'\n"
                 f"Product ID: '{inq.product:<16}'\nRevision: '{inq.revision:<4}'\n"
                 f"Attached Changer API: {'Yes' if inq.mchngr else 'No'}\n")

    def do_status(self) -> None:
        el = self.status_needed()
        lines = [f"  Storage Changer {self.device}:{len(el.drives)} Drives, {len(el.slots)} Slots ( {el.ie_count} "
                 f"Import/Export )\n".encode(errors="surrogateescape")]
        for n, drive in enumerate(el.drives):
            line = f"Data Transfer Element {n}:".encode()
            if drive.full:
                line += (f"Full (Storage Element {drive.source + 1} Loaded)" if drive.source > -1
                         else "Full (Unknown Storage Element Loaded)").encode()
                if drive.pvol:
                    line += b":VolumeTag = " + drive.pvol
                if drive.avol:
                    line += b":AlternateVolumeTag = " + drive.avol
                line += b"\n"
            else:
                line += b"Empty\n"
            lines.append(line)
        for n, slot in enumerate(el.slots):
            line = (f"      Storage Element {n + 1}{' IMPORT/EXPORT' if slot.ie else ''}:"
                    f"{'Full ' if slot.full else 'Empty'}").encode()
            if slot.pvol:
                line += b":VolumeTag=" + slot.pvol
            if slot.avol:
                line += b":AlternateVolumeTag=" + slot.avol
            lines.append(line + b"\n")
        self.out(b"".join(lines))

    def move(self, src: int, dest: int) -> None:
        assert self.dev is not None and self.inq is not None and self.el is not None
        table = smc.MOVE_MEDIUM_ATTACHED if attached(self.inq, self.flags) else smc.MOVE_MEDIUM
        cdb = table.encode(transport=self.el.transport_address, source=src, destination=dest,
                           invert=int(self.flags.invert), eepos=self.flags.eepos)
        self._movement_result(run_cdb(self.dev, cdb), src, dest, "MOVE")

    def _movement_result(self, outcome: Outcome, src: int, dest: int, what: str) -> None:
        if outcome.ok:
            return
        for asc, message in MOVE_FAILURES:
            if same_asc(outcome.sense, asc):
                self.fatal(message.format(src=src, dest=dest))
        self.fatal(f"{what} MEDIUM from Element Address {src} to {dest} Failed", outcome.sense, dump=True)

    def do_load(self) -> None:
        el = self.status_needed()
        if self.arg1 < 1:
            self.fatal("No source specified")
        if self.arg2 < 0:
            self.arg2 = 0
        slot, drive = self.arg1 - 1, self.arg2
        if slot >= len(el.slots):
            self.fatal(f"Invalid <storage-element-number> argument '{slot + 1}' to 'load' command")
        if drive >= len(el.drives):
            self.fatal(f"illegal <drive-number> argument '{drive}' to 'load' command")
        if el.drives[drive].full:
            self.fatal(f"Drive {drive} Full (Storage Element {el.drives[drive].source + 1} loaded)")
        self.out(f"Loading media from Storage Element {slot + 1} into drive {drive}...", flush=True)
        self.move(el.slots[slot].address, el.drives[drive].address)
        self.out("done\n", flush=True)
        el.slots[slot].full = False
        el.drives[drive].full = True

    def do_unload(self) -> None:
        el = self.status_needed()
        if self.arg2 < 0:
            self.arg2 = 0
        drive = self.arg2
        if self.arg1 < 0:
            slot = el.drives[drive].source if drive < len(el.drives) else -1
            if slot < 0:
                self.fatal(f"No Source for tape in drive {drive}!")
        else:
            slot = self.arg1 - 1
        if slot >= len(el.slots):
            self.fatal(f"illegal <storage-element-number> argument '{slot + 1}' to 'unload' command")
        if drive >= len(el.drives):
            self.fatal(f"illegal <drive-number> argument '{drive}' to 'unload' command")
        if not el.drives[drive].full:
            self.fatal(f"Data Transfer Element {drive} is Empty")
        if slot < 0:  # "unload 0": mtx computes a slot it cannot use
            self.fatal("Do not know which slot to unload tape into!")
        if el.slots[slot].full:
            self.fatal(f"Storage Element {slot + 1} is Already Full")
        self.out(f"Unloading drive {drive} into Storage Element {slot + 1}...", flush=True)
        self.move(el.drives[drive].address, el.slots[slot].address)
        self.out("done\n", flush=True)
        el.slots[slot].full = True
        el.drives[drive].full = False

    def _two_slots(self) -> tuple[int, int]:
        el = self.status_needed()
        if self.arg1 < 1:
            self.fatal("No source specified")
        if self.arg2 < 1:
            self.fatal("No destination specified")
        if self.arg1 > len(el.slots):
            self.fatal("Invalid source")
        if self.arg2 > len(el.slots):
            self.fatal("Invalid destination")
        return el.slots[self.arg1 - 1].address, el.slots[self.arg2 - 1].address

    def do_transfer(self) -> None:
        src, dest = self._two_slots()
        self.move(src, dest)

    def do_exchange(self) -> None:
        src, dest = self._two_slots()
        el = self.status_needed()
        assert self.dev is not None
        third = self.arg3 if self.arg3 != -1 else self.arg1
        dest2 = el.slots[third - 1].address if 1 <= third <= len(el.slots) else 0
        # mtx sets SMC's INV1 bit for `invert` (its comment says INV2) and a reserved bit of byte 1 for `invert2`
        cdb = smc.EXCHANGE_MEDIUM.encode(transport=el.transport_address, source=src, first_destination=dest,
                                         second_destination=dest2, inv1=int(self.flags.invert),
                                         mtx_invert2=int(self.flags.invert2), eepos=self.flags.eepos)
        self._movement_result(run_cdb(self.dev, cdb), src, dest, "EXCHANGE")

    def do_position(self) -> None:
        el = self.status_needed()
        assert self.dev is not None
        index = self.arg1 - 1 if 1 <= self.arg1 <= len(el.slots) else 0
        dest = el.slots[index].address
        cdb = smc.POSITION_TO_ELEMENT.encode(transport=el.transport_address, destination=dest)
        if not run_cdb(self.dev, cdb).ok:
            self.fatal("Could not position transport")

    def _drive_arg(self) -> int:
        el = self.status_needed()
        return self.arg1 if 0 <= self.arg1 < len(el.drives) else 0

    def _load_slot(self, slot_index: int, drive: int) -> None:
        self.arg1, self.arg2 = slot_index + 1, drive
        self.do_load()

    def _unload_to_source(self, drive: int) -> None:
        self.arg1, self.arg2 = self.status_needed().drives[drive].source + 1, drive
        self.do_unload()

    def do_first(self) -> None:
        el, drive = self.status_needed(), self._drive_arg()
        if el.drives[drive].full:
            if el.drives[drive].source + 1 == 1:
                self.out("loading...done.\n")
                return
            self._unload_to_source(drive)
        self._load_slot(0, drive)

    def do_last(self) -> None:
        el, drive = self.status_needed(), self._drive_arg()
        last = len(el.slots) - el.ie_count
        if el.drives[drive].full:
            if el.drives[drive].source + 1 >= last:
                self.out("loading...done.\n")
                return
            self._unload_to_source(drive)
        self._load_slot(last - 1, drive)

    def do_previous(self) -> None:
        el, drive = self.status_needed(), self._drive_arg()
        current = len(el.slots) - el.ie_count + 1
        if el.drives[drive].full:
            current = el.drives[drive].source
            if current == 0:
                self.fatal("No More Media")
            self._unload_to_source(drive)
        for index in range(current - 1, -1, -1):
            if index < len(el.slots) and el.slots[index].full:
                self._load_slot(index, drive)
                return
        self.fatal("No More Media")

    def do_next(self) -> None:
        el, drive = self.status_needed(), self._drive_arg()
        current = -1
        if el.drives[drive].full:
            current = el.drives[drive].source
            self._unload_to_source(drive)
        for index in range(current + 1, len(el.slots) - el.ie_count):
            if el.slots[index].full:
                self._load_slot(index, drive)
                return
        self.fatal("No More Media")

    def do_inventory(self) -> None:
        assert self.dev is not None
        outcome = run_clearing_ua(self.dev, smc.INITIALIZE_ELEMENT_STATUS.encode(), timeout=30 * MINUTE)
        if not outcome.ok:
            print_request_sense(self.err, outcome.sense)
            self.err(b"Initialize Element Status (0x07) failed\n")
            self.fatal("mtx:inventory failed")

    def do_eject(self) -> None:
        assert self.dev is not None
        outcome = run_clearing_ua(self.dev, smc.START_STOP_UNIT.encode(loej=1))
        if not outcome.ok:  # mtx reports it and carries on: exit 0
            print_request_sense(self.err, outcome.sense)
            self.err(b"Eject (0x1B) failed\nmtx:eject failed\n")

    def do_erase(self) -> None:
        assert self.dev is not None
        outcome = run_clearing_ua(self.dev, ssc.ERASE.encode())  # a short erase, as mtx sends it
        if not outcome.ok:
            print_request_sense(self.err, outcome.sense)
            raise Exit(1)


def main(argv: list[str] | None = None) -> int:
    args = [sys.argv[0] if argv is None else "tapeline-mtx", *(sys.argv[1:] if argv is None else argv)]
    tool = Mtx(args)
    code = 0
    try:
        tool.main()
    except Exit as exc:
        code = exc.code
    except OpenFailed as exc:  # the device named no device, found at its first command
        tool.err(os.fsencode(exc.line + "\n"))
        code = 1
    except BrokenPipeError:
        code = reader_gone()
    except KeyboardInterrupt:
        code = 130
    finally:
        try:
            sys.stdout.flush()
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            code = reader_gone()
        if tool.dev is not None:
            tool.dev.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
