"""Recovery: the calendar of a group's points, browsing a point's tree, finding a file by name, its versions, and a
restore to the original place (the dialog lists what is written) or elsewhere (overwriting asks, naming the file)."""

from __future__ import annotations

from textual.widgets import DataTable

from pilot import rows, run, text_of, until
from tests.appliance.daemon_harness import stop_clean
from tests.vault.report_site import served_site
from tui.app import TapelineApp
from tui.widgets.confirm import Confirm
from tui.widgets.restore import RestoreDialog


def protected(daemon, tmp_path):
    """A group `docs` with two points: report.txt changed between them, then deleted from the source."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "report.txt").write_text("first draft\n")
    (src / "sub" / "notes.txt").write_text("notes\n")
    daemon.run("group", "create", "docs", "--source", str(src))
    daemon.run("point", "docs", "--wait")
    (src / "report.txt").write_text("final version\n")
    daemon.run("point", "docs", "--wait")
    (src / "report.txt").unlink()
    return src


async def restored(pilot, daemon) -> dict:
    """The restore job the console started, once it ended."""
    job = await until(pilot, lambda: next((j for j in daemon.json("jobs") if j["kind"] == "restore"
                                           and j["state"] not in ("queued", "running")), None), "the restore's end")
    assert job["state"] == "completed", job
    return job


async def open_point(app, pilot) -> None:
    """F3, then the newest day and its newest point, as a person would: Enter, Enter."""
    await pilot.press("f3")
    await until(pilot, lambda: app.screen.query_one("#days", DataTable).row_count, "the calendar's days")
    app.screen.query_one("#days", DataTable).focus()
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.query_one("#day", DataTable).row_count, "the day's points")
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.query_one("#entries", DataTable).row_count, "the point's sources")


def test_browse_a_point_then_restore_a_deleted_file_to_its_original_place(daemon, tmp_path):
    src = protected(daemon, tmp_path)

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 44)) as pilot:
            await open_point(app, pilot)
            assert rows(app, "#day")[0][1:4] == ["disk point", str(daemon.json("points", "docs")[-1]["id"]),
                                                 "point"]
            assert [r[0].strip() for r in rows(app, "#entries")] == ["▸ " + str(src) + "/"]
            await pilot.press("enter")  # into the source
            await until(pilot, lambda: app.screen.cwd == str(src), "the source's entries")
            names = [r[0].strip() for r in rows(app, "#entries")]
            assert names == ["report.txt", "▸ sub/"]  # the newest point still holds the deleted file
            assert rows(app, "#entries")[0][1:3] == ["file", "14 B"]
            await pilot.press("enter")  # its versions
            await until(pilot, lambda: app.screen.query_one("#file-versions", DataTable).row_count == 2,
                        "both versions of report.txt")
            assert [r[4] for r in rows(app, "#file-versions")] == ["14 B", "12 B"]  # newest first
            await pilot.press("r")
            dialog = await until(pilot, lambda: isinstance(app.screen, RestoreDialog) and app.screen,
                                 "the restore dialog")
            assert text_of(dialog.query_one("#restore-lines")) == \
                f"{src}/report.txt: written (nothing there now)"
            await pilot.press("ctrl+r")
            job = await restored(pilot, daemon)
            assert job["params"]["target"] == "/"
            assert (src / "report.txt").read_text() == "final version\n"
    run(scenario)


def test_find_a_file_by_name_and_restore_an_old_version_elsewhere_over_a_file(daemon, tmp_path):
    src = protected(daemon, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    there = elsewhere / str(src).lstrip("/") / "report.txt"
    there.parent.mkdir(parents=True)
    there.write_text("in the way\n")

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 44)) as pilot:
            await pilot.press("f3")
            await until(pilot, lambda: app.screen.group == "docs", "the group picked")
            await pilot.press("slash", *"REPORT", "enter")
            await until(pilot, lambda: app.screen.query_one("#found", DataTable).row_count == 2, "two versions")
            assert [(r[0], r[1]) for r in rows(app, "#found")] == [(f"{src}/report.txt", "12 B"),
                                                                   (f"{src}/report.txt", "14 B")]
            await pilot.press("e")  # the first version (12 B), elsewhere
            dialog = await until(pilot, lambda: isinstance(app.screen, RestoreDialog) and app.screen,
                                 "the restore dialog")
            await pilot.press(*str(elsewhere))
            assert text_of(dialog.query_one("#restore-lines")) == f"{there}: exists, kept as it is (not restored)"
            await pilot.click("#restore-overwrite")
            assert text_of(dialog.query_one("#restore-lines")) == f"{there}: OVERWRITTEN (11 B now)"
            await pilot.press("ctrl+r")
            confirm = await until(pilot, lambda: isinstance(app.screen, Confirm) and app.screen, "the confirmation")
            assert [text_of(s) for s in confirm.query(".confirm-loss")] == [f"• {there}: OVERWRITTEN (11 B now)"]
            await pilot.press("y")
            job = await restored(pilot, daemon)
            assert job["params"]["overwrite"] is True and there.read_text() == "first draft\n"
    run(scenario)


def test_a_group_without_points_says_how_to_make_one(daemon, tmp_path):
    (tmp_path / "src").mkdir()
    daemon.run("group", "create", "empty", "--source", str(tmp_path / "src"))

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 44)) as pilot:
            await pilot.press("f3")
            title = app.screen.query_one("#calendar-title")
            await until(pilot, lambda: "no recovery point" in text_of(title), "the empty calendar")
            assert "tapeline sync empty --wait" in text_of(title)
    run(scenario)


def test_a_daemon_call_looked_up_on_the_event_loop_runs_on_the_worker_threads_own_client(daemon, monkeypatch):
    """Screens hand `daemon.restore` (looked up on the event loop) to a thread worker: the call must use that
    thread's connection, never the loop's, which other workers would share (their answers then cross)."""
    import threading

    from appliance.api.client import Client
    from tui.daemon import Daemon

    used = []
    original = Client.groups
    monkeypatch.setattr(Client, "groups", lambda self: used.append(self) or original(self))
    d = Daemon(daemon.socket)
    groups = d.groups  # looked up here, called in the thread below
    own = []
    worker = threading.Thread(target=lambda: (own.append(d.client), groups()))
    worker.start()
    worker.join()
    assert used == own and used[0] is not d.client


def test_an_incremental_sets_restore_names_its_base_sets_cartridges(tmp_path):
    """The site of the vault report tests: group `files` has a full set on A00001L9 and an incremental on A00002L9
    built on it; restoring the incremental reads both."""
    daemon = served_site(tmp_path)
    try:
        daemon.run("sync", "files", "--wait")  # the point the dialog's sources are read from
        incremental = next(s for s in daemon.json("tape", "sets", "files") if s["kind"] == "incremental")

        async def scenario():
            app = TapelineApp(daemon.socket, poll_seconds=0.3)
            async with app.run_test(size=(140, 44)) as pilot:
                await pilot.press("f3")
                screen = app.screen
                day = await until(pilot, lambda: next((d for d, _p, sets in screen.days
                                                       if incremental in sets), None), "the incremental's day")
                days = screen.query_one("#days", DataTable)
                days.move_cursor(row=days.get_row_index(day))
                table = screen.query_one("#day", DataTable)
                key = f"t{incremental['id']}"
                await until(pilot, lambda: key in {k.value for k in table.rows}, "the day's tape sets")
                table.focus()
                table.move_cursor(row=table.get_row_index(key))
                await pilot.press("r")
                dialog = await until(pilot, lambda: isinstance(app.screen, RestoreDialog) and app.screen,
                                     "the dialog")
                needs = [text_of(n) for n in dialog.query(".restore-need")]
                assert [n.split(" (")[0] for n in needs] == ["• A00001L9", "• A00002L9"]  # full first
                assert "tape set 2, full" in needs[0] and f"tape set {incremental['id']}, incremental" in needs[1]
        run(scenario)
    finally:
        stop_clean(daemon)
