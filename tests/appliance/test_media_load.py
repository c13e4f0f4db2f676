"""`tapeline media load` and `media unload` as an operator runs them against `tapeline up`: a cartridge goes into a
drive (a chosen one or any free one) and stays there, the catalog and the library agree where it is, and it goes
back to its home slot by barcode or by drive; bad requests are one line naming the cause and the fix."""

from __future__ import annotations

import pytest

from daemon_harness import start_up, stop_up

from drivers.changer import KIND_DRIVE, KIND_SLOT, MediaChanger


@pytest.fixture
def up(tmp_path):
    d = start_up(tmp_path)
    yield d
    stop_up(d)


def in_library(up, barcode: str) -> tuple[str, int]:
    """Where the library itself (its changer, not the catalog) has the cartridge."""
    with MediaChanger(up.json("library", "show", "vtl")["changer_url"]) as changer:
        element = changer.inventory().find(barcode)
    return element.kind, element.number


def error_line(proc) -> str:
    lines = proc.stderr.splitlines()
    assert lines and lines[0].startswith("tapeline: "), proc.stderr
    return lines[0]


def test_a_cartridge_loaded_stays_in_its_drive_until_unloaded_by_drive_or_barcode(up):
    home = up.json("media", "show", "A00002L8")["location_number"]
    job = up.json("media", "load", "A00002L8", "--drive", "1", "--wait")
    assert job["state"] == "completed" and job["result"]["holds"] == "blank", job
    assert job["result"]["summary"] == "cartridge A00002L8 loaded into drive 1 of library 'vtl' (blank)"
    assert up.json("media", "show", "A00002L8")["where"] == "drive 1"
    assert in_library(up, "A00002L8") == (KIND_DRIVE, 1)  # after the job's end: left in the drive

    done = up.run("media", "unload", "--drive", "1", "--wait")
    assert f"cartridge A00002L8 unloaded from drive 1 of library 'vtl' to slot {home}" in done.stdout, done.stdout
    assert up.json("media", "show", "A00002L8")["where"] == f"slot {home}"
    assert in_library(up, "A00002L8") == (KIND_SLOT, home)

    job = up.json("media", "load", "A00002L8", "--wait")  # any free drive
    drive = job["result"]["drive"]
    assert in_library(up, "A00002L8") == (KIND_DRIVE, drive)
    job = up.json("media", "unload", "A00002L8", "--wait")
    assert job["state"] == "completed" and job["result"]["to"] == f"slot {home}", job
    assert in_library(up, "A00002L8") == (KIND_SLOT, home)
    assert up.json("media", "show", "A00002L8")["mounts"] == 2

    assert "drive 0 of library 'vtl' was empty" in up.run("media", "unload", "--drive", "0", "--wait").stdout


def test_a_loaded_cartridge_does_not_keep_a_job_from_its_drive(up):
    up.json("media", "load", "A00002L8", "--drive", "0", "--wait")
    up.run("drive", "disable", "vtl", "1")  # the label job must take drive 0, holding A00002L8
    up.run("pool", "create", "weekly", "--library", "vtl")
    job = up.json("media", "label", "A00003L8", "--pool", "weekly", "--wait")
    assert job["state"] == "completed", job
    assert up.json("media", "show", "A00002L8")["location"] == "slot"


def test_bad_load_and_unload_requests_name_the_cause_and_the_fix(up):
    proc = up.run("media", "load", "NOPE01L8", check=1)
    assert error_line(proc).startswith("tapeline: no cartridge 'NOPE01L8' in the catalog")
    proc = up.run("media", "load", "CLN001L1", check=2)
    assert error_line(proc) == ("tapeline: CLN001L1 is a cleaning cartridge: clean a drive with `tapeline drive "
                                "clean LIBRARY N`: it loads the cleaning cartridge")
    proc = up.run("media", "load", "A00002L8", "--drive", "5", check=1)
    assert error_line(proc) == "tapeline: library 'vtl' has no drive 5: its drives are 0, 1 (`tapeline drive list`)"
    proc = up.run("media", "load", "A00002L8", "--library", "nope", check=1)
    assert "library 'nope' does not exist" in error_line(proc)
    home = up.json("media", "show", "A00002L8")["location_number"]
    proc = up.run("media", "unload", "A00002L8", check=2)
    assert error_line(proc) == (f"tapeline: cartridge A00002L8 is not in a drive (slot {home}): nothing to unload "
                                "(`tapeline media show A00002L8` says where it is)")
    proc = up.run("media", "unload", check=2)
    assert error_line(proc) == ("tapeline: nothing to unload: `tapeline media unload BARCODE` or `tapeline media "
                                "unload --drive N`")
    proc = up.run("media", "unload", "--drive", "7", check=1)
    assert "library 'vtl' has no drive 7" in error_line(proc)
    up.run("media", "load", "A00002L8", "--drive", "0", "--wait")
    proc = up.run("media", "load", "A00002L8", check=1)
    assert error_line(proc) == ("tapeline: cartridge A00002L8 is already in drive 0 of library 'vtl': nothing to "
                                "load; `tapeline media unload A00002L8` puts it back in its slot")
    proc = up.run("--json", "media", "unload", "A00002L8", "--drive", "0", check=2)
    assert '"fix"' in proc.stdout + proc.stderr
