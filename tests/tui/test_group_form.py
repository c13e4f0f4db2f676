"""The group form: what it refuses before anything reaches the daemon."""

from __future__ import annotations

from textual.widgets import Input

from pilot import run, text_of, until
from tui.app import TapelineApp
from tui.widgets.group_form import GroupForm, GroupPlan


def test_a_blank_tape_pool_on_edit_says_tape_copies_cannot_be_stopped_here(tmp_path):
    """The API sets a tape policy but cannot remove one: a blank pool must not look saved."""
    group = {"name": "hr", "sources": [{"path": str(tmp_path)}], "sync_seconds": 900, "point_times": [],
             "keep_seconds": 86400, "tape": {"pool": "weekly", "full": "Sun 22:00", "incremental": None}}
    answers = []

    async def scenario():
        app = TapelineApp(tmp_path / "no.sock", poll_seconds=30)
        async with app.run_test(size=(140, 44)) as pilot:
            app.push_screen(GroupForm(GroupPlan.of(group), browse_from=tmp_path), answers.append)
            form = await until(pilot, lambda: isinstance(app.screen, GroupForm) and app.screen.query("#tape_pool")
                               and app.screen, "the form")
            form.query_one("#tape_pool", Input).value = ""
            form.query_one("#sync", Input).value = "30m"
            await pilot.press("ctrl+s")
            error = await until(pilot, lambda: text_of(form.query_one("#form-error")), "the form's error")
            assert "cannot be stopped here" in error and "put pool weekly back" in error
            assert app.screen is form and answers == []
            form.query_one("#tape_pool", Input).value = "weekly"
            await pilot.press("ctrl+s")
            await until(pilot, lambda: answers, "the form saved")
        assert (answers[0].sync, answers[0].tape_pool) == ("30m", "weekly")
    run(scenario)
