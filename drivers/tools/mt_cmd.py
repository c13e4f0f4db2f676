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
partition and BOT. The block number within the file is exact at file 0 (blocks from BOP) and -1 in later files,
as st reports after a seek; EOF and EOD, which st derives from the commands it ran before, are never shown;
IM_REP_EN is always on, as with st's default.
"""

from __future__ import annotations

import os
import sys

from drivers.scsi.sense import SenseData, error_for
from drivers.tools.common import MINUTE, OpenFailed, Outcome, open_device, run
from drivers.tools.densities import densities_text, density_name
from drivers.transport.base import Transport

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


class Refused(Exception):
    """The drive refused a command: mt-st prints `<dev>: <strerror>` and exits 2."""


class Mt:
    def __init__(self, device: str, dev: Transport) -> None:
        self.device = device
        self.dev = dev

    def do(self, cdb: bytes, data_in_len: int = 0, data_out: bytes = b"", timeout: float = 10 * MINUTE) -> Outcome:
        outcome = run(self.dev, cdb, data_in_len, data_out, timeout)
        if not outcome.ok:
            raise Refused(self.refusal(outcome, cdb))
        return outcome

    def refusal(self, outcome: Outcome, cdb: bytes) -> str:
        if not outcome.sense:
            return f"{self.device}: Input/output error"
        try:
            sense = SenseData.decode(outcome.sense)
        except ValueError:
            return f"{self.device}: Input/output error"
        error = error_for(sense)
        why = "No medium found" if (sense.key, sense.asc) == (2, 0x3A) else (
            "Read-only file system" if sense.key == 7 else "Input/output error")
        return f"{self.device}: {why} ({error.text}, {sense.code}, command 0x{cdb[0]:02X})"

    # -- commands ------------------------------------------------------------------------------------------
    def space(self, code: int, count: int) -> None:
        self.do(bytes([0x11, code & 0x0F, *(count & 0xFFFFFF).to_bytes(3, "big"), 0]))

    def status(self) -> str:
        gstat = GMT["IM_REP_EN"]
        ready = run(self.dev, bytes(6))
        if not ready.ok and not ready.sense:
            raise Refused(f"{self.device}: Input/output error")
        no_tape = not ready.ok and len(ready.sense) > 13 and (ready.sense[2] & 0x0F, ready.sense[12]) == (2, 0x3A)
        file_no = block_no = -1
        partition = block_size = density = 0
        if no_tape:
            gstat |= GMT["DR_OPEN"]
        else:
            if ready.ok:
                gstat |= GMT["ONLINE"]
            mode = run(self.dev, bytes([0x1A, 0, 0, 0, 12, 0]), data_in_len=12)
            if mode.ok and len(mode.data) >= 12 and mode.data[3] >= 8:
                if mode.data[2] & 0x80:
                    gstat |= GMT["WR_PROT"]
                density = mode.data[4]
                block_size = int.from_bytes(mode.data[9:12], "big")
            pos = run(self.dev, bytes([0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0]), data_in_len=32)
            if pos.ok and len(pos.data) >= 32 and not pos.data[0] & 0x04:
                partition = int.from_bytes(pos.data[4:8], "big")
                obj = int.from_bytes(pos.data[8:16], "big")
                file_no = int.from_bytes(pos.data[16:24], "big")
                block_no = obj if file_no == 0 else -1
                if pos.data[0] & 0x80 or obj == 0:
                    gstat |= GMT["BOT"]
        bits = "".join(f" {name}" for name, bit in GMT_BITS if gstat & bit)
        return ("SCSI 2 tape drive:\n"
                f"File number={file_no}, block number={block_no}, partition={partition & 0xFF}.\n"
                f"Tape block size {block_size} bytes. Density code 0x{density:x} ({density_name(density)}).\n"
                "Soft error count since last status=0\n"
                f"General status bits on ({gstat:x}):\n{bits}\n")

    def tell(self) -> str:
        pos = self.do(bytes([0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0]), data_in_len=20)
        return f"At block {int.from_bytes(pos.data[4:8], 'big')}.\n"

    def mode_select_block_descriptor(self, density: int | None = None, block_size: int | None = None) -> None:
        mode = self.do(bytes([0x1A, 0, 0, 0, 12, 0]), data_in_len=12).data
        if len(mode) < 12 or mode[3] < 8:
            raise Refused(f"{self.device}: Input/output error (the drive returned no block descriptor)")
        desc = bytearray(mode[4:12])
        if density is not None:
            desc[0] = density & 0xFF
        if block_size is not None:
            desc[5:8] = block_size.to_bytes(3, "big")
        params = bytes([0, 0, mode[2] & 0x70, 8]) + bytes(desc)
        self.do(bytes([0x15, 0x10, 0, 0, len(params), 0]), data_out=params)

    def compression(self, on: bool) -> None:
        sense = self.do(bytes([0x1A, 0x08, 0x0F, 0, 255, 0]), data_in_len=255).data
        start = 4 + sense[3]
        if len(sense) < start + 16 or sense[start] & 0x3F != 0x0F:
            raise Refused(f"{self.device}: Input/output error (no data compression page 0x0F)")
        page = bytearray(sense[start:start + 2 + sense[start + 1]])
        page[0] &= 0x3F
        page[2] = (page[2] & 0x7F) | (0x80 if on else 0)
        params = bytes([0, 0, sense[2] & 0x70, 0]) + bytes(page)
        self.do(bytes([0x15, 0x10, 0, 0, len(params), 0]), data_out=params)

    def run_command(self, name: str, count: int, given: bool) -> str:
        if name in ("fsf",):
            self.space(1, count)
        elif name == "bsf":
            self.space(1, -count)
        elif name == "fsr":
            self.space(0, count)
        elif name == "bsr":
            self.space(0, -count)
        elif name in ("eod", "seod"):
            self.space(3, 0)
        elif name in ("weof", "eof"):
            self.do(bytes([0x10, 0, *count.to_bytes(3, "big"), 0]))
        elif name == "rewind":
            self.do(bytes([0x01, 0, 0, 0, 0, 0]))
        elif name in ("offline", "rewoffl", "eject"):
            self.do(bytes([0x1B, 0, 0, 0, 0, 0]))
        elif name == "load":
            self.do(bytes([0x1B, 0, 0, 0, 1, 0]))
        elif name == "retension":
            self.do(bytes([0x1B, 0, 0, 0, 3, 0]))
        elif name == "status":
            return self.status()
        elif name == "tell":
            return self.tell()
        elif name == "seek":
            self.do(bytes([0x2B, 0, 0, *count.to_bytes(4, "big"), 0, 0, 0]))
        elif name == "setblk":
            self.mode_select_block_descriptor(block_size=count if given else 0)
        elif name == "setdensity":
            self.mode_select_block_descriptor(density=count if given else 0)
        elif name == "compression":
            self.compression(bool(count))
        elif name == "erase":
            self.do(bytes([0x19, 0x01, 0, 0, 0, 0]), timeout=6 * 60 * MINUTE)
        elif name in ("lock", "unlock"):
            self.do(bytes([0x1E, 0, 0, 0, 1 if name == "lock" else 0, 0]))
        else:
            raise Refused(f"{self.device}: Operation not supported")
        return ""


COMMANDS = {"weof", "eof", "fsf", "bsf", "fsr", "bsr", "rewind", "offline", "rewoffl", "eject", "retension", "eod",
            "seod", "seek", "tell", "status", "erase", "setblk", "lock", "unlock", "load", "compression",
            "setdensity", "densities"} | ST_DRIVER_ONLY


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
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
    try:
        text = Mt(device, dev).run_command(name, count, given)
        out.write(text)
        return 0
    except Refused as exc:
        out.flush()
        err.write(f"{exc}\n")
        return 2
    finally:
        dev.close()


if __name__ == "__main__":
    sys.exit(main())
