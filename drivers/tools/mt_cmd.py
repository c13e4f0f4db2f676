"""`tapeline-mt`: mt-st 1.7 on any device URL (`-f local:///DIR/drive0`, `stream+socket://HOST:PORT/drive0`,
`sg:///dev/sg4`; a plain path is an sg node). `$TAPE` is the default device, then `/dev/tape`.

Commands: status, rewind, fsf, bsf, fsr, bsr, eod/seod, weof/eof, offline/rewoffl/eject, load, retension, tell,
seek, setblk, setdensity, densities, compression, erase, lock, unlock. Output and exit codes are mt-st's: 0 on
success, 1 for usage and open errors, 2 when the device refuses a command (`<dev>: <error>`, here followed by
the decoded sense in parentheses). Options of the Linux st driver (stoptions, drvbuffer, ...) have no meaning
without st and fail with "Operation not supported".

`status` differs from mt-st in where it looks, not in what it prints: mt-st sends no SCSI command and prints what
the st driver cached; this tool has no st driver, so it asks the drive. TEST UNIT READY gives ONLINE (or DR_OPEN with
no tape), MODE SENSE(6) the density code, block size and WR_PROT, READ POSITION (long form) the file number,
partition and BOT. The block number within the file is exact at file 0 (blocks from BOP); in a later file it is
exact when this tool entered that file with `fsf` or `weof` (it remembers where the file began, per device and
cartridge: `drivers.tools.mt_state`, st's in-kernel record in a file), and -1 otherwise, as st reports after a
seek. EOF and EOD, which st derives from the commands it ran before, are never shown; IM_REP_EN is always on, as
with st's default.

Every command runs through `drivers.tape.TapeDrive`, after an INQUIRY that refuses anything but a tape drive (exit 1:
`-f .../changer` names a medium changer) and TEST UNIT READY repeated past any UNIT ATTENTION (a
cartridge just loaded by `mtx load`), as st does at open; the typed error picks st's errno text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from drivers.errors import DeviceError, DeviceNotFound
from drivers.scsi import spc
from drivers.scsi.cdb import CdbFieldError
from drivers.scsi.sense import LogicalUnitOffline, NoMedium, ScsiError, WriteProtected
from drivers.tape import TapeDrive
from drivers.console import reader_gone
from drivers.tools.common import OpenFailed, open_device
from drivers.tools.densities import densities_text, density_name
from drivers.tools.mt_state import FileStart, block_in_file, remember

VERSION_TEXT = "mt-st v. 1.7\ndefault tape device: /dev/tape\n"
USAGE = ("usage: mt [-v] [--version] [-h] [ -f device ] command [ count ]\n"
         "default tape device: /dev/tape\n")
COMMAND_LIST = (
    "commands: weof, wset, eof, fsf, fsfm, bsf, bsfm, fsr, bsr, fss, bss, rewind, \n"
    "          offline, rewoffl, eject, retension, eod, seod, seek, tell, status, \n"
    "          erase, setblk, lock, unlock, load, compression, setdensity, \n"
    "          drvbuffer, stwrthreshold, stoptions, stsetoptions, stclearoptions, \n"
    "          defblksize, defdensity, defdrvbuffer, defcompression, stsetcln, \n"
    "          sttimeout, stlongtimeout, densities, setpartition, mkpartition, \n"
    "          partseek, asf, stshowoptions.\n")
ST_DRIVER_ONLY = {"wset", "fss", "bss", "drvbuffer", "stwrthreshold", "stoptions", "stsetoptions", "stclearoptions",
                  "defblksize", "defdensity", "defdrvbuffer", "defcompression", "stsetcln", "sttimeout",
                  "stlongtimeout", "setpartition", "mkpartition", "partseek", "stshowoptions", "fsfm", "bsfm", "asf"}

# General status bits (linux/mtio.h GMT_*), in the order mt-st prints them.
GMT_BITS = (("EOF", 0x80000000), ("BOT", 0x40000000), ("EOT", 0x20000000), ("SM", 0x10000000),
            ("EOD", 0x08000000), ("WR_PROT", 0x04000000), ("ONLINE", 0x01000000), ("D_6250", 0x00800000),
            ("D_1600", 0x00400000), ("D_800", 0x00200000), ("DR_OPEN", 0x00040000), ("IM_REP_EN", 0x00010000),
            ("CLN", 0x00008000))
GMT = dict(GMT_BITS)

# The errno text the st driver gives for an error class (st.c: ENOMEDIUM with no tape, EROFS when a write is
# refused on a write-protected cartridge, EIO for the rest); the first match wins.
STRERROR: tuple[tuple[type[ScsiError], str], ...] = (
    (NoMedium, "No medium found"),
    (WriteProtected, "Read-only file system"),
)
EIO = "Input/output error"


def refusal(device: str, error: DeviceError) -> str:
    """mt-st's `<dev>: <strerror>` line, with the decoded sense (or the transport's cause) in parentheses."""
    if isinstance(error, ScsiError):
        why = next((text for cls, text in STRERROR if isinstance(error, cls)), EIO)
        return f"{device}: {why} ({error.text}, {error.sense.code}, {error.command})"
    why = str(error)
    return f"{device}: {EIO} ({why.removeprefix(f'{device}: ')})"


def status(drive: TapeDrive, device: str) -> str:
    """mt-st's status report, asked of the drive (see the module docstring)."""
    gstat = GMT["IM_REP_EN"]
    file_no = block_no = -1
    partition = block_size = density = 0
    try:
        drive.test_unit_ready()
        gstat |= GMT["ONLINE"]
        no_tape = False
    except NoMedium:
        no_tape = True
    except LogicalUnitOffline:  # a drive the library took offline: the error line, as for any other command
        raise
    except ScsiError:  # a cartridge, but not ready: st shows neither ONLINE nor DR_OPEN
        no_tape = False
    if no_tape:
        gstat |= GMT["DR_OPEN"]
    else:
        try:
            mode = drive.mode_sense(0)
        except ScsiError:
            mode = None
        if mode is not None and mode.block_descriptor is not None:
            if mode.wp:
                gstat |= GMT["WR_PROT"]
            density = mode.block_descriptor.density
            block_size = mode.block_descriptor.block_length
        try:
            pos = drive.read_position()
        except ScsiError:
            pos = None
        if pos is not None and pos.file is not None and not pos.position_unknown:
            partition, file_no = pos.partition, pos.file
            block_no = pos.block if file_no == 0 else block_in_file(
                device, drive.cartridge, partition, file_no, pos.block)
            if pos.bop or pos.block == 0:
                gstat |= GMT["BOT"]
    bits = "".join(f" {name}" for name, bit in GMT_BITS if gstat & bit)
    return ("SCSI 2 tape drive:\n"
            f"File number={file_no}, block number={block_no}, partition={partition & 0xFF}.\n"
            f"Tape block size {block_size} bytes. Density code 0x{density:x} ({density_name(density)}).\n"
            "Soft error count since last status=0\n"
            f"General status bits on ({gstat:x}):\n{bits}\n")


