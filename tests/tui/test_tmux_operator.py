"""The issue's "Done when", as a new operator would do it, in tmux against a running `tapeline up` (the daemon and
its embedded virtual library): see the appliance's health, protect a directory, watch its sync, send its recovery
point to tape, export the cartridge through the mail slot, and restore a deleted file, all from `tapeline tui`.

The site's tape setup is made in the console too: a pool on the library and the vault it rotates to, in
Management's Pools tab. The operator's hands at the mail slot are `tapeline-vtl mailslot DIR ...`; everything else is
keys sent to the console and what its screen shows."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.vault.mailslot_harness import operator
from tmux import WAIT, Tmux, needs_tmux

pytestmark = [pytest.mark.slow, needs_tmux]


def test_a_new_operator_protects_sends_to_tape_exports_and_restores_from_the_console(up):
    short = Path(tempfile.mkdtemp(prefix="tl-"))  # a path that fits the form's fields whole
    docs = short / "docs"
    docs.mkdir()
    (docs / "a-letter.txt").write_text("Dear operator,\n")
    (docs / "notes.txt").write_text("keep\n")
    tmux = Tmux()
    try:
        tmux.start_console(up)
        # Health: Monitoring first, the alerts (none) and `tapeline up`'s demo group's first sync.
        tmux.until("Tapeline · Monitoring", "No open alerts", " demo ")

        # The tape setup: Management, the Pools tab (the tabs are two Tabs away), n, the form.
        tmux.keys("F5")
        tmux.until("Tapeline · Management", "e Export")
        tmux.keys("Tab", "Tab", "Right", "Right")
        tmux.until("n New pool", "No pool yet")
        tmux.keys("n")
        tmux.until("A new media pool")
        tmux.type("weekly")
        tmux.keys("Tab", "Tab")  # the library is the one shown
        tmux.type("30d")
        tmux.keys("Tab", "Tab", "Tab", "Tab")  # default allocation and reuse delay, verify on
        tmux.type("ironvault")
        tmux.keys("Tab")
        tmux.type("+1 555 0100")
        tmux.keys("C-s")
        tmux.until_true(lambda s: re.search(r"│ *weekly +vtl ", s), "pool weekly in the Pools tab")
        assert up.json("vault", "policy", "weekly")[0]["vault"] == "ironvault"

        # Protect a directory, and watch its first sync until the group is protected.
        tmux.keys("F2")
        tmux.until("Protection groups", "n New group")
        tmux.protect("docs", docs)
        tmux.until_true(lambda s: "protected" in (tmux.row(s, "docs") or ""), "group docs protected")

        # Its recovery point to tape: the group under the cursor, t, the pool (the only one), a full set.
        tmux.until("Group demo")
        tmux.keys("Down")
        tmux.until("Group docs")
        tmux.keys("t")
        tmux.until("Send group docs to tape", "weekly (library vtl)")
        tmux.keys("Enter")
        tmux.until("tape backup of docs to pool weekly")
        tmux.keys("F1")
        tmux.until_true(lambda s: any("tape-backup" in line and "completed" in line for line in s.splitlines()),
                        "the tape backup completed in Monitoring")
        barcode = up.json("tape", "sets", "docs")[0]["cartridges"][0]["barcode"]

        # Export it through the mail slot, guided: the operator empties the mail slot when asked.
        tmux.keys("F5")
        tmux.until("Tapeline · Management", "e Export")
        tmux.keys("e")
        tmux.until("Step 1 of 3", barcode)
        tmux.keys("Enter")
        shown = tmux.until("Step 3 of 3: remove the cartridges from the mail slots", f": {barcode}")
        slot = next(line for line in shown.splitlines() if f": {barcode}" in line).split("mail slot ")[1].split(":")[0]
        operator(up.data / "vtl", ["open"], ["remove", slot], ["close"])
        tmux.until("Done: the export completed")
        tmux.keys("Escape")
        assert up.json("media", "show", barcode)["rotation"] == "courier"

        # A file is deleted from the source; it comes back from its recovery point.
        os.remove(docs / "a-letter.txt")
        tmux.keys("F3")
        tmux.until("Group demo:")
        tmux.keys("g", "Down", "Enter")
        tmux.until("Group docs:")
        tmux.keys("Enter")  # the day: its point and its tape set, newest (the set) first
        tmux.until("disk point", "tape set")
        tmux.keys("Down", "Enter")  # the point: the group's sources
        tmux.until(f"{docs}/")
        tmux.keys("Enter")
        tmux.until("a-letter.txt")
        tmux.keys("Enter")
        tmux.until("1 version in group docs")
        tmux.keys("r")
        tmux.until("(nothing there now)")  # ("written" may end the line before: the path wraps)
        tmux.keys("C-r")
        tmux.until("restore started")
        deadline = time.monotonic() + WAIT
        while not (docs / "a-letter.txt").exists():
            assert time.monotonic() < deadline, f"a-letter.txt never came back; the screen:\n{tmux.screen()}"
            time.sleep(0.2)
        tmux.keys("F1")
        tmux.until_true(lambda s: any(" restore " in line and " docs " in line and "completed" in line
                                      for line in s.splitlines()), "the restore completed in Monitoring")
        assert (docs / "a-letter.txt").read_text() == "Dear operator,\n"
        tmux.quit()
    finally:
        tmux.stop()
        shutil.rmtree(short)
