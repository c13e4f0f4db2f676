"""Management's Vault tab against `tapeline up` and its embedded library: the pick lists, then the guided export
(the dialog asks for the cartridges to be taken out of the mail slot and goes on when they are gone) and, once the
vault has sent the cartridge back, the guided import (put it in the mail slot; it is put away). The operator's hands
at the mail slot are `tapeline-vtl mailslot DIR ...`, as a person types them."""

from __future__ import annotations

from pilot import run, text_of, until
from simulators.vtl.cli import main as vtl_main
from tests.appliance.daemon_harness import start_up, stop_up
from tests.vault.mailslot_harness import operator
from tui.app import TapelineApp
from tui.widgets.mailslot_guide import MailSlotGuide


def on_tape(up, tmp_path, allocation: str = "continue") -> str:
    """Group `files` in one full set on tape in pool `weekly`, whose sets go to vault `ironvault`; its barcode."""
    src = tmp_path / "files"
    src.mkdir()
    (src / "a.txt").write_text("the only copy\n")
    up.run("group", "create", "files", "--source", str(src))
    up.run("point", "files", "--wait")
    up.run("pool", "create", "weekly", "--library", "vtl", "--retention", "30d", "--allocation", allocation)
    up.run("vault", "create", "ironvault", "--contact", "+1 555 0100")
    up.run("pool", "set", "weekly", "--vault", "ironvault")
    job = up.json("tape", "backup", "files", "--pool", "weekly", "--wait")
    return job["result"]["tape"]["cartridges"][0]


def step(app) -> str:
    return app.screen.step if isinstance(app.screen, MailSlotGuide) else ""


def detail(app) -> str:
    return text_of(app.screen.query_one("#guide-detail")) if isinstance(app.screen, MailSlotGuide) else ""


def test_the_pick_lists_and_the_guided_export_and_import_through_the_mail_slot(up, tmp_path):
    barcode = on_tape(up, tmp_path)
    library = up.data / "vtl"

    async def scenario():
        app = TapelineApp(up.socket, poll_seconds=0.5)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("f5")
            app.screen.query_one("#management-tabs").active = "vault"  # (a click on the tab)
            lists = app.screen.query_one("#pick-lists")
            await until(pilot, lambda: barcode in text_of(lists), "the cartridge on the library's pick list")
            assert "Pick list for the library" in text_of(lists) and "Pick list for the vault" in text_of(lists)

            await pilot.press("e")
            await until(pilot, lambda: step(app).startswith("Step 1 of 3") and barcode in detail(app),
                        "the cartridges ready to go")
            await pilot.press("enter")
            await until(pilot, lambda: step(app).startswith("Step 3 of 3: remove the cartridges from the mail slots"),
                        "the guide asking to empty the mail slot")
            slot = up.json("media", "show", barcode)["location_number"]
            assert f"mail slot {slot}: {barcode}" in detail(app)
            operator(library, ["open"], ["remove", str(slot)], ["close"])
            await until(pilot, lambda: step(app) == "Done: the export completed.", "the guide seeing it gone")
            await pilot.press("escape")

            # The vault receives it, then sends it back (recalled by hand: its data has not expired).
            up.run("vault", "receive", barcode, "--vault", "ironvault")
            up.run("vault", "recall", barcode, "--force")
            up.run("vault", "sent-back", barcode)
            await pilot.press("m")
            await until(pilot, lambda: step(app).startswith("Step 1 of 3: put the cartridges")
                        and barcode in detail(app).split("In the mail slots now")[0], "the cartridge expected back")
            operator(library, ["open"], ["insert", barcode], ["close"])
            await until(pilot, lambda: f": {barcode}" in detail(app).split("In the mail slots now")[-1],
                        "the cartridge seen in the mail slot")
            await pilot.press("enter")
            await until(pilot, lambda: step(app).startswith("Done: the import completed"), "the import's end")
            assert barcode in detail(app)
    run(scenario)
    shown = up.json("media", "show", barcode)
    assert (shown["rotation"], shown["location"]) == ("mountable", "slot")


def test_the_guided_export_of_more_cartridges_than_mail_slots_goes_batch_by_batch(tmp_path):
    # Two sets on two cartridges (and the export's catalog backup) to send through one mail slot: the guide names one
    # cartridge at a time, waits for it to be taken out, then names the next.
    assert vtl_main(["init", str(tmp_path / "data" / "vtl"), "--mailslots", "1"]) == 0
    up = start_up(tmp_path)
    try:
        first = on_tape(up, tmp_path, allocation="always")  # each job a new media set, on a cartridge of its own
        up.run("point", "files", "--wait")
        second = up.json("tape", "backup", "files", "--pool", "weekly", "--wait")["result"]["tape"]["cartridges"][0]
        assert second != first

        def in_mail_slot(app) -> str | None:
            shown = detail(app)
            return shown.split("mail slot 1: ")[1].split()[0] if "mail slot 1: " in shown else None

        async def scenario():
            app = TapelineApp(up.socket, poll_seconds=0.5)
            async with app.run_test(size=(160, 50)) as pilot:
                await pilot.press("f5", "e")
                await until(pilot, lambda: step(app).startswith("Step 1 of 3") and first in detail(app)
                            and second in detail(app), "both cartridges ready to go")
                await pilot.press("enter")
                taken: list[str] = []
                while step(app) != "Done: the export completed.":
                    await until(pilot, lambda: step(app) == "Done: the export completed." or (
                        "remove the cartridges from the mail slots" in step(app)
                        and in_mail_slot(app) not in (None, *taken)), "the next cartridge named, or the end")
                    if step(app) != "Done: the export completed.":
                        taken.append(in_mail_slot(app))
                        operator(up.data / "vtl", ["open"], ["remove", "1"], ["close"])
                assert {first, second} <= set(taken) and len(taken) == len(set(taken))
        run(scenario)
        assert [up.json("media", "show", b)["rotation"] for b in (first, second)] == ["courier", "courier"]
    finally:
        stop_up(up)
