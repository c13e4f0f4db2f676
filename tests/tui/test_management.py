"""Management against `tapeline up` and its embedded simulator: the library drawn with the cartridge in each
element, the cartridges filtered as one types, label for a pool, erase after a confirmation naming what is lost."""

from __future__ import annotations

from pilot import run, text_of, until
from tui.app import TapelineApp
from tui.screens.management import DrivePicker, PoolPicker
from tui.widgets.confirm import Confirm
from tui.widgets.filtered_table import FilteredTable
from tui.widgets.pool_form import PoolForm


def job_ended(daemon, kind: str):
    return next((j for j in daemon.json("jobs") if j["kind"] == kind and j["state"] not in ("queued", "running")),
                None)


async def cartridges(app, pilot) -> FilteredTable:
    await pilot.press("f5")
    table = app.screen.query_one("#media", FilteredTable)
    await until(pilot, lambda: table.rows, "the cartridges")
    return table


def test_the_library_is_drawn_and_the_cartridges_filter_as_one_types(up):
    media = up.json("media", "list")
    in_slot = next(c for c in media if c["location"] == "slot")

    async def scenario():
        app = TapelineApp(up.socket, poll_seconds=0.5)
        async with app.run_test(size=(160, 50)) as pilot:
            table = await cartridges(app, pilot)
            drawing = text_of(app.screen.query_one("#library-map"))
            assert drawing.startswith("vtl: ") and "Drives" in drawing and "Mail slots" in drawing
            assert f"{in_slot['location_number']:>3} {in_slot['barcode']}" in drawing
            assert len(table.rows) == len(media)
            await pilot.press("slash", *in_slot["barcode"].lower())
            assert [table.rows[i][0] for i in table.shown] == [in_slot["barcode"]]
            assert "1 of" in text_of(app.screen.query_one("#media-count"))
            await pilot.press("ctrl+a", "ctrl+k", *"no such cartridge")  # cleared, then nothing matches
            assert table.shown == [] and table.selected is None
    run(scenario)


def test_label_for_a_pool_then_erase_after_the_confirmation(up):
    up.run("pool", "create", "weekly", "--library", "vtl", "--retention", "30d")
    blank = next(c for c in up.json("media", "list") if c["location"] == "slot" and c["state"] in ("blank", "scratch")
                 and not c.get("pool"))

    async def scenario():
        app = TapelineApp(up.socket, poll_seconds=0.5)
        async with app.run_test(size=(160, 50)) as pilot:
            table = await cartridges(app, pilot)
            await pilot.press("slash", *blank["barcode"], "enter")  # Enter: to the table
            assert table.selected[0] == blank["barcode"]
            await pilot.press("l")
            await until(pilot, lambda: isinstance(app.screen, PoolPicker), "the pool picker")
            await pilot.press("enter")
            label = await until(pilot, lambda: job_ended(up, "label"), "the label job's end")
            assert label["state"] == "completed", label
            await until(pilot, lambda: table.selected and table.selected[1] == "weekly", "the cartridge in weekly")
            await pilot.press("x")
            confirm = await until(pilot, lambda: isinstance(app.screen, Confirm) and app.screen, "the confirmation")
            losses = [text_of(s) for s in confirm.query(".confirm-loss")]
            assert losses and all(blank["barcode"] in line for line in losses[:1])
            await pilot.press("y")
            erase = await until(pilot, lambda: job_ended(up, "erase"), "the erase job's end")
            assert erase["state"] == "completed", erase
    run(scenario)
    assert up.json("media", "show", blank["barcode"])["state"] in ("blank", "scratch")


def test_load_a_cartridge_into_a_drive_then_unload_the_drive(up):
    home = up.json("media", "show", "A00002L8")["location_number"]

    async def scenario():
        app = TapelineApp(up.socket, poll_seconds=0.5)
        async with app.run_test(size=(160, 50)) as pilot:
            table = await cartridges(app, pilot)
            await pilot.press("slash", *"A00002L8", "enter")
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, DrivePicker), "the drive picker")
            await pilot.press("down", "down", "enter")  # past "any free drive" and drive 0: drive 1
            await until(pilot, lambda: table.selected and table.selected[3] == "drive 1", "A00002L8 in drive 1")
            assert "  1 A00002L8" in text_of(app.screen.query_one("#library-map"))
            app.screen.query_one("#management-tabs").active = "drives-tab"  # (a click on the tab)
            drives = app.screen.query_one("#drives")
            drives.focus()
            await pilot.press("down", "u")  # drive 1
            await until(pilot, lambda: table.selected and table.selected[3] == f"slot {home}",
                        "A00002L8 back in its slot")
    run(scenario)
    jobs = [(j["kind"], j["state"]) for j in up.json("jobs") if j["kind"] in ("load", "unload")]
    assert sorted(jobs) == [("load", "completed"), ("unload", "completed")]


def test_a_new_pool_and_its_vault_from_the_pools_tab_a_refused_value_keeping_the_form(up):
    async def scenario():
        app = TapelineApp(up.socket, poll_seconds=0.5)
        async with app.run_test(size=(160, 50)) as pilot:
            await cartridges(app, pilot)
            await pilot.press("n")  # acts on the Pools tab only
            assert not isinstance(app.screen, PoolForm)
            app.screen.query_one("#management-tabs").active = "pools-tab"  # (a click on the tab)
            await pilot.pause()
            await pilot.press("n")
            form = await until(pilot, lambda: isinstance(app.screen, PoolForm) and app.screen.query("#pool-contact")
                               and app.screen.focused is not None and app.screen, "the pool form, built")
            assert form.query_one("#pool-library").value == "vtl"  # the library shown
            await pilot.press(*"weekly", "tab", "tab", *"a month", "tab", "tab", "tab", "tab", *"ironvault",
                              "tab", *"+1 555 0100", "ctrl+s")
            # Refused by the daemon: the form comes back with what was typed; the vault was made already.
            again = await until(pilot, lambda: isinstance(app.screen, PoolForm) and app.screen is not form
                                and app.screen.query("#pool-contact") and app.screen, "the form again, built")
            assert again.query_one("#pool-retention").value == "a month"
            assert [v["name"] for v in up.json("vault", "list")] == ["ironvault"]
            again.query_one("#pool-retention").value = "30d"
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "weekly" in [p["name"] for p in up.json("pool", "list")], "the pool")
            pools = app.screen.query_one("#pools")
            await until(pilot, lambda: pools.row_count == 1, "the pool in the Pools tab")
    run(scenario)
    pool = up.json("pool", "show", "weekly")
    assert (pool["library"], pool["retention_seconds"], pool["verify"]) == ("vtl", 30 * 86400, True)
    [vault] = up.json("vault", "list")
    assert (vault["name"], vault["contact"]) == ("ironvault", "+1 555 0100")
    [policy] = up.json("vault", "policy", "weekly")
    assert policy["vault"] == "ironvault"
