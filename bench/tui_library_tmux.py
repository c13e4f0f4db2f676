"""The same library's keystrokes as a person at a terminal sees them: the console runs in tmux, each key goes in with
`tmux send-keys`, and the pane is read with `capture-pane` until it shows the key's result.

    .venv/bin/python bench/tui_library_tmux.py [--cartridges 10000] [--slots 1000]
    (or bench/tui_library.py --tmux, which prints these beside the in-process figures)

Each figure runs from just before `send-keys` until the first capture of the pane that shows the result (the typed
text and the count of cartridges matching it; for a scroll key, the table's first row moved), so it holds what the
in-process figure leaves out: the key's way in through tmux and the terminal driver, Textual's writing of the frame,
tmux's parsing of it, and the polling itself (one `capture-pane` is a process started: its median time is printed,
it is the figures' resolution). The console is the real one, `TapelineApp` in a terminal, with the daemon's answers
fixed as bench/tui_library.py has them (the same 10,000 cartridges); the peer, Textual's DataTable refilled per
keystroke, runs in a pane of its own in the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from tui.screens.management import cartridge_row
from tui_library import TYPED, Fixed, Peer, cartridges  # bench/, the script's own directory

WIDTH, HEIGHT = 160, 50
WAIT = 60.0  # seconds for one key's result: generous, the machine is shared
STYLE = re.compile(r"\x1b\[[0-9;]*m")
ROW = re.compile(r"\b(L\d{5}L8)\s+pool\d")  # a table row (the library's drawing beside it has barcodes too)
CURSOR = re.compile(r"\x1b\[7m(?:\x1b\[[0-9;]*m)*(L\d{5}L8)\s+pool\d")  # the row in reverse: the focused cursor
PLACEHOLDER = "filter: any words"


class Pane:
    """One console in a tmux server of its own."""

    def __init__(self, argv: list[str]):
        self.server = ["tmux", "-L", f"tapeline-bench-{uuid.uuid4().hex[:8]}"]
        self.env = {**os.environ, "TERM": "xterm-256color"}
        self.captures: list[float] = []
        self.tmux("new-session", "-d", "-s", "ui", "-x", str(WIDTH), "-y", str(HEIGHT), " ".join(argv))

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.server, *args], capture_output=True, text=True, check=True,
                              env=self.env).stdout

    def screen(self) -> str:
        """The pane with its styles (escape sequences): the cursor's row and the field's cursor are styles."""
        start = time.perf_counter()
        shown = self.tmux("capture-pane", "-p", "-e", "-t", "ui")
        self.captures.append((time.perf_counter() - start) * 1000)
        return shown

    def until(self, seen, what: str) -> str:
        deadline = time.monotonic() + WAIT
        while not seen(shown := self.screen()):
            if time.monotonic() > deadline:
                raise SystemExit(f"never saw {what}; the screen:\n{shown}")
        return shown

    def key(self, key: str, seen, what: str) -> float:
        """ms from sending `key` to the first capture for which `seen(screen)` holds."""
        start = time.perf_counter()
        self.tmux("send-keys", "-t", "ui", key)
        self.until(seen, what)
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        subprocess.run([*self.server, "kill-server"], capture_output=True, env=self.env)


def text(shown: str) -> str:
    return STYLE.sub("", shown)


def first_barcode(shown: str) -> str | None:
    found = ROW.search(text(shown))
    return found.group(1) if found else None


def cursor(shown: str) -> str | None:
    found = CURSOR.search(shown)
    return found.group(1) if found else None


def field_focused(shown: str) -> bool:
    """The field's cursor splits the placeholder's first letter from the rest (a style of its own)."""
    return PLACEHOLDER not in shown and PLACEHOLDER[1:] in shown


def field(shown: str) -> str:
    """What the filter field holds: right of the field's left border (a block), on the line where the library list
    beside it has its own (not the borders' top and bottom lines)."""
    line = next((x for x in text(shown).splitlines() if x.count("▊") >= 2 and "▔" not in x and "▁" not in x), "")
    return line.rsplit("▊", 1)[-1].strip(" ▎")


def count_shown(n: int, total: int):
    words = f"{n:,} of {total:,} cartridges"
    return lambda shown: words in text(shown)


def filtered(typed: str, n: int, total: int):
    """The field holds `typed` (the placeholder when empty) and the count says `n` match."""
    counted = count_shown(n, total)
    return lambda shown: (field(shown) == typed or not typed and field(shown).startswith(PLACEHOLDER)) and \
        counted(shown)


def console_argv(which: str, cartridges_n: int, slots: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--run", which, "--cartridges", str(cartridges_n),
            "--slots", str(slots)]


def matching(text: str, media: list[dict]) -> int:
    now = datetime.now(timezone.utc)
    words = text.lower().split()
    return sum(all(w in " ".join(cartridge_row(c, now)).lower() for w in words) for c in media)


def measure(cartridges_n: int, slots: int, peer_keys: int = 1) -> dict[str, list[float]]:
    """Ours: `/`, TYPED letter by letter, erased, Enter, then scrolled; the peer: `peer_keys` letters."""
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed: apt-get install -y tmux (scripts/setup --test installs it)")
    media = cartridges(cartridges_n, slots)
    times: dict[str, list[float]] = {"filter": [], "scroll": [], "capture": [], "peer filter": []}
    keys: dict[str, list[str]] = {"filter": ["/", *TYPED, *["BSpace"] * len(TYPED), "Enter"],
                                  "scroll": ["PageDown"] * 10 + ["Down"] * 10 + ["End", "Home"]}
    pane = Pane(console_argv("ours", cartridges_n, slots))
    try:
        pane.until(lambda s: "Monitoring" in s, "the console")
        pane.key("F5", count_shown(len(media), len(media)), "the cartridges")
        times["filter"].append(pane.key("/", field_focused, "the filter's cursor"))
        typed = ""
        for letter in TYPED:
            typed += letter
            n = matching(typed, media)
            times["filter"].append(pane.key(letter, filtered(typed, n, len(media)), f"{typed!r}: {n} cartridges"))
        for _ in TYPED:
            typed = typed[:-1]
            n = matching(typed, media)
            times["filter"].append(pane.key("BSpace", filtered(typed, n, len(media)), f"{typed!r} erased back"))
        times["filter"].append(pane.key("Enter", lambda s: cursor(s) is not None, "the table's cursor"))
        for key in keys["scroll"]:
            before = cursor(pane.screen())
            times["scroll"].append(pane.key(key, lambda s, b=before: cursor(s) not in (None, b),
                                            f"{key} moving the cursor"))
        times["capture"] = pane.captures
        times["keys"] = keys
    finally:
        pane.close()
    peer = Pane(console_argv("peer", cartridges_n, slots))
    try:
        peer.until(count_shown(len(media), len(media)), "the peer's table")
        typed = ""
        for letter in TYPED[:peer_keys]:
            typed += letter
            n = matching(typed, media)
            times["peer filter"].append(peer.key(letter, lambda s, t=typed: f"cartridges for {t!r}" in text(s),
                                                 f"the peer filtered by {typed!r}"))
    finally:
        peer.close()
    return times


def run_console(which: str, cartridges_n: int, slots: int) -> None:
    """What runs in the pane: our console (the daemon's answers fixed) or the peer."""
    media = cartridges(cartridges_n, slots)
    if which == "peer":
        now = datetime.now(timezone.utc)
        Peer([cartridge_row(c, now) for c in media]).run()
        return
    from tui.app import TapelineApp
    app = TapelineApp("/nonexistent.sock", poll_seconds=3600, now=lambda: datetime.now(timezone.utc))
    app.daemon = Fixed(media)
    app.run()


def lines(times: dict) -> list[str]:
    def line(name: str, values: list[float], note: str, keys: list[str] | None = None) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        worst = f" ({keys[values.index(max(values))]})" if keys else ""
        return (f"  {name:<11} median {statistics.median(values):7.1f} ms   p95 {p95:7.1f} ms   worst "
                f"{max(values):8.1f} ms{worst}   ({len(values)}{note})")
    return [line("filter", times["filter"], " keystrokes", times["keys"]["filter"]),
            line("scroll", times["scroll"], " keystrokes", times["keys"]["scroll"]),
            line("capture", times["capture"], " captures: one look at the pane, the figures' resolution"),
            line("peer filter", times["peer filter"], " keystrokes of the peer, DataTable refilled")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cartridges", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=1_000)
    parser.add_argument("--peer-keys", type=int, default=1)
    parser.add_argument("--run", choices=["ours", "peer"], help=argparse.SUPPRESS)  # inside the pane
    args = parser.parse_args()
    if args.run:
        return run_console(args.run, args.cartridges, args.slots)
    print(f"in tmux ({WIDTH}x{HEIGHT}): {args.cartridges:,} cartridges; key sent to its result captured; "
          f"load average {os.getloadavg()[0]:.1f}")
    for text in lines(measure(args.cartridges, args.slots, args.peer_keys)):
        print(text)


if __name__ == "__main__":
    main()
