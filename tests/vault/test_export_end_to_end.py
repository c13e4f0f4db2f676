"""The DR plan followed, as an operator would, with `tapeline up` and its embedded library: a group's set on tape,
`vault export` carries it out with the catalog backup; then the catalog, the store and the index copies are lost,
the cartridge comes back through the mail slot (`vault import`: unknown to the new catalog), `media rebuild` reads
it, and both the catalog backup and the group's files come back from tape."""

from __future__ import annotations

import signal
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.media.test_tape_end_to_end import VTL, protected, restores_identically, up
from tests.protect.conftest import tree_state

pytestmark = pytest.mark.slow  # a daemon and its library, real sets written, read back and restored


def _mailslot(d, *action: str) -> None:
    subprocess.run([VTL, "mailslot", str(d.data / "vtl"), *action], check=True, capture_output=True)


def test_following_the_dr_plan_on_an_empty_catalog_restores_the_catalog_backup_and_the_group(tmp_path):
    d = up(tmp_path)
    try:
        src = protected(d, tmp_path)
        expected = tree_state(src)
        d.run("vault", "create", "ironvault", "--contact", "+1 555 0100")
        d.run("pool", "set", "weekly", "--vault", "ironvault")
        d.run("tape", "backup", "files", "--pool", "weekly", "--wait")
        job = d.json("vault", "export", "--wait")
        assert job["state"] == "completed", job
        ejected = [e["barcode"] for e in job["result"]["ejected"]]
        assert job["result"]["catalog_backups"][0]["cartridges"] == ejected  # appended to the set's cartridge
        barcode = ejected[0]
        shown = d.json("media", "show", barcode)
        assert shown["rotation"] == "courier" and shown["where"].startswith("mail slot")
        plan = d.run("vault", "plan").stdout
        assert f"{barcode} (mail slot" in plan and "tapeline tape restore files --to" in plan
        _mailslot(d, "open")
        _mailslot(d, "remove", "1")
        _mailslot(d, "close")
    finally:
        d.stop(signal.SIGINT)
    for lost in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "store", "tape-index", "dr"):
        path = d.data / lost
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    d.start()
    try:
        _mailslot(d, "open")
        _mailslot(d, "insert", barcode)
        _mailslot(d, "close")
        job = d.json("vault", "import", "--wait", check=3)  # unknown to this catalog: imported, alerted
        assert [(i["barcode"], i["as"]) for i in job["result"]["imported"]] == [(barcode, "unknown")]
        d.run("media", "rebuild", "--library", "vtl", "--wait")
        assert sorted(s["group"] for s in d.json("tape", "sets")) == ["_catalog", "files"]

        out = tmp_path / "catalog-back"
        d.run("tape", "restore", "_catalog", "--to", str(out), "--wait")
        staged = next(out.rglob("catalog.sqlite")).parent
        old = sqlite3.connect(staged / "catalog.sqlite")
        assert old.execute("SELECT name FROM protection_group WHERE name = 'files'").fetchone() == ("files",)
        assert old.execute("SELECT rotation FROM cartridge WHERE barcode = ?", (barcode,)).fetchone() == \
            ("mountable",)  # taken before the batch left
        old.close()
        assert (staged / "tapeline.toml").read_text() == Path(d.config_file).read_text()

        restores_identically(d, "files", src, tmp_path / "out", expected=expected)
    finally:
        d.stop(signal.SIGINT)
