"""`tapeline-vtl` as an operator runs it, and the systemd unit that starts the service."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.vtl.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulators.vtl.cli", *args], capture_output=True, text=True)


def test_init_defaults_give_a_library_an_operator_recognises(tmp_path):
    directory = tmp_path / "vtl"
    r = run("init", str(directory))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("24 slots, 2 LTO-8 drives, 4 mail slots, 21 cartridges")
    assert lines[1:] == [f"local://{directory}/changer", f"local://{directory}/drive0", f"local://{directory}/drive1"]
    one = run("init", str(tmp_path / "small"), "--slots", "1", "--drives", "1", "--mailslots", "1")
    assert one.stdout.splitlines()[0].endswith(": 1 slot, 1 LTO-8 drive, 1 mail slot, 0 cartridges"), one.stdout
    view = json.loads(run("status", str(directory), "--json").stdout)
    barcodes = [s["cartridge"] for s in view["slots"]]
    assert barcodes[:3] == ["A00000L8", "A00001L8", "A00002L8"] and "CLN001L1" in barcodes
    assert barcodes.count(None) == 3 and len(view["mailslots"]) == 4
    assert [d["generation"] for d in view["drives"]] == ["LTO-8", "LTO-8"]


def test_status_text(tmp_path):
    directory = tmp_path / "vtl"
    main(["init", str(directory), "--slots", "4", "--drives", "1", "--mailslots", "1"])
    assert main(["fault", str(directory), "drive-offline", "drive0"]) == 0
    r = run("status", str(directory))
    assert r.returncode == 0
    assert "STK L700" in r.stdout and "drive0 [500] LTO-8: empty" in r.stdout
    assert "1 [1000] A00000L8" in r.stdout and "faults: drive-offline on drive0 (until cleared)" in r.stdout


def test_exit_codes_and_one_line_errors(tmp_path):
    directory = tmp_path / "vtl"
    assert run("init", str(directory)).returncode == 0
    r = run("init", str(directory))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "already holds a library" in r.stderr
    r = run("status", str(tmp_path / "none"))
    assert r.returncode == 1 and "tapeline-vtl init" in r.stderr and r.stderr.count("\n") == 1
    assert run("init").returncode == 2
    assert run("bogus").returncode == 2
    assert run("serve", str(directory), "--listen", "nowhere").returncode == 2
    assert run("init", str(tmp_path / "x"), "--generation", "LTO-3").returncode == 2


@pytest.mark.parametrize("args, line", [
    (["init", "X", "--slots", "0"], "tapeline-vtl init: --slots 0: the L700 library takes 1 to 64535 slots "
                                    "(--library L700|TS3500 picks another)"),
    (["init", "X", "--drives", "100", "--slots", "5"], "tapeline-vtl init: --drives 100: the L700 library takes "
                                                       "1 to 20 drives (--library L700|TS3500 picks another)"),
    (["init", "X", "--library", "TS3500", "--mailslots", "300"], "tapeline-vtl init: --mailslots 300: the TS3500 "
     "library takes 0 to 224 mail slots (--library L700|TS3500 picks another)"),
    (["init", "X", "--slots", "many"], "tapeline-vtl init: argument --slots: invalid int value: 'many' "
                                       "(see tapeline-vtl init --help)"),
    (["fault", "LIB", "bogus", "drive0"], "tapeline-vtl fault: unknown fault 'bogus': use one of media-error, "
     "drive-offline, cleaning-required, early-eom, load-failure, write-protect"),
    (["fault", "LIB", "media-error", "A00000L8"], "tapeline-vtl fault: fault media-error needs --at N (block number)"),
    (["fault", "LIB", "drive-offline"], "tapeline-vtl fault: fault drive-offline: give a target (drive0.. or a "
                                        "barcode)"),
    (["fault", "LIB", "drive-offline", "drive7"], "tapeline-vtl fault: fault drive-offline targets a drive: give "
                                                  "drive0..drive1, not 'drive7'"),
])
def test_bad_usage_is_one_line_and_exit_2(tmp_path, args, line):
    assert run("init", str(tmp_path / "lib")).returncode == 0
    r = run(*[{"X": str(tmp_path / "x"), "LIB": str(tmp_path / "lib")}.get(a, a) for a in args])
    assert (r.returncode, r.stderr, r.stdout) == (2, line + "\n", "")
    assert not (tmp_path / "x").exists()


def test_a_reader_that_goes_away_ends_status_quietly(tmp_path):
    """`tapeline-vtl status DIR | head`: EPIPE is the end of the output, not an error (exit 141 as after SIGPIPE)."""
    assert run("init", str(tmp_path / "lib"), "--slots", "2000").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    r = subprocess.run([sys.executable, "-m", "simulators.vtl.cli", "status", str(tmp_path / "lib")],
                       stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert (r.returncode, r.stderr) == (141, "")


def test_every_generation_initialises_with_its_barcodes(tmp_path):
    for gen, suffix in (("LTO-5", "L5"), ("LTO-6", "L6"), ("LTO-7", "L7"), ("LTO-9", "L9")):
        directory = tmp_path / gen
        assert main(["init", str(directory), "--generation", gen, "--slots", "3"]) == 0
        state = json.loads((directory / "state.json").read_text())
        assert state["slots"][0] == f"A00000{suffix}" and state["drives"][0]["generation"] == gen


VENV_BIN = "/opt/tapeline/bin/"  # where the product is installed (a virtual environment), as every unit names it
UNIT = ROOT / "systemd" / "tapeline-vtl.service"


def verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` of the unit as installed here: its /opt/tapeline/bin/ is this checkout's venv."""
    copy = tmp_path / "tapeline-vtl.service"
    copy.write_text(text.replace(VENV_BIN, f"{Path(sys.executable).parent}/"))
    return subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_systemd_unit_runs_the_venv_command_and_is_confined():
    unit = directives(UNIT.read_text())
    assert unit["ExecStart"] == [f"{VENV_BIN}tapeline-vtl serve /var/lib/tapeline/vtl --listen 127.0.0.1:7101"]
    assert f"exec {VENV_BIN}tapeline-vtl init /var/lib/tapeline/vtl" in unit["ExecStartPre"][0]
    assert "/usr/local/bin" not in UNIT.read_text()
    assert unit["StateDirectory"] == ["tapeline/vtl"]  # the library directory is writable, and only it
    assert unit["ProtectSystem"] == ["strict"] and unit["CapabilityBoundingSet"] == [""]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["KillSignal"] == ["SIGTERM"]  # SIGTERM = a clean close


def test_systemd_unit_verifies_cleanly(tmp_path):
    assert (Path(sys.executable).parent / "tapeline-vtl").exists()
    r = verify(UNIT.read_text(), tmp_path)
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "")


def test_systemd_verify_would_catch_a_bad_unit(tmp_path):
    r = verify(UNIT.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHom=yes"), tmp_path)
    assert "ProtectHom" in r.stderr
    r = verify(UNIT.read_text().replace("tapeline-vtl serve", "tapeline-vtl-missing serve"), tmp_path)
    assert r.returncode != 0 and "tapeline-vtl-missing is not executable" in r.stderr


def test_systemd_unit_exposure_stays_low(tmp_path):
    copy = tmp_path / "tapeline-vtl.service"
    copy.write_text(UNIT.read_text())
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)], capture_output=True, text=True,
                       timeout=60)
    level = re.search(r"Overall exposure level for tapeline-vtl.service: ([0-9.]+)", r.stdout)
    assert level is not None, r.stdout + r.stderr
    assert float(level.group(1)) <= 2.5  # systemd rates 0-10; 2.0 ("OK") when this unit was written
