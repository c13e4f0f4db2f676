"""Monitoring: acknowledge an alert, run its fix, cancel a running job, retry a finished one."""

from __future__ import annotations

import os
import shutil

import pytest

from appliance.errors import TapelineError
from appliance.text import text_time
from pilot import rows, run, until
from tests.appliance.daemon_harness import make_daemon
from tui.app import TapelineApp
from tui.daemon import Daemon
from tui.screens.monitoring import FINISHED


def failed_sync_alert(daemon, tmp_path) -> int:
    """A group whose source went away, and the error alert its failed sync raised."""
    src = tmp_path / "gone"
    src.mkdir()
    daemon.run("group", "create", "g", "--source", str(src))
    shutil.rmtree(src)
    daemon.run("sync", "g", "--wait", check=1)
    return next(a["id"] for a in daemon.json("alerts") if a["id"] is not None)


def test_acknowledge_an_alert(daemon, tmp_path):
    alert_id = failed_sync_alert(daemon, tmp_path)

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: [r for r in rows(app, "#alerts") if r[0] == str(alert_id)], "the alert")
            table = app.screen.query_one("#alerts")
            table.focus()
            table.move_cursor(row=table.get_row_index(str(alert_id)))
            fix = str(app.screen.query_one("#alert-fix").render())
            assert "tapeline sync g" in fix and "(f runs it)" in fix
            await pilot.press("a")
            await until(pilot, lambda: not [r for r in rows(app, "#alerts") if r[0] == str(alert_id)],
                        "the alert gone from the open ones")
        acked = next(a for a in daemon.json("alerts", "--all") if a["id"] == alert_id)
        assert acked["acknowledged"] is True
    run(scenario)


def test_alerts_name_their_object_and_l_shows_the_closed_ones_with_their_state(daemon, tmp_path):
    """As `tapeline alerts` and `tapeline alerts --all` show them."""
    resolved = failed_sync_alert(daemon, tmp_path)
    (tmp_path / "gone").mkdir()
    daemon.run("sync", "g", "--wait")  # the next good sync resolves it
    src = tmp_path / "h"
    src.mkdir()
    daemon.run("group", "create", "h", "--source", str(src))
    src.rmdir()
    daemon.run("sync", "h", "--wait", check=1)
    acked = next(a for a in daemon.json("alerts") if a["id"] is not None)["id"]
    daemon.run("alerts", "ack", str(acked))
    src.mkdir()
    daemon.run("group", "create", "i", "--source", str(src))
    src.rmdir()
    daemon.run("sync", "i", "--wait", check=1)
    still = next(a for a in daemon.json("alerts") if a["id"] is not None)
    kept = {a["id"]: a for a in daemon.json("alerts", "--all")}

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(pilot, lambda: [r for r in rows(app, "#alerts") if r[0] == str(still["id"])], "the alert")
            assert [r[3] for r in rows(app, "#alerts") if r[0] == str(still["id"])] == ["group i"]
            assert {r[0] for r in rows(app, "#alerts")} & {str(resolved), str(acked)} == set()
            await pilot.press("l")
            shown = await until(pilot, lambda: {r[0]: r for r in rows(app, "#alerts") if len(r) == 6}, "every alert")
            assert shown[str(resolved)][3:] == ["group g", kept[resolved]["message"],
                                                f"resolved {text_time(kept[resolved]['resolved'])}"]
            assert shown[str(acked)][3] == "group h" and shown[str(acked)][5] == "acknowledged"
            assert shown[str(still["id"])][5] == "open"
            assert "All alerts" in str(app.screen.query_one("#alerts-title").render())
            table = app.screen.query_one("#alerts")
            table.move_cursor(row=table.get_row_index(str(resolved)))
            await pilot.press("f")  # a resolved alert's fix is not run again
            await until(pilot, lambda: any("its fix is not needed now" in str(n.message) for n in app._notifications),
                        "the note")
            await pilot.press("l")
            await until(pilot, lambda: [r[0] for r in rows(app, "#alerts") if r[0] != "-"] == [str(still["id"])],
                        "the open one only (and those derived from the groups' state, which have no id)")
    jobs = len(daemon.json("jobs"))
    run(scenario)
    assert len(daemon.json("jobs")) == jobs


def test_run_an_alerts_fix_through_the_api(daemon, tmp_path):
    alert_id = failed_sync_alert(daemon, tmp_path)
    (tmp_path / "gone").mkdir()  # the source is back: the fix (`tapeline sync g`) now works

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: [r for r in rows(app, "#alerts") if r[0] == str(alert_id)], "the alert")
            table = app.screen.query_one("#alerts")
            table.move_cursor(row=table.get_row_index(str(alert_id)))
            await pilot.press("f")
            await until(pilot, lambda: [r for r in rows(app, "#jobs") if r[1] == "sync" and r[3] == "completed"],
                        "the fix's sync completed")
    run(scenario)
    assert [j["state"] for j in daemon.json("jobs")] == ["completed", "failed"]


