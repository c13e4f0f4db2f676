"""A deleted file restored through `tapeline tui` in tmux, as an operator does it: a running `tapeline up` (with its
embedded simulator), a group synced, a file deleted from the source; then in the console: Recovery, the group, its
point's tree, the file's version, restore to the original place, Restore. The file is back with its content."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.appliance.daemon_harness import TAPELINE

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")]
WAIT = 90.0


class Tmux:
    def __init__(self, name: str):
        self.server = ["tmux", "-L", name]

    def start(self, command: list[str], env: dict[str, str]) -> None:
        subprocess.run([*self.server, "new-session", "-d", "-s", "ui", "-x", "140", "-y", "44",
                        " ".join(command)], check=True, env=env)

    def keys(self, *keys: str) -> None:
        """At a person's pace: a key that moves the focus is handled before the next one arrives."""
        for key in keys:
            subprocess.run([*self.server, "send-keys", "-t", "ui", key], check=True)
            time.sleep(0.3)

    def type(self, text: str) -> None:
        subprocess.run([*self.server, "send-keys", "-t", "ui", "-l", text], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.server, "capture-pane", "-p", "-t", "ui"], capture_output=True,
                              text=True).stdout

    def until(self, text: str, then=None) -> str:
        """Poll the pane until `text` shows (running `then()` between looks, a key a person would press again)."""
        deadline = time.monotonic() + WAIT
        while text not in (shown := self.screen()):
            assert time.monotonic() < deadline, f"never saw {text!r}; the screen:\n{shown}"
            if then is not None:
                then()
            time.sleep(0.3)
        return shown

    def stop(self) -> None:
        subprocess.run([*self.server, "kill-server"], capture_output=True)


def test_restore_a_deleted_file_through_the_console_in_tmux(up, tmp_path):
    src = tmp_path / "projects"
    src.mkdir()
    (src / "budget.ods").write_bytes(b"the budget, version 1\n")
    (src / "keep.txt").write_text("keep\n")
    up.run("group", "create", "projects", "--source", str(src))
    up.run("sync", "projects", "--wait")
    os.remove(src / "budget.ods")

    tmux = Tmux(f"tapeline-test-{os.getpid()}")
    env = {**os.environ, "TERM": "xterm-256color", "TAPELINE_DATA": ""}
    tmux.start([TAPELINE, "--config", str(up.config_file), "tui"], env)
    try:
        tmux.until("Monitoring")
        tmux.keys("F3")
        tmux.until("Group demo:")  # the first group, `tapeline up`'s demo, is shown first
        tmux.keys("g", "Down", "Enter")  # the group list, the next group, pick it
        tmux.until("Group projects:")
        tmux.keys("Enter")  # the day (the cursor is on the newest)
        tmux.until("disk point")
        tmux.keys("Enter")  # its point: the group's sources
        tmux.until(f"{src}/")
        tmux.keys("Enter")  # into the source: budget.ods comes first
        tmux.until("budget.ods")
        tmux.keys("Enter")  # its versions
        tmux.until("1 versions in group projects")
        tmux.keys("r")
        tmux.until("written (nothing there now)")  # (the long path wraps in the dialog)
        tmux.keys("C-r")
        tmux.until("restore started")
        deadline = time.monotonic() + WAIT
        while not (src / "budget.ods").exists():
            assert time.monotonic() < deadline, f"budget.ods never came back; the screen:\n{tmux.screen()}"
            time.sleep(0.2)
        job = next(j for j in up.json("jobs") if j["kind"] == "restore")
        deadline = time.monotonic() + WAIT
        while (job := up.json("job", str(job["id"])))["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert job["state"] == "completed", job
        assert (src / "budget.ods").read_bytes() == b"the budget, version 1\n"
    finally:
        tmux.stop()
