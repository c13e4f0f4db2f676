"""Bacula's own `mtx-changer` script drives the simulator through `tapeline-mtx` and `tapeline-mt`, unchanged but for
the lines that name mtx and its config and temp directories.

The library is served by `tapeline-vtl serve` in a subprocess, so the script's many short-lived mtx and mt processes
share one library as they would share a real one. Without bacula-sd they fail with the fix (`./dev test`
installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from vtl_harness import BIN, init_library, served_library

SCRIPT = Path("/etc/bacula/scripts/mtx-changer")
CONF = Path("/etc/bacula/scripts/mtx-changer.conf")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def changer(tmp_path_factory):
    """(run, changer URL, drive URL): `run(cmd, slot, drive_index)` runs the script like a Bacula SD."""
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: run `./dev test` (it installs bacula-sd) or `apt-get install bacula-sd`",
                    pytrace=False)
    tmp = tmp_path_factory.mktemp("bacula")
    library = tmp / "library"
    init_library(library)
    work = tmp / "work"
    work.mkdir()
    conf = tmp / "mtx-changer.conf"
    shutil.copy(CONF, conf)
    script = tmp / "mtx-changer"
    text = SCRIPT.read_text()
    assert "MTX=/usr/sbin/mtx" in text and str(CONF) in text  # the lines this test rewrites are still there
    text = (text.replace("MTX=/usr/sbin/mtx", f"MTX={BIN / 'tapeline-mtx'}")
            .replace(str(CONF), str(conf))
            .replace("/var/lib/bacula", str(work)))
    script.write_text(text)
    script.chmod(0o755)
    path_dir = tmp / "bin"
    path_dir.mkdir()
    (path_dir / "mt").symlink_to(BIN / "tapeline-mt")  # the script calls `mt` from PATH
    env = {**os.environ, "PATH": f"{path_dir}:{os.environ['PATH']}"}
    with served_library(library) as base:
        ctl, drive = f"{base}/changer", f"{base}/drive0"

        def run(command: str, slot: int | str = 0, index: int = 0, device: str = drive) -> subprocess.CompletedProcess:
            return subprocess.run([script, ctl, command, str(slot), device, str(index)], capture_output=True,
                                  text=True, env=env, timeout=120)

        yield run, ctl, drive


def lines(run: subprocess.CompletedProcess) -> list[str]:
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.splitlines()


def test_slots_counts_storage_and_mail_slots(changer):
    run, _, _ = changer
    assert lines(run("slots")) == ["28"]


def test_list_and_listall_name_every_cartridge(changer):
    run, ctl, _ = changer
    listed = lines(run("list"))
    assert listed[0] == "1:A00000L8"  # tags trimmed by awk's field split, as Bacula expects
    assert len(listed) == 21 and all(":" in line for line in listed)
    everything = lines(run("listall"))
    assert everything[:2] == ["D:0:E", "D:1:E"]
    assert "S:1:F:A00000L8" + " " * 24 in everything  # perl's (.+) keeps the 32-byte field's padding
    assert sum(line.startswith("I:") for line in everything) == 4


def test_load_loaded_transfer_unload(changer):
    run, ctl, drive = changer
    assert lines(run("loaded", 0, 0)) == ["0"]
    # mtx's progress line reaches the SD; after the load the script polled `mt status` until it saw ONLINE
    assert lines(run("load", 3, 0)) == ["Loading media from Storage Element 3 into drive 0...done"]
    assert lines(run("loaded", 0, 0)) == ["3"]
    online = subprocess.run([BIN / "tapeline-mt", "-f", drive, "status"], capture_output=True, text=True)
    assert "ONLINE" in online.stdout
    assert lines(run("list"))[-1] == "3:A00002L8"  # the drive line gives the tape's home slot and its tag
    assert "D:0:F:3:A00002L8" + " " * 24 in lines(run("listall"))
    # transfer slot 1 to an empty storage slot
    empty = next(int(line.split(":")[1]) for line in lines(run("listall")) if line.startswith("S:")
                 and line.endswith(":E") and int(line.split(":")[1]) != 3)
    assert lines(run("transfer", 1, device=str(empty))) == []  # Bacula passes the destination slot as $4
    assert f"S:{empty}:F:A00000L8" + " " * 24 in lines(run("listall"))
    assert lines(run("unload", 3, 0)) == ["Unloading drive 0 into Storage Element 3...done"]
    assert lines(run("loaded", 0, 0)) == ["0"]
    assert "S:3:F:A00002L8" + " " * 24 in lines(run("listall"))


def test_errors_reach_the_sd_as_a_non_zero_exit(changer):
    run, _, _ = changer
    failed = run("unload", 3, 1)  # drive 1 is empty
    assert (failed.returncode, failed.stdout) == (1, "Data Transfer Element 1 is Empty\n")  # the script cats stderr