@pytest.fixture
def held_daemon(tmp_path):
    """A daemon whose jobs wait at their start until the test lets them go (appliance/ops/jobs.py, HOLD_ENV)."""
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "running").touch()
    d = make_daemon(tmp_path, None, env={"TAPELINE_TEST_HOLD": str(hold)}).start()
    d.hold = hold
    yield d
    (hold / "running").unlink(missing_ok=True)
    for fifo in hold.glob("job-*"):  # let a job still held go (one waiting on its FIFO), so the daemon stops at once
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # nobody reads it: that job went on already
            pass
    assert d.stop() == 0


def held_sync(d, tmp_path) -> int:
    """Group g and its sync, held at its start (the job stays "running" until `release`)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    d.run("group", "create", "g", "--source", str(src))
    return d.json("sync", "g")["job"]


def release(d, job_id: int) -> None:
    """Let the held job go on (it then meets any cancel asked meanwhile)."""
    (d.hold / "running").unlink()
    with open(d.hold / f"job-{job_id}-running", "wb"):
        pass


async def cancel_dialog(app, pilot, job_id: int):
    """With the job's row under the cursor, press c: the confirmation shown."""
    await until(pilot, lambda: [r for r in rows(app, "#jobs") if r[0] == str(job_id) and r[3] == "running"],
                "the running job")
    table = app.screen.query_one("#jobs")
    table.focus()
    table.move_cursor(row=table.get_row_index(str(job_id)))
    await pilot.press("c")
    return await until(pilot, lambda: app.screen.query("#confirm-losses") and app.screen, "the confirmation")


def test_cancel_a_running_job(held_daemon, tmp_path):
    d = held_daemon
    job_id = held_sync(d, tmp_path)

    async def scenario():
        app = TapelineApp(d.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            dialog = await cancel_dialog(app, pilot, job_id)
            assert f"job {job_id}: sync of g (running)" in str(dialog.query_one(".confirm-loss").render())
            await pilot.press("y")
            await until(pilot, lambda: d.json("job", str(job_id))["state"] != "running" or
                        "cancel requested" in " ".join(n.message for n in app._notifications), "the cancel asked")
            release(d, job_id)
            await until(pilot, lambda: [r for r in rows(app, "#jobs") if r[0] == str(job_id) and r[3] == "cancelled"],
                        "the job cancelled")
    run(scenario)
    assert d.json("job", str(job_id))["reason"] == "cancelled by request"


def test_escape_keeps_the_job_running(held_daemon, tmp_path):
    d = held_daemon
    job_id = held_sync(d, tmp_path)

    async def scenario():
        app = TapelineApp(d.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await cancel_dialog(app, pilot, job_id)
            await pilot.press("escape")
            await until(pilot, lambda: not app.screen.query("#confirm-losses"), "the confirmation gone")
            release(d, job_id)  # a cancel asked would meet the job here: it ends cancelled, not completed
            await until(pilot, lambda: [r for r in rows(app, "#jobs") if r[0] == str(job_id) and r[3] in FINISHED],
                        "the job ended")
    run(scenario)
    assert d.json("job", str(job_id))["state"] == "completed"


async def retry(pilot, app, job_id: int) -> None:
    """`r` on the job's row in Monitoring's job list."""
    await until(pilot, lambda: rows(app, "#jobs"), "the jobs")
    table = app.screen.query_one("#jobs")
    table.move_cursor(row=table.get_row_index(str(job_id)))
    await pilot.press("r")


def test_retry_submits_the_same_job_again(daemon, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    daemon.run("group", "create", "g", "--source", str(src))
    daemon.run("check", "g", "--full", "--wait", check=None)
    first = daemon.json("jobs")[0]

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await retry(pilot, app, first["id"])
            await until(pilot, lambda: len(rows(app, "#jobs")) == 2, "the job submitted again")
    run(scenario)
    again = daemon.json("jobs")[0]
    assert (again["id"], again["kind"], again["group_name"], again["params"]) == (
        first["id"] + 1, first["kind"], "g", first["params"])


def test_retry_a_restore(daemon, tmp_path):
    """A restore again: the same point, target and paths; one that overwrote is refused (Recovery's dialog asks)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    daemon.run("group", "create", "g", "--source", str(src))
    daemon.run("sync", "g", "--wait")
    daemon.run("restore", "g", str(src / "f"), "--to", str(tmp_path / "out"), "--wait")
    first = daemon.json("jobs")[0]
    restored = tmp_path / "out" / str(src / "f").lstrip("/")
    restored.unlink()  # so the retry writes it again (not "exists, not replaced")

    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await retry(pilot, app, first["id"])
            await until(pilot, lambda: [r for r in rows(app, "#jobs") if r[1] == "restore" and r[3] == "completed"
                                        and r[0] != str(first["id"])], "the restore done again")
    run(scenario)
    again = daemon.json("jobs")[0]
    assert (again["kind"], again["params"]) == ("restore", first["params"])  # the same snapshot, target, paths
    assert restored.read_text() == "data"

    daemon.run("restore", "g", "--to", str(tmp_path / "out"), "--overwrite", "--wait")
    overwrote = daemon.json("jobs")[0]
    with pytest.raises(TapelineError, match="overwrite") as refused:
        Daemon(daemon.socket).retry(overwrote)
    assert "Recovery (F3)" in refused.value.fix
    assert daemon.json("jobs")[0]["id"] == overwrote["id"]
