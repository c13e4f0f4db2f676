"""systemd/tapeline.service passes `systemd-analyze verify` with nothing on stderr (it only warns on misspelled keys)
and runs `tapeline serve` with the configuration file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "tapeline.service"
VTL_UNIT = UNIT.with_name("tapeline-vtl.service")


def test_unit_verifies_cleanly(tmp_path):
    text = UNIT.read_text()
    assert "ExecStart=/opt/tapeline/bin/tapeline serve --config /etc/tapeline/tapeline.toml" in text
    # Verify the unit as installed here: the same file with ExecStart at this checkout's tapeline.
    local = tmp_path / "tapeline.service"
    local.write_text(text.replace("/opt/tapeline/bin/tapeline", str(Path(sys.executable).with_name("tapeline"))))
    run = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", run.stderr


def test_a_misspelled_key_would_fail_the_check(tmp_path):
    bad = tmp_path / "tapeline.service"
    bad.write_text(UNIT.read_text().replace("ExecStart=/opt/tapeline/bin/tapeline",
                                            f"ExecStrat={sys.executable}\nExecStart={sys.executable}"))
    run = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "ExecStrat" in run.stderr


def test_library_unit_verifies_cleanly(tmp_path):
    text = VTL_UNIT.read_text()
    assert "ExecStart=/opt/tapeline/bin/tapeline-vtl serve /var/lib/tapeline/vtl --listen 127.0.0.1:7101" in text
    local = tmp_path / "tapeline-vtl.service"
    here = str(Path(sys.executable).with_name("tapeline-vtl"))
    local.write_text(text.replace("/opt/tapeline/bin/tapeline-vtl", here))
    run = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", run.stderr
