"""A deleted file restored through `tapeline tui` in tmux, as an operator does it: a running `tapeline up` (with its
embedded simulator), a group synced, a file deleted from the source; then in the console: Recovery, the group, its
point's tree, the file's version, restore to the original place, Restore. The file is back with its content."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tmux import WAIT, Tmux, needs_tmux

pytestmark = [pytest.mark.slow, needs_tmux]


def test_restore_a_deleted_file_through_the_console_in_tmux(up):
    short = Path(tempfile.mkdtemp(prefix="tl-"))  # a path the restore dialog shows on one line, wherever tmp is
    src = short / "projects"
    src.mkdir()
    (src / "budget.ods").write_bytes(b"the budget, version 1\n")
    (src / "keep.txt").write_text("keep\n")
    up.run("group", "create", "projects", "--source", str(src))
    up.run("sync", "projects", "--wait")
    os.remove(src / "budget.ods")

    tmux = Tmux()
    tmux.start_console(up)
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
        tmux.until("1 version in group projects")
        tmux.keys("r")
        tmux.until("budget.ods: written (nothing there now)")
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
        shutil.rmtree(short)
