"""Driving `tapeline tui` in tmux, as a person does: keys go in with send-keys, what is on the screen is read with
capture-pane. Each session runs on a tmux server of its own (nothing else's sessions), 140x44.

A module of its own (not conftest.py): see tests/appliance/daemon_harness.py for why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.appliance.daemon_harness import TAPELINE, Daemon

WAIT = 90.0  # seconds: generous, the machine is shared; a test waits for a state, never for a time
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (scripts/setup --test installs it)")


class Tmux:
    def __init__(self):
        self.server = ["tmux", "-L", f"tapeline-{uuid.uuid4().hex[:8]}"]
        self.env = {**os.environ, "TAPELINE_DATA": "", "TERM": "xterm-256color"}

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.server, *args], capture_output=True, text=True, check=True,
                              env=self.env).stdout

    def start_console(self, daemon: Daemon) -> None:
        """`tapeline --config CONFIG tui` against `daemon`."""
        self.tmux("new-session", "-d", "-s", "ui", "-x", "140", "-y", "44",
                  f"{TAPELINE} --config {daemon.config_file} tui")

    def keys(self, *keys: str) -> None:
        """At a person's pace: a key that moves the focus is handled before the next one arrives."""
        for key in keys:
            self.tmux("send-keys", "-t", "ui", key)
            time.sleep(0.3)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "ui", "-l", text)

    def screen(self, styles: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if styles else []), "-t", "ui")

    def until(self, *texts: str, then=None, timeout: float = WAIT) -> str:
        """Poll the pane until all `texts` show (running `then()` between looks: a key a person would press
        again); returns the screen."""
        return self.until_true(lambda shown: all(t in shown for t in texts), f"{texts}", then, timeout)

    def until_true(self, seen, what: str, then=None, timeout: float = WAIT) -> str:
        """Poll the pane until `seen(screen)` is truthy; returns the screen."""
        deadline = time.monotonic() + timeout
        while not seen(shown := self.screen()):
            assert time.monotonic() < deadline, f"never saw {what}; the screen:\n{shown}"
            if then is not None:
                then()
            time.sleep(0.3)
        return shown

    def row(self, shown: str, first: str) -> str | None:
        """The table row of the screen whose first cell is `first`."""
        return next((line for line in shown.splitlines() if line.strip("│ ▎").startswith(f"{first} ")), None)

    def protect(self, name: str, path) -> None:
        """In Protection: a new group `name` of the directory `path`, through the form, saved (Ctrl+S)."""
        self.keys("n")
        self.until("Protect directories: a new group")
        self.type(name)  # the name field has the focus
        self.until(f" {name} ")
        self.keys("C-l")  # the path field, under the directory tree
        # Textual moves the focus after the keys already queued: type once the cursor shows in the field (it then
        # splits the placeholder's first character from the rest, a style of its own).
        deadline = time.monotonic() + 30
        while "m/path/to/protect" in self.screen(styles=True):
            assert time.monotonic() < deadline, "the path field never took the focus"
            time.sleep(0.1)
        self.type(str(path))
        self.until(str(path))
        self.keys("Enter")
        self.until(f"▊ {path}")  # in the list of sources
        self.keys("C-s")

    def quit(self) -> None:
        """Ctrl+Q, and wait until the console has ended."""
        self.keys("C-q")
        deadline = time.monotonic() + 30
        try:
            while "tapeline" in self.tmux("list-panes", "-F", "#{pane_current_command}"):
                assert time.monotonic() < deadline, "the console did not quit on Ctrl+Q"
                time.sleep(0.2)
        except subprocess.CalledProcessError:  # the session ended with the console: it quit
            pass

    def stop(self) -> None:
        subprocess.run([*self.server, "kill-server"], capture_output=True)
