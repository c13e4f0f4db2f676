"""A library of 1,000 slots and 10,000 cartridges in the console's Management area: how long each keystroke takes
to answer while filtering the cartridges and scrolling them, beside Textual's DataTable refilled with the same rows
(the widget a console would use first), from the same run.

    .venv/bin/python bench/tui_library.py [--cartridges 10000] [--slots 1000]

Each figure is one keystroke through Textual's Pilot, timed from the key to the last frame the app composed for
it (App._display, where a terminal app writes the frame; headless, the terminal's own write is left out), as the
operator sees it. Pilot's round trip (`press`, then `pause`, which also waits for the app to go idle) is printed
beside it: it carries Pilot's own cost (the floor line). The daemon's answers are fixed documents in the API's shape
(/v1/media, /v1/libraries): the time measured is the console's alone, which no daemon call is part of (the
cartridges are read once, when the area opens). The floor line is a key bound to nothing: what Pilot itself costs;
the work line is the filter alone (no redraw), called directly.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from datetime import datetime, timezone

from textual.app import App
from textual.widgets import DataTable, Input, Static

from tui.app import IDLE_SECONDS, TapelineApp
from tui.screens.management import CARTRIDGE_COLUMNS, cartridge_row
from tui.widgets.filtered_table import FilteredTable

TYPED = "l00123"  # a barcode typed letter by letter: 10,000 matches, then fewer and fewer
STATES = ["scratch", "full", "append", "expired", "blank"]


def cartridges(n: int, slots: int) -> list[dict]:
    out = []
    for i in range(n):
        in_slot = i < slots
        out.append({"barcode": f"L{i:05d}L8", "state": STATES[i % len(STATES)], "library": "lib1",
                    "pool": f"pool{i % 7}", "location": "slot" if in_slot else "vault",
                    "location_number": i + 1 if in_slot else None,
                    "where": f"slot {i + 1}" if in_slot else "vault Iron Mountain",
                    "bytes_written": (i * 7919 % 12_000) << 20, "expires": None})
    return out


class Fixed:
    """The daemon's answers for a library this size."""

    def __init__(self, media: list[dict]):
        self._media = media

    def snapshot(self):
        return {"status": {"groups": [], "alerts": [], "jobs": {"running": [], "queued": []}}, "jobs": []}

    def media(self):
        return self._media

    def libraries(self):
        return [{"name": "lib1", "last_inventory": None, "outside": [], "cartridges": {"full": 1},
                 "drives": [{"library": "lib1", "number": n, "url": f"local:///d{n}", "enabled": True,
                             "cleanings": 0, "last_cleaned": None, "failures_in_row": 0} for n in range(4)]}]

    def pools(self):
        return []

    def drives(self):
        return self.libraries()[0]["drives"]


def time_frames(app: App) -> list[float]:
    """Record when the app composes each frame (what a terminal app then writes out)."""
    frames: list[float] = []
    compose_frame = app._display

    def display(screen, renderable) -> None:
        compose_frame(screen, renderable)
        if renderable is not None:
            frames.append(time.perf_counter())
    app._display = display
    return frames


async def keystroke(pilot, frames: list[float], key: str, pilot_ms: list[float]) -> float:
    """The key to its last frame, in ms (Pilot's round trip appended to `pilot_ms`)."""
    frames.clear()
    start = time.perf_counter()
    await pilot.press(key)
    await pilot.pause()
    pilot_ms.append((time.perf_counter() - start) * 1000)
    return ((frames[-1] if frames else start) - start) * 1000


