"""The console's shell: the five areas, the daemon-not-running state, the palette, `tapeline tui`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter

from pilot import until
from textual.widgets._footer import FooterKey
from tui.app import TapelineApp
from tui.daemon import Daemon
from tui.widgets.daemon_state import DaemonState


def run(scenario):
    return asyncio.run(scenario())


def banner_text(app) -> str:
    state = app.screen.query_one(DaemonState)
    return str(state.render()) if state.display else ""


def test_no_daemon_shows_the_command_that_starts_one(tmp_path):
    async def scenario():
        app = TapelineApp(tmp_path / "run" / "tapeline.sock", poll_seconds=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(50):
                await pilot.pause(0.05)
                if banner_text(app):
                    break
            text = banner_text(app)
            assert "Daemon not running" in text
            assert f"tapeline up --data {tmp_path}" in text
            await pilot.press("f2")  # every area says so, not only the first
            await pilot.pause(0.1)
            assert app.current_mode == "protection"
            assert f"tapeline up --data {tmp_path}" in banner_text(app)
    run(scenario)


def test_the_banner_goes_when_the_daemon_answers(daemon):
    async def scenario():
        app = TapelineApp(daemon.socket, poll_seconds=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(100):
                await pilot.pause(0.05)
                if app.latest["status"] is not None:
                    break
            assert app.latest["status"]["daemon"]["pid"] == daemon.proc.pid
            assert banner_text(app) == ""
    run(scenario)


def test_one_key_each_for_the_five_areas(tmp_path):
    async def scenario():
        app = TapelineApp(tmp_path / "no.sock", poll_seconds=5)
        async with app.run_test(size=(120, 40)) as pilot:
            assert app.current_mode == "monitoring"
            for key, mode in [("f2", "protection"), ("f3", "recovery"), ("f4", "reporting"), ("f5", "management"),
                              ("1", "monitoring"), ("5", "management"), ("f1", "monitoring")]:
                await pilot.press(key)
                await pilot.pause()
                assert app.current_mode == mode, key
    run(scenario)


def test_every_binding_of_each_area_shows_in_a_140_column_footer(tmp_path):
    async def scenario():
        app = TapelineApp(tmp_path / "no.sock", poll_seconds=5)
        async with app.run_test(size=(140, 40)) as pilot:
            shown_anywhere = set()
            for key, mode, tab in [("f1", "monitoring", None), ("f2", "protection", None), ("f3", "recovery", None),
                                   ("f4", "reporting", None), ("f5", "management", "cartridges"),
                                   ("f5", "management", "drives-tab"), ("f5", "management", "pools-tab"),
                                   ("f5", "management", "vault")]:
                await pilot.press(key)
                if tab:
                    app.screen.query_one("#management-tabs").active = tab  # (a click on the tab)
                await pilot.pause(0.2)
                shown = [k for k in app.screen.query(FooterKey)]
                wanted = {b.binding.description for b in app.screen.active_bindings.values()
                          if b.binding.show and b.binding.description}
                assert wanted <= {k.description for k in shown}, mode  # and the palette's key
                palette = next(k for k in shown if k.description == "palette")
                assert all(0 < k.region.right <= palette.region.x for k in shown if k is not palette), \
                    (mode, tab, [(k.description, k.region) for k in shown])  # none under the palette's key either
                assert mode.capitalize() not in wanted  # the area shown needs no key of its own there
                if mode == "management":
                    shown_anywhere |= wanted
            bindings = {b.description for b in app.screen.BINDINGS}
            assert bindings <= shown_anywhere  # each of Management's keys on the tab it acts on
    run(scenario)


def test_tapeline_tui_runs_the_console_with_the_same_data_directory(tmp_path):
    """Through the CLI (`tapeline --json tui`: click parsed it) or straight (`tapeline tui --data D`): one argv."""
    from appliance.commands.output import Context
    from appliance.commands.tui_cmd import passed
    from appliance.launch import console_args, console_argv
    argv = console_argv(passed(Context(as_json=False, data_dir=str(tmp_path), config_file="/etc/t.toml")))
    assert argv == [sys.executable, "-m", "tui", "--data", str(tmp_path), "--config", "/etc/t.toml"]
    assert argv == console_argv(console_args(["--data", str(tmp_path), "tui", "--config", "/etc/t.toml"]))
    assert os.path.exists(argv[0])


def test_tapeline_tui_goes_to_the_console_without_the_cli(tmp_path):
    """`tapeline tui` with --data/--config (before or after it) execs the console at once; anything else is the
    CLI's to parse (and to refuse with its usage line)."""
    from appliance.launch import console_args
    assert console_args(["tui"]) == []
    assert console_args(["--data", str(tmp_path), "tui"]) == ["--data", str(tmp_path)]
    assert console_args(["tui", "--config=/etc/t.toml", "--data", "d"]) == ["--config", "/etc/t.toml", "--data", "d"]
    for other in (["status"], ["tui", "--help"], ["tui", "--json"], ["tui", "--data"], ["tui", "tui"], []):
        assert console_args(other) is None, other


def test_tapeline_tui_with_a_bad_configuration_says_so(tmp_path):
    import subprocess
    from pathlib import Path
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_key = 1\n")
    out = subprocess.run([str(Path(sys.executable).with_name("tapeline")), "tui", "--config", str(bad)],
                         capture_output=True, text=True, env={**os.environ, "TAPELINE_DATA": ""}, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"tapeline tui: {bad} line 1: unknown key no_such_key"), out.stderr


class CountingDaemon(Daemon):
    """The real client, counting the calls the screens make (the poller's snapshot apart)."""

    def __init__(self, socket_path):
        super().__init__(socket_path)
        self.calls: Counter = Counter()

    def __getattr__(self, name: str):
        call = super().__getattr__(name)

        def counted(*args, **kwargs):
            self.calls[(name, *args)] += 1
            return call(*args, **kwargs)
        return counted


def test_each_area_reads_its_data_once_when_first_shown(up):
    """Textual resumes a screen twice on its first switch_mode; an area loads once all the same."""
    async def scenario():
        app = TapelineApp(up.socket, poll_seconds=0.3)
        app.daemon = CountingDaemon(up.socket)
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: app.latest["status"] is not None, "the first poll")
            shown = {"protection": lambda: app.screen.query_one("#groups").display,
                     "recovery": lambda: app.screen.sets is not None and app.screen.days,
                     "reporting": lambda: app.screen.shown is not None,
                     "management": lambda: app.screen.libraries}
            for key, mode in [("f2", "protection"), ("f3", "recovery"), ("f4", "reporting"), ("f5", "management")]:
                await pilot.press(key)
                await until(pilot, lambda: app.current_mode == mode and shown[mode](), f"the {mode} area's data")
            for _ in range(6):  # a few polls more: nothing asks again while nothing changed
                await pilot.pause(0.3)
        calls = app.daemon.calls
        assert {name for name, *_ in calls} == {"groups", "points", "tape_sets", "reports", "report", "libraries",
                                                "media", "pools", "drives"}
        assert {call: n for call, n in calls.items() if n > 1} == {}  # each read once (pick lists: one report each)
    run(scenario)