# name -> the drive operation, given (drive, count, whether a count was given); a str result is printed.
OPERATIONS: dict[str, Callable[[TapeDrive, int, bool], object]] = {
    "fsf": lambda d, n, _: d.space_filemarks(n),
    "bsf": lambda d, n, _: d.space_filemarks(-n),
    "fsr": lambda d, n, _: d.space_blocks(n),
    "bsr": lambda d, n, _: d.space_blocks(-n),
    "eod": lambda d, n, _: d.space_to_eod(),
    "weof": lambda d, n, _: d.write_filemarks(n),
    "rewind": lambda d, n, _: d.rewind(),
    "offline": lambda d, n, _: d.unload(),
    "load": lambda d, n, _: d.load(),
    "retension": lambda d, n, _: d.retension(),
    "status": lambda d, n, _: status(d, d.label),
    "tell": lambda d, n, _: f"At block {d.read_position().block}.\n",
    "seek": lambda d, n, _: d.locate(n),
    "setblk": lambda d, n, given: d.set_block_size(n if given else 0),
    "setdensity": lambda d, n, given: d.set_density(n if given else 0),
    "compression": lambda d, n, _: d.set_compression(bool(n)),
    "erase": lambda d, n, _: d.erase(),
    "lock": lambda d, n, _: d.prevent_removal(True),
    "unlock": lambda d, n, _: d.prevent_removal(False),
}
ALIASES = {"seod": "eod", "eof": "weof", "rewoffl": "offline", "eject": "offline"}
# Commands that, with a count above 0, leave the head just past a filemark: where a file begins.
STARTS_A_FILE = {"fsf", "weof"}


