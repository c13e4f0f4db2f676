"""Protection: create a group in the form and watch its first sync complete; pause and resume; sync now; the empty
list says what to do."""

from __future__ import annotations

from textual.widgets import DirectoryTree, OptionList

from pilot import rows, run, text_of, until
from tui.app import TapelineApp


def group_row(app, name: str) -> list[str] | None:
    return next((r for r in rows(app, "#groups") if r[0] == name), None)


def test_no_groups_says_how_to_protect_a_directory(daemon):
    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("f2")
            empty = app.screen.query_one("#groups-empty")
            await until(pilot, lambda: empty.display and app.latest["status"] is not None, "the empty state")
            assert text_of(empty) == "No groups yet: press n to protect a directory."
    run(scenario)


def test_create_a_group_in_the_form_and_see_its_first_sync_complete(daemon, tmp_path):
    src = tmp_path / "browse" / "projects"
    src.mkdir(parents=True)
    (src / "plan.txt").write_text("the plan\n")
    (tmp_path / "browse" / "other").mkdir()

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3, browse_from=tmp_path / "browse")
        async with app.run_test(size=(140, 44)) as pilot:
            await pilot.press("f2")
            await until(pilot, lambda: app.latest["status"] is not None, "the daemon's status")
            await pilot.press("n")
            form = await until(pilot, lambda: app.screen if app.screen.id != "_default" and
                               app.screen.query(DirectoryTree) else None, "the group form")
            await pilot.press(*"projects", "tab", *"5m", "tab", *"none", "tab", *"3d")
            # The source is picked in the directory tree, as a person would: down to "projects", Enter.
            tree = form.query_one(DirectoryTree)
            tree.focus()
            await until(pilot, lambda: tree.last_line >= 2, "the tree's entries")
            names = [tree.get_node_at_line(i).label.plain for i in range(tree.last_line + 1)]
            await pilot.press(*["down"] * names.index("projects"), "enter")
            sources = form.query_one("#sources", OptionList)
            await until(pilot, lambda: sources.option_count == 1, "the picked source in the list")
            assert sources.get_option_at_index(0).id == str(src)
            await pilot.press("ctrl+s")
            row = await until(pilot, lambda: group_row(app, "projects"), "the new group in the table")
            assert row[2] == str(src) and row[3] == "5m"
            done = await until(pilot, lambda: (r := group_row(app, "projects")) and "completed" in r[4]
                               and r[1] == "protected" and r, "the first sync completed, the group protected")
            assert int(done[7]) >= 1  # its recovery points
        group = daemon.json("group", "show", "projects")
        assert (group["sync_seconds"], group["point_times"], group["keep_seconds"]) == (300, [], 3 * 86400)
        assert [s["path"] for s in group["sources"]] == [str(src)]
    run(scenario)


def test_a_refused_group_keeps_the_form_and_shows_the_fix(daemon, tmp_path):
    src = tmp_path / "src"
    src.mkdir()

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3, browse_from=tmp_path)
        async with app.run_test(size=(140, 44)) as pilot:
            await pilot.press("f2")
            await pilot.press("n")
            await until(pilot, lambda: app.screen.query("#path"), "the group form")
            await pilot.press(*"g1", "tab", *"soon")  # not a duration
            app.screen.query_one("#path").focus()
            await pilot.press(*str(src), "enter", "ctrl+s")
            await until(pilot, lambda: any("failed" in (n.title or "") for n in app._notifications), "the error")
            note = next(n for n in app._notifications if "failed" in (n.title or ""))
            assert "soon" in note.message and "Fix:" in note.message
            form = await until(pilot, lambda: app.screen.query("#sync") and app.screen, "the form again")
            assert form.query_one("#sync").value == "soon" and form.query_one("#name").value == "g1"
        assert daemon.json("group", "list") == []
    run(scenario)


def test_pause_resume_and_sync_now(daemon, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    daemon.run("group", "create", "g", "--source", str(src))

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("f2")
            await until(pilot, lambda: group_row(app, "g"), "the group")
            await pilot.press("space")
            await until(pilot, lambda: group_row(app, "g")[1] == "paused", "the group paused")
            assert daemon.json("group", "show", "g")["paused"] is True
            await pilot.press("space")
            await until(pilot, lambda: group_row(app, "g")[1] != "paused", "the group resumed")
            await pilot.press("s")
            await until(pilot, lambda: "completed" in group_row(app, "g")[4], "the sync completed")
        assert daemon.json("group", "show", "g")["paused"] is False
        assert [j["kind"] for j in daemon.json("jobs")] == ["sync"]
    run(scenario)


def test_edit_a_group_in_the_form(daemon, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    daemon.run("group", "create", "g", "--source", str(first), "--sync", "15m")

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3, browse_from=tmp_path)
        async with app.run_test(size=(140, 44)) as pilot:
            await pilot.press("f2")
            await until(pilot, lambda: group_row(app, "g"), "the group")
            await pilot.press("e")
            form = await until(pilot, lambda: app.screen.query("#sync") and app.screen, "the form, filled in")
            assert form.query_one("#name").value == "g" and form.query_one("#name").disabled
            assert form.query_one("#sync").value == "15m"
            form.query_one("#sync").value = "30m"
            await pilot.press("ctrl+l")
            # Typed before the focus moved, the path would land in another field: wait for it, as a person sees it.
            await until(pilot, lambda: form.query_one("#path").has_focus, "the path field focused")
            await pilot.press(*str(second), "enter")
            await until(pilot, lambda: form.query_one("#sources", OptionList).option_count == 2, "two sources")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: (r := group_row(app, "g")) and r[3] == "30m", "the new interval")
    run(scenario)
    group = daemon.json("group", "show", "g")
    assert group["sync_seconds"] == 1800 and [s["path"] for s in group["sources"]] == [str(first), str(second)]
