"""The media commands as an operator runs them: `tapeline up` registers its library as `vtl`, then `library`,
`drive`, `pool` and `media` through the real daemon and the served simulator, with their one-line refusals."""

from __future__ import annotations


import pytest

from daemon_harness import start_up, stop_up

from drivers.changer import MediaChanger
from drivers.tape import TapeDrive


@pytest.fixture
def up(tmp_path):
    """`tapeline up`: the daemon, its embedded simulator registered as library `vtl`, and the `demo` group."""
    d = start_up(tmp_path)
    yield d
    stop_up(d)


def _error_line(proc) -> str:
    lines = proc.stderr.splitlines()
    assert lines and lines[0].startswith("tapeline: "), proc.stderr
    return lines[0]


def test_up_registers_its_library_and_the_media_commands_work_on_it(up):
    libraries = up.json("library", "list")
    assert [(lib["name"], len(lib["drives"])) for lib in libraries] == [("vtl", 2)]
    assert [d["serial"] for d in libraries[0]["drives"]] == ["XYZZY_A0", "XYZZY_A1"]
    carts = {c["barcode"]: c for c in up.json("media", "list")}
    assert carts["A00000L8"]["state"] == "blank" and carts["CLN001L1"]["state"] == "cleaning"

    pool = up.json("pool", "create", "weekly", "--library", "vtl", "--retention", "30d", "--allocation", "Sat 18:00")
    assert (pool["retention_seconds"], pool["allocation"]) == (30 * 86400, "Sat 18:00")

    job = up.json("media", "label", "A00000L8", "A00001L8", "--pool", "weekly", "--wait")
    assert job["state"] == "completed" and [x["barcode"] for x in job["result"]["labelled"]] == ["A00000L8",
                                                                                                 "A00001L8"]
    scratch = up.json("media", "list", "--pool", "weekly", "--state", "scratch")
    assert [c["barcode"] for c in scratch] == ["A00000L8", "A00001L8"]
    shown = up.run("media", "show", "A00000L8").stdout
    assert "cartridge A00000L8: scratch" in shown and "pool         weekly" in shown

    done = up.run("library", "inventory", "vtl", "--detailed", "--wait")
    assert "library vtl: 20 cartridges read: 18 scratch, 2 known, 0 foreign, 0 damaged" in done.stdout, done.stdout
    # A blank tape is scratch with no pool; the labelled ones keep theirs.
    assert up.json("media", "show", "A00005L8")["state"] == "scratch"
    assert up.json("media", "show", "A00001L8")["pool"] == "weekly"

    assert up.run("drive", "disable", "vtl", "1").stdout.strip() == \
        "drive 1 of library vtl: disabled (disabled by an operator)"
    assert [d["enabled"] for d in up.json("drive", "list")] == [True, False]
    up.run("drive", "enable", "vtl", "1")

    erased = up.json("media", "erase", "A00001L8", "--force", "--wait")
    assert erased["state"] == "completed"
    assert up.json("media", "show", "A00001L8")["pool"] is None


def test_bad_input_is_one_line_naming_the_cause_and_the_fix(up):
    proc = up.run("pool", "create", "p", "--library", "nope", check=1)
    assert _error_line(proc) == "tapeline: library 'nope' does not exist: known: vtl (`tapeline library list`)"
    proc = up.run("media", "label", "NOPE01L8", "--pool", "nopool", check=1)
    assert "pool 'nopool' does not exist" in _error_line(proc)
    up.run("pool", "create", "weekly", "--library", "vtl")
    proc = up.run("media", "label", "NOPE01L8", "--pool", "weekly", check=1)
    assert _error_line(proc).startswith("tapeline: no cartridge 'NOPE01L8' in the catalog: see `tapeline media list`")
    proc = up.run("drive", "clean", "vtl", "5", check=1)
    assert _error_line(proc) == ("tapeline: library 'vtl' has no drive 5: its drives are 0, 1 "
                                 "(`tapeline drive list`)")
    proc = up.run("media", "erase", "NOPE01L8", check=1)  # an unknown barcode first, --force or not
    assert _error_line(proc).startswith("tapeline: no cartridge 'NOPE01L8' in the catalog")
    proc = up.run("media", "erase", "A00000L8", check=2)
    assert _error_line(proc) == ("tapeline: erasing cartridge A00000L8 destroys what it holds: rerun with --force: "
                                 "`tapeline media erase A00000L8 --force`")
    proc = up.run("pool", "create", "x", "--library", "vtl", "--allocation", "fortnightly", check=2)
    assert "--allocation 'fortnightly' is not continue, always or a calendar event" in _error_line(proc)
    proc = up.run("media", "list", "--state", "lost", check=2)
    assert "unknown cartridge state 'lost'" in _error_line(proc)
    err = up.json("media", "show", "NOPE01L8", check=1)
    assert set(err) == {"error", "fix", "exit_code", "type"} and err["type"] == "NotFound"


def test_a_foreign_cartridge_is_found_never_written_and_relabelled_only_with_force(up):
    lib = up.json("library", "show", "vtl")
    slot = next(c["location_number"] for c in up.json("media", "list") if c["barcode"] == "A00003L8")
    with MediaChanger(lib["changer_url"]) as changer:  # someone else's backup, written behind Tapeline's back
        changer.load(slot, 1)
        with TapeDrive(lib["drives"][1]["url"]) as drive:
            drive.wait_ready(30)
            drive.write(b"someone else's backup".ljust(65536, b"\0"))
            drive.write_filemarks(1)
            drive.unload()
        changer.unload(1)
    up.run("pool", "create", "weekly", "--library", "vtl")
    done = up.json("library", "inventory", "vtl", "--detailed", "--wait")
    assert done["result"]["foreign"] == ["A00003L8"]

    proc = up.run("media", "label", "A00003L8", "--pool", "weekly", check=1)
    assert _error_line(proc) == ("tapeline: cartridge A00003L8 holds foreign data (its first block begins \"someone "
                                 "else's backup\", in 65536-byte blocks): rerun with --force if it may be lost")
    job = up.json("media", "label", "A00003L8", "--pool", "weekly", "--force", "--wait")
    assert "someone else's backup" in job["result"]["labelled"][0]["lost"]
    assert up.json("media", "show", "A00003L8")["state"] == "scratch"
