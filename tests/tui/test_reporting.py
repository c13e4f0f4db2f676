"""Reporting: a report shown in place, exported to a file (asking before it replaces one), mailed now."""

from __future__ import annotations

from textual.widgets import TextArea

from pilot import run, until
from tests.appliance.daemon_harness import make_daemon, stop_clean
from tests.appliance.mail_harness import MailServer
from tests.vault.report_site import served_site
from tui.app import TapelineApp


def shown_report(app) -> str:
    area = app.screen.query_one("#report", TextArea)
    return area.text if area.display else ""


def with_group(daemon, tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    daemon.run("group", "create", "books", "--source", str(src))
    daemon.run("sync", "books", "--wait")


def test_a_report_is_shown_in_place_and_exported_to_a_file(daemon, tmp_path):
    with_group(daemon, tmp_path)
    out = tmp_path / "out" / "protection.csv"
    out.parent.mkdir()

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.5)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("f4")
            text = await until(pilot, lambda: shown_report(app), "the first report")
            assert text.startswith("Protection status") and "books" in text
            # The screen is drawn, not covered by a loading indicator while its report is shown (a `loading`
            # attribute of the screen once did that: a blank Reporting in a terminal).
            assert app.screen.query_one("#reporting").region.height > 0 and not app.screen.loading
            await pilot.press("down")  # the list has the focus: the next report, jobs
            await until(pilot, lambda: shown_report(app).startswith("Job history"), "the jobs report")
            await pilot.click("#report-list", offset=(2, 1))  # the first again, by mouse
            await until(pilot, lambda: shown_report(app).startswith("Protection status"), "the first again")
            await pilot.press("x")
            prompt = await until(pilot, lambda: app.screen.query("#prompt-input") and app.screen, "the export prompt")
            prompt.query_one("#prompt-input").value = str(out)
            await pilot.press("enter")
            await until(pilot, out.exists, "the exported file")
            assert out.read_text().splitlines()[0].startswith("group,")
            assert out.stat().st_mode & 0o777 == 0o644  # as `tapeline report --out` writes it: a file to hand on
            # Again to the same file: it asks first, and No keeps the file.
            out.write_text("keep me")
            await pilot.press("x")
            prompt = await until(pilot, lambda: app.screen.query("#prompt-input") and app.screen, "the prompt")
            prompt.query_one("#prompt-input").value = str(out)
            await pilot.press("enter")
            dialog = await until(pilot, lambda: app.screen.query(".confirm-loss") and app.screen, "the confirmation")
            assert f"the file {out} as it is now (7 bytes)" in str(dialog.query_one(".confirm-loss").render())
            await pilot.press("escape")
            await pilot.pause(0.3)
        assert out.read_text() == "keep me"
    run(scenario)


def test_mail_now_without_mail_configured_says_how_to_configure_it(daemon):
    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.5)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("f4")
            await until(pilot, lambda: shown_report(app), "the first report")
            await pilot.press("m")
            note = await until(pilot, lambda: next((n for n in app._notifications if n.title == "Mail failed"), None),
                               "the error")
            assert note.message.startswith("mail is not configured") and "[mail]" in note.message
    run(scenario)


def test_mail_now_sends_the_report(tmp_path):
    smtp = MailServer().start()
    d = make_daemon(tmp_path, None)
    d.config_file.write_text(d.config_file.read_text() + (
        f'[mail]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\nsender = "tapeline@example.com"\n'
        'recipients = ["ops@example.com"]\nsummary = ""\n'))
    d.start()
    try:
        async def scenario():
            app = TapelineApp(d.socket, poll_seconds=0.5)
            async with app.run_test(size=(140, 40)) as pilot:
                await pilot.press("f4")
                await until(pilot, lambda: shown_report(app), "the first report")
                await pilot.press("m")
                await until(pilot, lambda: any(n.title == "Mailed" for n in app._notifications), "the mail queued")
        run(scenario)
        [(_, rcpts, msg, _)] = smtp.wait(1)
    finally:
        assert d.stop() == 0
        smtp.stop()
    assert rcpts == ["ops@example.com"] and "Protection status" in msg["Subject"]


def test_a_report_about_one_group_is_produced_for_a_group(tmp_path):
    """restore-needs takes a group: the console produces it for the first group (g picks another), as
    `tapeline report restore-needs files` does. The site of the vault report tests: group `files` has a full set on
    A00001L9 and an incremental on A00002L9."""
    daemon = served_site(tmp_path)
    try:

        async def scenario():
            app = TapelineApp(daemon.socket, poll_seconds=0.5)
            async with app.run_test(size=(140, 40)) as pilot:
                await until(pilot, lambda: app.latest["status"] is not None, "the first poll")
                await pilot.press("f4")
                await until(pilot, lambda: shown_report(app), "the first report")
                screen = app.screen
                names = [r["name"] for r in screen.reports]
                screen.query_one("#report-list").highlighted = names.index("restore-needs")
                text = await until(pilot, lambda: "restoring group" in shown_report(app) and shown_report(app),
                                   "the restore-needs report")
                assert text.startswith(f"{screen.shown['title']}, ") and "restoring group files as of" in text
                assert "A00001L9" in text and "A00002L9" in text
                assert str(screen.query_one("#report-title").render()).startswith(
                    f"{screen.shown['title']} of group files")
                await pilot.press("m")  # not mailed: the daemon would refuse it without a group
                await until(pilot, lambda: any("not mailed: export it (x)" in str(n.message)
                                               for n in app._notifications), "the note")
        run(scenario)
    finally:
        stop_clean(daemon)
