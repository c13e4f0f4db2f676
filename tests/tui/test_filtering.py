"""Management's cartridge filter as an operator types into it, with 2,000 cartridges: each letter is answered in the
frame that draws it, the rows are those that match whatever was typed (narrowed or not), the footer dims the keys the
field takes and lights them again, and Python's full collections wait until the keys stop (and then leave what
survived them out of the next ones). The daemon's answers are
fixed (test_recovery_snapshots.py's, with more cartridges); the filtering against a real daemon is in
test_management.py."""

from __future__ import annotations

import gc

from pilot import run, text_of, until
from test_recovery_snapshots import RecordedMedia, cart, console

from tui.widgets.filtered_table import FilteredTable, FilterInput
from tui.widgets.footer import AreaFooter, FooterKey

MEDIA = [cart(f"L{i:05d}L8", ["scratch", "full", "append"][i % 3], "slot", i + 1, pool=f"pool{i % 7}")
         for i in range(2000)]


class ManyCartridges(RecordedMedia):
    def media(self, pool=None, state=None):
        return MEDIA


def matching(table: FilteredTable, text: str) -> list[str]:
    """What the filter is to show for `text`, found afresh: every word in the row, any case."""
    words = text.lower().split()
    return [r[0] for r in table.rows if all(w in " ".join(str(c) for c in r).lower() for w in words)]


async def cartridges(app, pilot) -> FilteredTable:
    await pilot.press("f5")
    table = app.screen.query_one("#media", FilteredTable)
    await until(pilot, lambda: len(table.rows) == len(MEDIA), "the cartridges")
    return table


def test_each_letter_typed_is_answered_in_the_frame_that_draws_it():
    async def scenario():
        app = console(ManyCartridges())
        async with app.run_test(size=(160, 50)) as pilot:
            table = await cartridges(app, pilot)
            count = app.screen.query_one("#media-count")
            frames: list[tuple[int, str]] = []  # what each frame the app composed showed: rows, count
            compose_frame = app._display

            def display(screen, update):
                compose_frame(screen, update)
                if update is not None:
                    frames.append((len(table.shown), text_of(count).split(";")[0]))
            app._display = display
            await pilot.press("slash")
            await until(pilot, lambda: isinstance(app.focused, FilterInput), "the filter focused")
            await pilot.pause(0.3)
            typed = ""
            for key in ["l", "0", "1", "backspace", "backspace", "backspace"]:  # 2,000, 2,000, 1,000 rows...
                typed = typed[:-1] if key == "backspace" else typed + key
                want = len(matching(table, typed))
                frames.clear()
                await pilot.press(key)
                await until(pilot, lambda: frames and frames[-1][0] == want, f"{typed!r} drawn")
                await pilot.pause(0.3)  # any later frame for the same key
                assert frames == [(want, f"{want:,} of 2,000 cartridges")], typed
    run(scenario)


def test_the_rows_shown_are_those_matching_what_is_typed_whether_narrowed_or_not():
    async def scenario():
        app = console(ManyCartridges())
        async with app.run_test(size=(160, 50)) as pilot:
            table = await cartridges(app, pilot)
            field = app.screen.query_one("#media-filter", FilterInput)
            for text in ["l0", "l01", "l01 pool", "l01 pool3", "l01 pool3 full", "l01 pool3 ful", "pool3 l01",
                         "l01 pool35", "L0199", "l0199 ", "l0199 x", "l0199", "", "FULL pool6", "full pool6 l00"]:
                field.value = text
                assert [table.rows[i][0] for i in table.shown] == matching(table, text), text
            assert "L00006L8" not in [table.rows[i][0] for i in table.shown]  # 'full' is i % 3 == 1
    run(scenario)


def test_the_footer_dims_the_letters_the_filter_takes_and_lights_them_again():
    async def scenario():
        app = console(ManyCartridges())
        async with app.run_test(size=(160, 50)) as pilot:
            await cartridges(app, pilot)
            footer = app.screen.query_one(AreaFooter)
            keys = await until(pilot, lambda: {k.key: k for k in footer.query(FooterKey)}, "the footer's keys")
            assert not any(k.has_class("-disabled") for k in keys.values())
            await pilot.press("slash")
            letters = ["i", "l", "x", "o", "u", "e", "m"]
            await until(pilot, lambda: all(keys[k].has_class("-disabled") for k in letters), "the letters dimmed")
            assert not keys["f1"].has_class("-disabled")  # the field does not take F1: it still works
            assert {k.key: k for k in footer.query(FooterKey)} == keys  # the same keys: none mounted again
            await pilot.press("enter")  # to the table
            await until(pilot, lambda: not any(k.has_class("-disabled") for k in keys.values()), "the letters lit")
            assert {k.key: k for k in footer.query(FooterKey)} == keys
    run(scenario)


def test_full_collections_wait_for_the_keys_to_stop():
    full: list[str] = []

    def note(phase, info):
        if info["generation"] == 2:
            full.append(phase)

    async def scenario():
        app = console(ManyCartridges())
        async with app.run_test(size=(160, 50)) as pilot:
            table = await cartridges(app, pilot)
            table.focus()
            kept = []
            gc.callbacks.append(note)
            try:
                for _ in range(5):
                    await pilot.press("down")
                    full.clear()
                    # right after a key: enough long-lived objects for Python's own rule to walk all of them
                    kept.extend([] for _ in range(40_000))
                    assert full == [], "a full collection ran while keys were coming"
                await until(pilot, lambda: "stop" in full, "a full collection once the keys stopped")
                # what survived it is left out of the next ones, which walk only what is new
                await until(pilot, lambda: gc.get_freeze_count() > len(kept), "the survivors frozen")
            finally:
                gc.callbacks.remove(note)
    thresholds = gc.get_threshold()
    run(scenario)
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0  # the console's own rule ends with it
