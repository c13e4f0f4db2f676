"""systemd/tapeline.service passes `systemd-analyze verify` with nothing on stderr (it only warns on misspelled keys)
and runs `tapeline serve` with the configuration file; `systemd-analyze security` rates both units within the
exposure docs/daemon.md states ("Running as a service")."""

from __future__ import annotations

import re
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


def exposure(unit: Path, tmp_path: Path, program: str) -> float:
    """The overall exposure `systemd-analyze security` gives the unit (0 safest, 10 unsafe), printed for the log."""
    local = tmp_path / unit.name
    local.write_text(unit.read_text().replace(f"/opt/tapeline/bin/{program}",
                                              str(Path(sys.executable).with_name(program))))
    run = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(local)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d)", run.stdout).group(1))
    print(f"systemd-analyze security {unit.name}: exposure {level}")
    return level


@pytest.mark.parametrize("unit, program, ceiling", [(UNIT, "tapeline", 3.6), (VTL_UNIT, "tapeline-vtl", 2.0)])
def test_units_are_hardened(tmp_path, unit, program, ceiling):
    # The daemon keeps the capabilities a restore needs (docs/daemon.md); systemd rates 9.6 a unit with nothing set.
    text = unit.read_text()
    for key in ("NoNewPrivileges=yes", "ProtectSystem=", "CapabilityBoundingSet=", "SystemCallFilter=@system-service"):
        assert key in text
    assert exposure(unit, tmp_path, program) <= ceiling


def test_an_unhardened_unit_would_fail_the_ceiling(tmp_path):
    bare = tmp_path / "bare" / "tapeline.service"
    bare.parent.mkdir()
    bare.write_text("\n".join(line for line in UNIT.read_text().splitlines()
                              if line.startswith(("[", "ExecStart=", "Description=", "WantedBy="))))
    assert exposure(bare, tmp_path, "tapeline") > 9