def collections_timed() -> list[float]:
    """The duration of each full (oldest-generation) collection from here on, in ms."""
    took: list[float] = []
    started = [0.0]

    def note(phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                took.append((time.perf_counter() - started[0]) * 1000)
    gc.callbacks.append(note)
    return took


async def ours(media: list[dict], rounds: int) -> dict[str, list[float]]:
    app = TapelineApp("/nonexistent.sock", poll_seconds=3600, now=lambda: datetime.now(timezone.utc))
    app.daemon = Fixed(media)
    async with app.run_test(size=(160, 50)) as pilot:
        frames = time_frames(app)
        await pilot.press("f5")
        table = app.screen.query_one("#media", FilteredTable)
        while len(table.rows) < len(media):
            await pilot.pause(0.05)
        times: dict[str, list[float]] = {"floor": [], "pilot": [], "filter": [], "scroll": [], "work": []}
        for _ in range(5):
            await keystroke(pilot, frames, "f12", times["floor"])
        full = collections_timed()
        names: dict[str, list[str]] = {"filter": [], "scroll": []}
        for _ in range(rounds):
            # a person's pause between rounds: the console's full collection runs in it (tui/app.py)
            await pilot.pause(IDLE_SECONDS * 1.6)
            for key in ["slash", *TYPED]:
                times["filter"].append(await keystroke(pilot, frames, key, times["pilot"]))
                names["filter"].append(key)
            assert [table.rows[i][0] for i in table.shown] == ["L00123L8"], "the filter found the wrong rows"
            for key in ["backspace"] * len(TYPED) + ["enter"]:  # Enter: from the filter to the table
                times["filter"].append(await keystroke(pilot, frames, key, times["pilot"]))
                names["filter"].append(key)
            assert table.has_focus and len(table.shown) == len(media)
            for key in ["pagedown"] * 10 + ["down"] * 10 + ["end", "home"]:
                times["scroll"].append(await keystroke(pilot, frames, key, times["pilot"]))
                names["scroll"].append(key)
        gc.callbacks.clear()
        times["collections"] = full
        times["names"] = names
        for n in list(range(1, len(TYPED) + 1)) + list(range(len(TYPED) - 1, -1, -1)):
            start = time.perf_counter()
            table.filter(TYPED[:n])
            times["work"].append((time.perf_counter() - start) * 1000)
    return times


class Peer(App):
    """DataTable, refilled with the matching rows at each keystroke (it cannot hide rows)."""

    def __init__(self, rows):
        super().__init__()
        self.all = rows

    def compose(self):
        yield Input(id="filter")
        yield Static(id="count")  # as ours counts what matches, and says for what: in a terminal, the refill drawn
        yield DataTable(id="table")

    def on_mount(self):
        table = self.query_one(DataTable)
        for title, width in CARTRIDGE_COLUMNS:
            table.add_column(title, width=width)
        table.add_rows(self.all)
        self.query_one("#count", Static).update(f"{len(self.all):,} of {len(self.all):,} cartridges")

    def on_input_changed(self, event):
        words = event.value.lower().split()
        table = self.query_one(DataTable)
        table.clear()
        table.add_rows([r for r in self.all if all(w in " ".join(r).lower() for w in words)])
        self.query_one("#count", Static).update(f"{table.row_count:,} of {len(self.all):,} cartridges for "
                                                f"{event.value!r}")


async def peer(rows, keys: int) -> dict[str, list[float]]:
    app = Peer(rows)
    async with app.run_test(size=(160, 50)) as pilot:
        frames = time_frames(app)
        await pilot.pause()
        times: dict[str, list[float]] = {"pilot": []}
        times["filter"] = [await keystroke(pilot, frames, k, times["pilot"]) for k in TYPED[:keys]]
        app.query_one(DataTable).focus()
        times["scroll"] = [await keystroke(pilot, frames, k, times["pilot"]) for k in ["pagedown"] * 5 + ["down"] * 5]
    return times


def line(name: str, values: list[float], keys: list[str] | None = None) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    worst = f" ({keys[values.index(max(values))]})" if keys else ""
    return (f"  {name:<7} median {statistics.median(values):7.1f} ms   p95 {p95:7.1f} ms   worst {max(values):8.1f} ms"
            f"{worst}   ({len(values)} keystrokes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cartridges", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="times the keys are typed, with a pause between")
    parser.add_argument("--tmux", action="store_true",
                        help="also in a real terminal, tmux: key sent to its result captured (tui_library_tmux.py)")
    parser.add_argument("--peer-keys", type=int, default=2,
                        help="keystrokes typed into the peer (each refills 10,000 rows: seconds apiece)")
    args = parser.parse_args()
    media = cartridges(args.cartridges, args.slots)
    now = datetime.now(timezone.utc)
    rows = [cartridge_row(c, now) for c in media]
    print(f"{args.cartridges:,} cartridges, {args.slots:,} slots; {args.rounds} rounds of: / then {TYPED!r} typed, "
          f"erased, Enter, then scrolled; load average {os.getloadavg()[0]:.1f} (2 cores)")
    mine = asyncio.run(ours(media, args.rounds))
    theirs = asyncio.run(peer(rows, args.peer_keys))
    print("ours: Management's cartridge table (FilteredTable); key to its last frame")
    for name in ("filter", "scroll"):
        print(line(name, mine[name], mine["names"][name]))
    print(line("work", mine["work"]) + ": the filter itself, without the redraw")
    print(line("pilot", mine["pilot"]) + ": Pilot's round trip of the same keys (press, pause until idle)")
    print(line("floor", mine["floor"]) + ": Pilot's round trip of a key bound to nothing")
    took = mine["collections"]
    print(f"  full collections during the run: {', '.join(f'{t:.0f} ms' for t in took) or 'none'} (in the pauses: "
          f"a key landing then waits that long)")
    print("peer: Textual's DataTable refilled per keystroke; key to its last frame")
    for name in ("filter", "scroll", "pilot"):
        print(line(name, theirs[name]))
    if args.tmux:
        from tui_library_tmux import lines, measure
        print(f"in tmux: key sent with send-keys to the first capture-pane showing its result (same keys, no pauses); "
              f"load average {os.getloadavg()[0]:.1f}")
        for text in lines(measure(args.cartridges, args.slots)):
            print(text)
    ratio = statistics.median(theirs["filter"]) / statistics.median(mine["filter"])
    print(f"filtering: the peer's median keystroke takes {ratio:.0f}x ours; goal: each of ours under 100 ms "
          f"({'met' if max(mine['filter'] + mine['scroll']) < 100 else 'NOT met'}); "
          f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
