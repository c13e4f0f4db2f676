"""The console as a person uses it, in tmux: `tapeline up` (the daemon with its embedded simulator and demo group),
then `tapeline tui`: see the health, protect a directory through the form, watch its first sync complete, find the
job in Monitoring, quit."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tmux import Tmux, needs_tmux

pytestmark = [pytest.mark.slow, needs_tmux]


def test_protect_a_directory_and_watch_its_sync_in_tmux(up):
    short = Path(tempfile.mkdtemp(prefix="tl-"))  # a path that fits the form's fields whole
    docs = short / "docs"
    docs.mkdir()
    (docs / "letter.txt").write_text("Dear operator,\n")
    tmux = Tmux()
    try:
        tmux.start_console(up)
        tmux.until("Tapeline · Monitoring", "demo", "f2 Protection")  # the demo group's first sync, listed
        tmux.keys("F2")
        tmux.until("Protection groups", "demo", "n New group")
        tmux.protect("docs", docs)
        # The group's state, not its last job: a second sync may already run when the first has completed.
        shown = tmux.until_true(lambda s: "protected" in (tmux.row(s, "docs") or ""), "group docs protected")
        assert str(docs) in tmux.row(shown, "docs"), shown
        tmux.keys("F1")
        tmux.until_true(lambda s: any(" sync " in line and " docs " in line and "completed" in line
                                      for line in s.splitlines()), "the completed sync of docs in Monitoring")
        tmux.quit()
    finally:
        tmux.stop()
        shutil.rmtree(short)
    assert up.json("group", "show", "docs")["sources"][0]["path"] == str(docs)
