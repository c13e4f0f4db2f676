"""What `tapeline-mtx`, `tapeline-mt` and `tapeline-vtl` say when the device or the arguments are wrong: one line on
stderr naming the device and why, the exit code of the real tool, never a Python traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from vtl_harness import BIN, served_library


def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / name, *args], capture_output=True, timeout=60)


def one_line(result: subprocess.CompletedProcess) -> str:
    text = result.stderr.decode()
    assert "Traceback" not in text and text.endswith("\n") and text.count("\n") == 1, text
    return text.rstrip("\n")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("served") / "lib"
    subprocess.run([BIN / "tapeline-vtl", "init", directory], check=True, capture_output=True)
    with served_library(directory) as base:
        yield base


@pytest.mark.parametrize("name", ["tapeline-mtx", "tapeline-mt"])
def test_a_device_the_served_library_lacks_is_one_line(served, name):
    url = f"{served}/nothing"
    result = tool(name, "-f", url, "status")
    assert result.returncode == 1
    assert one_line(result) == f"{url}: no device 'nothing' in this library (it has changer, drive0, drive1)"
    assert result.stdout == b""


@pytest.mark.parametrize("name", ["tapeline-mtx", "tapeline-mt"])
@pytest.mark.parametrize("url", ["stream+socket://[bad", "local://[bad/changer", "sg://[::1/dev/sg3"])
def test_a_malformed_url_is_one_line_not_a_value_error(name, url):
    result = tool(name, "-f", url, "status")
    assert result.returncode == 1
    assert one_line(result).startswith(f"{url}: malformed device URL (Invalid IPv6 URL); give one like ")


def test_mtx_url_means_the_device_it_wraps(served):
    missing = tool("tapeline-mtx", "-f", "mtx:///dev/sg99", "status")
    assert (missing.returncode, one_line(missing)) == (1, "cannot open SCSI device '/dev/sg99' - No such file or "
                                                          "directory")
    status = tool("tapeline-mtx", "-f", f"mtx://{served}/changer", "status")
    assert status.returncode == 0 and status.stdout.startswith(b"  Storage Changer ")
    bare = tool("tapeline-mtx", "-f", "mtx://", "status")
    assert bare.returncode == 1 and one_line(bare).startswith("'mtx://' is not an mtx URL: give one like mtx:///dev/")


@pytest.fixture
def local_library(tmp_path):
    subprocess.run([BIN / "tapeline-vtl", "init", tmp_path / "lib"], check=True, capture_output=True)
    return f"local://{tmp_path / 'lib'}"


def test_mt_on_a_changer_says_it_is_not_a_tape_drive(local_library):
    changer = f"{local_library}/changer"
    for command in ("status", "rewind"):
        result = tool("tapeline-mt", "-f", changer, command)
        assert (result.returncode, result.stdout) == (1, b"")
        assert one_line(result) == (f"{changer}: not a tape drive (INQUIRY: a medium changer); use tapeline-mtx -f "
                                    f"{changer} for a changer")


@pytest.mark.parametrize("name, args", [("tapeline-mtx", ("changer", "status")),
                                        ("tapeline-mt", ("drive0", "status")),
                                        ("tapeline-vtl", ("status",))])
def test_a_reader_that_goes_away_ends_the_tool_quietly(local_library, name, args):
    """`tapeline-mtx status | head`: EPIPE ends the output quietly, with the exit code of a C tool after SIGPIPE."""
    where = local_library[len("local://"):]
    argv = ["status", where] if name == "tapeline-vtl" else ["-f", f"{local_library}/{args[0]}", *args[1:]]
    read_end, write_end = os.pipe()
    os.close(read_end)
    result = subprocess.run([BIN / name, *argv], stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    os.close(write_end)
    assert (result.returncode, result.stderr) == (141, b"")


def test_mt_reports_an_offline_drive_until_the_fault_is_cleared(local_library):
    """`tapeline-vtl fault DIR drive-offline drive0`: mt status and rewind fail (mt-st's error line, exit 2) every
    time, and the fault stays listed: the TEST UNIT READY sent at open does not consume it."""
    where, drive = local_library[len("local://"):], f"{local_library}/drive0"
    assert tool("tapeline-mtx", "-f", f"{local_library}/changer", "load", "1", "0").returncode == 0
    assert tool("tapeline-vtl", "fault", where, "drive-offline", "drive0").returncode == 0
    for command, name in (("status", "TEST UNIT READY"), ("rewind", "REWIND"), ("status", "TEST UNIT READY")):
        result = tool("tapeline-mt", "-f", drive, command)
        assert (result.returncode, result.stdout) == (2, b"")
        assert one_line(result) == f"{drive}: Input/output error (logical unit offline, 2/04/12, {name})"
    assert tool("tapeline-vtl", "fault", where, "--list").stdout == b"drive-offline on drive0 (until cleared)\n"
    assert tool("tapeline-vtl", "fault", where, "--clear", "drive-offline", "drive0").returncode == 0
    assert tool("tapeline-mt", "-f", drive, "rewind").returncode == 0