def note_file_start(drive: TapeDrive, device: str) -> None:
    """Remember the position as the start of the current file (the command itself already succeeded)."""
    try:
        pos = drive.read_position()
        cartridge = drive.cartridge
    except DeviceError:
        return
    if pos.file is not None and not pos.position_unknown and cartridge:
        remember(device, FileStart(cartridge, pos.partition, pos.file, pos.block))


COMMANDS = set(OPERATIONS) | set(ALIASES) | {"densities"} | ST_DRIVER_ONLY


def main(argv: list[str] | None = None) -> int:
    try:
        code = run_mt(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:  # `tapeline-mt status | head -1`
        return reader_gone()
    return code


def run_mt(args: list[str]) -> int:
    out, err = sys.stdout, sys.stderr
    device = os.environ.get("TAPE") or "/dev/tape"
    i = 0
    while i < len(args) and args[i].startswith("-"):
        opt = args[i]
        if opt == "--version":
            out.write(VERSION_TEXT)
            return 0
        if opt == "-h":
            err.write(USAGE + COMMAND_LIST)
            return 0
        if opt in ("-f", "-t"):
            if i + 1 >= len(args):
                err.write(USAGE)
                return 1
            device = args[i + 1]
            i += 2
            continue
        if opt == "-v":
            i += 1
            continue
        err.write(USAGE)
        return 1
    if i >= len(args):
        err.write(USAGE)
        return 1
    name = args[i]
    if name not in COMMANDS:
        err.write(f'mt: unknown command "{name}"\n' + USAGE + COMMAND_LIST)
        return 1
    given = i + 1 < len(args)
    try:
        count = int(args[i + 1], 0) if given else 1
    except ValueError:
        count = 0  # mt-st uses strtol, which reads a non-number as 0
    if name == "densities":
        out.write(densities_text())
        return 0
    try:
        dev = open_device(device, "{dev}: Inappropriate ioctl for device", "{dev}: {why}")
    except OpenFailed as exc:
        err.write(exc.line + "\n")
        return 2 if "Inappropriate ioctl" in exc.line else 1
    drive = TapeDrive(dev, label=device)
    try:
        operation = OPERATIONS.get(ALIASES.get(name, name))
        if operation is None:
            err.write(f"{device}: Operation not supported\n")
            return 2
        pdt = drive.inquiry().pdt
        if pdt != spc.PDT_TAPE:  # st attaches to tape drives only; mt-st on anything else cannot open a tape
            kind = "a medium changer" if pdt == spc.PDT_CHANGER else f"peripheral device type {pdt}"
            err.write(f"{device}: not a tape drive (INQUIRY: {kind}); use tapeline-mtx -f {device} for a changer\n")
            return 1
        drive.clear_unit_attention()  # as st does at open: a fresh cartridge's attention is not the command's error
        result = operation(drive, count, given)
        if ALIASES.get(name, name) in STARTS_A_FILE and count > 0:
            note_file_start(drive, device)
        out.write(result if isinstance(result, str) else "")
        return 0
    except CdbFieldError:  # a count the command cannot carry (st: EINVAL)
        err.write(f"{device}: Invalid argument\n")
        return 2
    except DeviceNotFound as exc:  # a served library without that device: mt-st's failed open, exit 1
        out.flush()
        err.write(f"{exc}\n")
        return 1
    except DeviceError as exc:
        out.flush()
        err.write(refusal(device, exc) + "\n")
        return 2
    finally:
        drive.close()

if __name__ == "__main__":
    sys.exit(main())
