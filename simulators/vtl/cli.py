"""`tapeline-vtl`: create, serve, inspect a virtual tape library and plant faults in it.

    tapeline-vtl init DIR [--slots 24] [--drives 2] [--mailslots 4] [--generation LTO-8] [--capacity BYTES]
    tapeline-vtl serve DIR [--listen HOST:PORT]
    tapeline-vtl status DIR [--json]
    tapeline-vtl fault DIR KIND TARGET [--at N] [--persistent] | fault DIR --clear [KIND [TARGET]] | fault DIR --list
    tapeline-vtl mailslot DIR open|close|insert BARCODE|remove N     (what an operator does at the mail slot)
    tapeline-vtl cat DIR BARCODE FILE_NUMBER    tape file N's blocks to stdout, as `dd bs=BLOCK` reads them from a
                                                drive (also while the library is served: the image is only read)

Exit codes: 0 ok, 1 failure, 2 bad usage (an unknown option, a layout the library personality cannot have, a fault
that does not fit the library); either way one line on stderr naming the cause and the fix. A reader that goes away
(`tapeline-vtl status DIR | head`) ends the command quietly, as a C tool killed by SIGPIPE (exit 141).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from drivers.errors import DeviceError
from drivers.console import reader_gone
from drivers.transport.token import TOKEN_NAME, create_token
from simulators.vtl import personality
from simulators.vtl.cartridge import CartridgeError, read_tape_file
from simulators.vtl.faults import KINDS, FaultError, make_fault
from simulators.vtl.library import CartridgeInfo, edit_state, new_state, read_state, write_state


class CliError(Exception):
    """A failure the user can fix; the message says how."""


class UsageError(CliError):
    """Arguments that cannot mean anything (exit 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors one line (`tapeline-vtl init: argument --slots: ...`) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tapeline-vtl", description="Virtual tape library (a SCSI target)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create a library directory")
    p.add_argument("dir", type=Path)
    p.add_argument("--slots", type=int, default=24)
    p.add_argument("--drives", type=int, default=2)
    p.add_argument("--mailslots", type=int, default=4)
    p.add_argument("--generation", default="LTO-8", choices=sorted(personality.DRIVES))
    p.add_argument("--library", default=personality.DEFAULT_LIBRARY, choices=sorted(personality.LIBRARIES))
    p.add_argument("--capacity", type=int, help="bytes per data cartridge (default: the generation's native)")
    p.add_argument("--clock-factor", type=float,
                   help="run the timing model F times faster than real time (its simulated seconds so far: DIR/clock)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("serve", help="serve the library over the stream transport")
    p.add_argument("dir", type=Path)
    p.add_argument("--listen", default="127.0.0.1:7101", help="HOST:PORT (default 127.0.0.1:7101)")
    p = sub.add_parser("status", help="the library at a glance")
    p.add_argument("dir", type=Path)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("fault", help="inject, list or clear faults")
    p.add_argument("dir", type=Path)
    p.add_argument("kind", nargs="?", help=f"one of {', '.join(KINDS)}")
    p.add_argument("target", nargs="?", help="drive0.. or a barcode")
    p.add_argument("--at", type=int, help="block number (media-error) or bytes (early-eom)")
    p.add_argument("--persistent", action="store_true", help="fire every time, not once")
    p.add_argument("--clear", nargs="*", metavar="KIND [TARGET]", help="remove faults (all, or of KIND [on TARGET])")
    p.add_argument("--list", action="store_true")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("mailslot", help="operator actions at the mail slot")
    p.add_argument("dir", type=Path)
    p.add_argument("action", choices=["open", "close", "insert", "remove"])
    p.add_argument("what", nargs="?", help="insert: a barcode; remove: mail slot number (1..)")
    p = sub.add_parser("cat", help="write a tape file's bytes to stdout, as dd reads them from a drive")
    p.add_argument("dir", type=Path)
    p.add_argument("barcode")
    p.add_argument("file_number", type=int, help="0 = the first tape file (the label)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = {"init": cmd_init, "serve": cmd_serve, "status": cmd_status, "fault": cmd_fault,
                "mailslot": cmd_mailslot, "cat": cmd_cat}[args.command](args)
        sys.stdout.flush()  # here, so that a reader gone away is seen while EPIPE can still be handled
        return code
    except BrokenPipeError:
        return reader_gone()
    except (UsageError, FaultError) as exc:
        print(f"tapeline-vtl {args.command}: {exc}", file=sys.stderr)
        return 2
    except (CliError, CartridgeError, DeviceError, OSError) as exc:
        print(f"tapeline-vtl {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1


def device_urls(directory: Path, drives: int) -> list[str]:
    base = f"local://{directory.resolve()}"
    return [f"{base}/changer"] + [f"{base}/drive{i}" for i in range(drives)]


def check_layout(library: str, slots: int, drives: int, mailslots: int) -> None:
    """UsageError naming the limit when the personality `library` cannot have this many elements."""
    p = personality.LIBRARIES[library]
    most_slots = 0xFFFF - p.storage_base
    for what, n, low, high in (("slots", slots, 1, most_slots), ("drives", drives, 1, p.max_drives),
                               ("mail slots", mailslots, 0, p.max_mailslots)):
        if not low <= n <= high:
            raise UsageError(f"--{what.replace(' ', '')} {n}: the {library} library takes {low} to {high} {what} "
                             f"(--library {'|'.join(personality.LIBRARIES)} picks another)")


def cmd_init(args: argparse.Namespace) -> int:
    check_layout(args.library, args.slots, args.drives, args.mailslots)
    if (args.dir / "state.json").exists():
        raise CliError(f"{args.dir} already holds a library: pick another directory or remove it first")
    args.dir.mkdir(parents=True, exist_ok=True)
    (args.dir / "cartridges").mkdir(exist_ok=True)
    state = new_state(args.slots, args.drives, args.mailslots, args.generation, args.library,
                      capacity=args.capacity, clock_factor=args.clock_factor)
    write_state(args.dir, state)
    create_token(args.dir / TOKEN_NAME)  # the credential `serve` asks its clients for
    urls = device_urls(args.dir, args.drives)
    if args.json:
        print(json.dumps({"directory": str(args.dir.resolve()), "urls": urls}))
    else:
        def count(n: int, noun: str) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"
        print(f"library {args.dir.resolve()}: {count(args.slots, 'slot')}, "
              f"{count(args.drives, args.generation + ' drive')}, {count(args.mailslots, 'mail slot')}, "
              f"{count(len(state.cartridges), 'cartridge')}")
        for url in urls:
            print(url)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from simulators.vtl.server import serve_forever

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print(f"tapeline-vtl serve: --listen {args.listen!r} is not HOST:PORT (e.g. 127.0.0.1:7101)", file=sys.stderr)
        return 2
    serve_forever(args.dir, host, int(port))
    return 0


def status_view(directory: Path) -> dict:
    state, _ = read_state(directory)
    p = personality.LIBRARIES[state.library]
    holder = {}
    try:
        holder = json.loads((directory / "lock").read_text() or "{}")
    except (OSError, ValueError):
        pass
    return {
        "library": f"{p.vendor} {p.product}",
        "directory": str(directory.resolve()),
        "door_open": state.door_open,
        "mail_locked": state.mail_locked,
        "held_by": holder or None,
        "drives": [
            {"name": f"drive{i}", "address": p.drive_base + i, "generation": d.generation, "cartridge": d.barcode,
             "loaded": d.threaded, "source": d.source, "needs_cleaning": d.needs_cleaning}
            for i, d in enumerate(state.drives)
        ],
        "slots": [{"slot": i + 1, "address": p.storage_base + i, "cartridge": b} for i, b in enumerate(state.slots)],
        "mailslots": [
            {"slot": i + 1, "address": p.ie_base + i, "cartridge": b, "placed_by_operator": state.mail_placed[i]}
            for i, b in enumerate(state.mailslots)
        ],
        "robot": state.transport,
        "faults": [f.to_json() for f in state.faults],
        "cartridges": {b: vars(c) for b, c in state.cartridges.items()},
    }


def cmd_status(args: argparse.Namespace) -> int:
    view = status_view(args.dir)
    if args.json:
        print(json.dumps(view, indent=1))
        return 0
    held = view["held_by"]
    print(f"{view['library']} at {view['directory']}"
          + (f", served by pid {held['pid']} ({held.get('url') or 'in-process'})" if held else ""))
    for d in view["drives"]:
        what = d["cartridge"] or "empty"
        state = "" if not d["cartridge"] else (" loaded" if d["loaded"] else " ejected")
        src = f" from {d['source']}" if d["source"] is not None else ""
        clean = " NEEDS CLEANING" if d["needs_cleaning"] else ""
        print(f"  {d['name']} [{d['address']}] {d['generation']}: {what}{state}{src}{clean}")
    full = [s for s in view["slots"] if s["cartridge"]]
    print(f"  slots: {len(full)} of {len(view['slots'])} full")
    for s in view["slots"]:
        print(f"    {s['slot']:>4} [{s['address']}] {s['cartridge'] or '-'}")
    door = "open" if view["door_open"] else "closed"
    print(f"  mail slots (door {door}{', locked' if view['mail_locked'] else ''}):")
    for m in view["mailslots"]:
        print(f"    {m['slot']:>4} [{m['address']}] {m['cartridge'] or '-'}")
    if view["robot"]:
        print(f"  robot holds {view['robot']}")
    print("  faults: " + (", ".join(_describe(f) for f in view["faults"]) or "none"))
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    state, _ = read_state(args.dir)
    if args.barcode not in state.cartridges:
        raise CliError(f"no cartridge {args.barcode} in {args.dir}: see `tapeline-vtl status {args.dir}`")
    out = sys.stdout.buffer
    for block in read_tape_file(args.dir / "cartridges", args.barcode, args.file_number):
        out.write(block)
    return 0


def _describe(raw: dict) -> str:
    from simulators.vtl.faults import Fault

    return Fault.from_json(raw).describe()


def cmd_fault(args: argparse.Namespace) -> int:
    if args.list or (args.kind is None and args.clear is None):
        faults = [f.to_json() for f in read_state(args.dir)[0].faults]
        print(json.dumps(faults) if args.json else "\n".join(_describe(f) for f in faults) or "no faults")
        return 0
    with edit_state(args.dir) as state:
        if args.clear is not None:
            kind, target = (args.clear + [args.kind, args.target])[:2] if args.clear else (args.kind, args.target)
            before = len(state.faults)
            state.faults = [f for f in state.faults if not (kind in (None, f.kind) and target in (None, f.target))]
            if kind in (None, "cleaning-required"):
                for i, d in enumerate(state.drives):
                    if target in (None, f"drive{i}"):
                        d.needs_cleaning = False
            if kind in (None, "write-protect"):
                for barcode, info in state.cartridges.items():
                    if target in (None, barcode):
                        info.protected = False
            print(f"cleared {before - len(state.faults)} fault(s)")
            return 0
        if args.target is None:
            raise UsageError(f"fault {args.kind}: give a target (drive0.. or a barcode)")
        fault = make_fault(args.kind, args.target, args.at, args.persistent, len(state.drives),
                           set(state.cartridges))
        if fault.kind == "cleaning-required":
            state.drives[int(fault.target[len("drive"):])].needs_cleaning = True
        if fault.kind == "write-protect":
            state.cartridges[fault.target].protected = True
        state.faults.append(fault)
        print(f"planted {fault.describe()}")
    return 0


def cmd_mailslot(args: argparse.Namespace) -> int:
    with edit_state(args.dir) as state:
        if args.action == "open":
            if state.mail_locked:
                raise CliError("the mail slot is locked by the application (PREVENT MEDIUM REMOVAL): unlock it there")
            state.door_open = True
        elif args.action == "close":
            if state.door_open:
                state.door_open = False
                state.door_events += 1
        elif not state.door_open:
            raise CliError("the mail slot door is closed: run `tapeline-vtl mailslot DIR open` first")
        elif args.action == "insert":
            barcode = args.what or ""
            if barcode in state.cartridges and barcode not in _exported(state):
                raise CliError(f"cartridge {barcode} is already in the library")
            free = [i for i, b in enumerate(state.mailslots) if b is None]
            if not free:
                raise CliError("every mail slot is full: remove a cartridge first")
            try:
                media, kind = personality.media_for_barcode(barcode)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            if barcode not in state.cartridges:
                capacity = media.native_capacity if media else 0
                state.cartridges[barcode] = CartridgeInfo(
                    barcode, media.name if media else None, kind, capacity,
                    cleaning_uses=personality.CLEANING_USES if kind == "cleaning" else 0)
            state.mailslots[free[0]] = barcode
            state.mail_placed[free[0]] = True
            print(f"inserted {barcode} in mail slot {free[0] + 1}")
        else:
            index = int(args.what or 0) - 1
            if not 0 <= index < len(state.mailslots) or state.mailslots[index] is None:
                raise CliError(f"mail slot {args.what} is empty or does not exist (1..{len(state.mailslots)})")
            print(f"removed {state.mailslots[index]} from mail slot {index + 1}")
            state.mailslots[index] = None
            state.mail_placed[index] = False
    return 0


def _exported(state) -> set[str]:
    """Barcodes the library knows but holds nowhere (exported and taken out): they may come back in."""
    inside = set(state.slots) | set(state.mailslots) | {d.barcode for d in state.drives} | {state.transport}
    return set(state.cartridges) - inside


if __name__ == "__main__":
    sys.exit(main())
