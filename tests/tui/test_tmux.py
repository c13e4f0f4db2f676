"""The console as a person uses it, in tmux: `tapeline up` (the daemon with its embedded simulator and demo group),
then `tapeline tui`: see the health, protect a directory through the form, watch its first sync complete, find the
job in Monitoring, quit. Keys go in with send-keys; what is on the screen is read with capture-pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

TAPELINE = str(Path(sys.executable).with_name("tapeline"))
pytestmark = pytest.mark.slow


class Tmux:
    def __init__(self, tmp: Path):
        self.server = f"tapeline-{uuid.uuid4().hex[:8]}"  # a server of its own: nothing else's sessions
        self.env = {**os.environ, "TAPELINE_DATA": "", "TERM": "xterm-256color"}
        self.tmp = tmp

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, check=True,
                              env=self.env).stdout

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "ui", "-x", "140", "-y", "44", command)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "ui", key)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "ui", "-l", text)

    def screen(self, styles: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if styles else []), "-t", "ui")

    def wait_for(self, *texts: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if all(t in shown for t in texts):
                return shown
            assert time.monotonic() < deadline, f"never saw {texts} on the screen:\n{shown}"
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)


@pytest.fixture
def appliance(tmp_path):
    data = tmp_path / "data"
    log = open(tmp_path / "up.log", "ab")
    proc = subprocess.Popen([TAPELINE, "up", "--data", str(data)], stdout=log, stderr=log,
                            env={**os.environ, "TAPELINE_DATA": ""})
    deadline = time.monotonic() + 90
    while subprocess.run([TAPELINE, "--data", str(data), "status"], capture_output=True,
                         env={**os.environ, "TAPELINE_DATA": ""}).returncode not in (0, 3):
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
        time.sleep(0.2)
    yield data
    proc.terminate()
    assert proc.wait(60) == 0, (tmp_path / "up.log").read_text()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup --test installs it)")
def test_protect_a_directory_and_watch_its_sync_in_tmux(appliance, tmp_path):
    short = Path(tempfile.mkdtemp(prefix="tl-"))  # a path that fits the form's fields whole
    docs = short / "docs"
    docs.mkdir()
    (docs / "letter.txt").write_text("Dear operator,\n")
    tmux = Tmux(tmp_path)
    try:
        tmux.start(f"{TAPELINE} tui --data {appliance}")
        tmux.wait_for("Tapeline · Monitoring", "demo", "f1 Monitoring")  # the demo group's first sync, listed
        tmux.keys("F2")
        tmux.wait_for("Protection groups", "demo", "n New group")
        tmux.keys("n")
        tmux.wait_for("Protect directories: a new group")
        tmux.type("docs")  # the name field has the focus
        tmux.wait_for(" docs ")
        tmux.keys("C-l")  # the path field, under the directory tree
        # Textual moves the focus after the keys already queued: type once the cursor shows in the field (it then
        # splits the placeholder's first character from the rest, a style of its own).
        deadline = time.monotonic() + 30
        while "m/path/to/protect" in tmux.screen(styles=True):
            assert time.monotonic() < deadline, "the path field never took the focus"
            time.sleep(0.1)
        tmux.type(str(docs))
        tmux.wait_for(str(docs))
        tmux.keys("Enter")
        tmux.wait_for(f"▊ {docs}")  # in the list of sources
        tmux.keys("C-s")
        shown = tmux.wait_for("Group docs", "completed")
        row = next(line for line in shown.splitlines() if line.strip("│ ").startswith("docs "))
        assert "protected" in row and str(docs) in row, shown
        tmux.keys("F1")
        shown = tmux.wait_for("Tapeline · Monitoring", " docs ")
        assert any(" sync " in line and " docs " in line and "completed" in line for line in shown.splitlines()), \
            shown
        tmux.keys("C-q")
        deadline = time.monotonic() + 30
        while "tapeline" in tmux.tmux("list-panes", "-F", "#{pane_current_command}"):
            assert time.monotonic() < deadline, "the console did not quit on Ctrl+Q"
            time.sleep(0.2)
    except subprocess.CalledProcessError:  # the session ended: the console quit (or died: its screen says why)
        pass
    finally:
        tmux.kill()
        shutil.rmtree(short)
    out = subprocess.run([TAPELINE, "--data", str(appliance), "--json", "group", "show", "docs"], capture_output=True,
                         text=True, env={**os.environ, "TAPELINE_DATA": ""})
    assert out.returncode == 0, out.stderr
