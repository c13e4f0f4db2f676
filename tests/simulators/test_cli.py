"""`tapeline-vtl` as an operator runs it, and the systemd unit that starts the service."""

from __future__ import annotations

import json
import re
import shutil
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
    assert "1 [1000] A00000L8" in r.stdout and "faults: drive-offline on drive0 (one-shot)" in r.stdout


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


def test_every_generation_initialises_with_its_barcodes(tmp_path):
    for gen, suffix in (("LTO-5", "L5"), ("LTO-6", "L6"), ("LTO-7", "L7"), ("LTO-9", "L9")):
        directory = tmp_path / gen
        assert main(["init", str(directory), "--generation", gen, "--slots", "3"]) == 0
        state = json.loads((directory / "state.json").read_text())
        assert state["slots"][0] == f"A00000{suffix}" and state["drives"][0]["generation"] == gen


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies_cleanly(tmp_path):
    unit = (ROOT / "systemd" / "tapeline-vtl.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", unit, re.M)
    assert exec_start.group(2) == "serve /var/lib/tapeline/vtl --listen 127.0.0.1:7101"
    program = Path(exec_start.group(1))
    assert program.name == "tapeline-vtl"
    # The unit names where the package installs its console script; here that script lives in the venv.
    installed = Path(sys.executable).parent / "tapeline-vtl"
    assert installed.exists()
    copy = tmp_path / "tapeline-vtl.service"
    copy.write_text(unit.replace(str(program), str(installed)))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "")
