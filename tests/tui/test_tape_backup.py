"""Sending recovery points to tape from the console, against `tapeline up` and its embedded library: a full set of
the group's newest point from Protection, then an incremental of a chosen point from Recovery; each tape set shows
in the group's calendar."""

from __future__ import annotations

from textual.widgets import DataTable

from pilot import rows, run, until
from tui.app import TapelineApp
from tui.widgets.tape_backup import TapeBackupDialog


def ended(daemon, kind: str, count: int) -> list[dict] | None:
    jobs = [j for j in daemon.json("jobs") if j["kind"] == kind and j["state"] not in ("queued", "running")]
    return jobs if len(jobs) >= count else None


def test_a_full_set_from_protection_and_an_incremental_of_a_point_from_recovery(up, tmp_path):
    src = tmp_path / "files"
    src.mkdir()
    (src / "a.txt").write_text("first\n")
    up.run("group", "create", "files", "--source", str(src))
    up.run("point", "files", "--wait")
    up.run("pool", "create", "weekly", "--library", "vtl", "--retention", "30d")

    async def scenario():
        app = TapelineApp(up.socket, poll_seconds=0.3)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("f2")
            await until(pilot, lambda: [r[0] for r in rows(app, "#groups")] == ["demo", "files"], "the groups")
            await pilot.press("down", "t")  # on group files
            dialog = await until(pilot, lambda: isinstance(app.screen, TapeBackupDialog) and app.screen,
                                 "the tape backup dialog")
            assert dialog.group == "files" and dialog.point is None
            await pilot.press("enter")  # the first pool, a full set
            full = await until(pilot, lambda: ended(up, "tape-backup", 1), "the tape backup's end")
            assert full[0]["state"] == "completed", full

            (src / "b.txt").write_text("second\n")
            up.run("point", "files", "--wait")
            await pilot.press("f3", "g")
            await until(pilot, lambda: app.screen.query_one("#rgroups").has_focus, "the group list")
            await pilot.press("down", "enter")  # files, under demo
            day = app.screen.query_one("#day", DataTable)
            await until(pilot, lambda: sum("disk point" in str(r[1]) for r in rows(app, "#day")) == 2,
                        "the day's two points")
            await pilot.press("enter")  # the day: its points and sets, newest first
            await until(pilot, lambda: day.has_focus, "the day's table")
            newest = rows(app, "#day")[0]
            assert str(newest[1]) == "disk point"
            await pilot.press("t")
            dialog = await until(pilot, lambda: isinstance(app.screen, TapeBackupDialog) and app.screen,
                                 "the dialog for the point")
            assert dialog.point == newest[2]
            await pilot.press("tab", "down", "enter", "ctrl+s")  # the kind: incremental
            await until(pilot, lambda: ended(up, "tape-backup", 2), "the incremental's end")
            shown = await until(pilot, lambda: [r for r in rows(app, "#day") if str(r[1]) == "tape set"]
                                if len(rows(app, "#day")) == 4 else None, "both tape sets in the calendar")
            assert sorted(r[3] for r in shown) == ["full", "incremental"]
    run(scenario)
    sets = up.json("tape", "sets", "files")
    assert sorted((s["kind"], s["state"], s["pool"]) for s in sets) == [("full", "ok", "weekly"),
                                                                       ("incremental", "ok", "weekly")]
