"""`tapeline-mtx` commands the first tool tests left out, against one served library (`tapeline-vtl serve`), byte
for byte as mtx 1.3.12 prints them (reference/mtx.md §1, §4; mtx.c read for first/last/next/previous, exchange,
position): stdout, stderr and exit code of each run.

The default library: A00000L8..A00019L8 in slots 1-20, CLN001L1 in 21, slots 22-24 and mail slots 25-28 empty; the
L700 element addresses are slots 1000.., mail slots 10.., drives 500.., the robot 1.
"""

from __future__ import annotations

import subprocess

import pytest
from vtl_harness import BIN, init_library, restore_layout, served_library

from drivers.scsi import smc
from drivers.transport.base import open_transport

TAG = "{:<32}"  # the simulator's 32-byte volume tag field, which mtx prints with its padding


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """(changer URL, layout) of a library served for this module; layout: barcode -> the slot `init` gave it."""
    directory = tmp_path_factory.mktemp("mtxcmd") / "library"
    layout = init_library(directory)
    with served_library(directory) as base:
        yield f"{base}/changer", layout


@pytest.fixture(scope="module")
def served(library):
    """The served changer's URL."""
    return library[0]


@pytest.fixture
def changer(library):
    """The served changer's URL, with every cartridge back in its `init` slot and both drives empty."""
    url, layout = library
    restore_layout(url, layout)
    return url


def mtx(changer: str, *args: str) -> tuple[int, bytes, bytes]:
    run = subprocess.run([BIN / "tapeline-mtx", "-f", changer, *args], capture_output=True, timeout=60)
    return run.returncode, run.stdout, run.stderr


def drive_line(n: int, source: int | None = None, tag: str | None = None) -> str:
    if source is None:
        return f"Data Transfer Element {n}:Empty\n"
    return f"Data Transfer Element {n}:Full (Storage Element {source} Loaded):VolumeTag = {TAG.format(tag)}\n"


def loaded_in_drive0(changer: str) -> str:
    return mtx(changer, "status")[1].decode().splitlines(keepends=True)[1]


def ok(stdout: str) -> tuple[int, bytes, bytes]:
    return 0, stdout.encode(), b""


def fatal(message: str, stdout: str = "") -> tuple[int, bytes, bytes]:
    return 1, stdout.encode(), f"{message}\n".encode()


def test_first_loads_slot_1_and_says_so_when_it_is_already_there(changer):
    assert mtx(changer, "load", "4", "0")[0] == 0
    assert mtx(changer, "first") == ok("Unloading drive 0 into Storage Element 4...done\n"
                                       "Loading media from Storage Element 1 into drive 0...done\n")
    assert loaded_in_drive0(changer) == drive_line(0, 1, "A00000L8")
    assert mtx(changer, "first", "0") == ok("loading...done.\n")
    # Slot 1's cartridge is in drive 0: mtx still tries, and the library refuses the move.
    assert mtx(changer, "first", "1") == fatal("Source Element Address 1000 is Empty",
                                               "Loading media from Storage Element 1 into drive 1...")


def test_last_loads_the_last_storage_slot_never_a_mail_slot(changer):
    # Slot 24 (the last storage slot) is empty: mtx loads it anyway and the library refuses.
    assert mtx(changer, "last") == fatal("Source Element Address 1023 is Empty",
                                         "Loading media from Storage Element 24 into drive 0...")
    assert mtx(changer, "transfer", "1", "24", "transfer", "2", "28")[0] == 0
    assert mtx(changer, "last") == ok("Loading media from Storage Element 24 into drive 0...done\n")
    assert mtx(changer, "last") == ok("loading...done.\n")


def test_next_walks_forward_and_stops_with_no_more_media(changer):
    assert mtx(changer, "next") == ok("Loading media from Storage Element 1 into drive 0...done\n")
    assert mtx(changer, "next", "0") == ok("Unloading drive 0 into Storage Element 1...done\n"
                                           "Loading media from Storage Element 2 into drive 0...done\n")
    assert mtx(changer, "unload", "transfer", "3", "24", "load", "24") == ok(
        "Unloading drive 0 into Storage Element 2...done\n"
        "Loading media from Storage Element 24 into drive 0...done\n")
    assert mtx(changer, "next") == fatal("No More Media", "Unloading drive 0 into Storage Element 24...done\n")


def test_previous_walks_back_and_starts_at_the_first_mail_slot(changer):
    assert mtx(changer, "load", "3", "1")[0] == 0
    assert mtx(changer, "previous", "1") == ok("Unloading drive 1 into Storage Element 3...done\n"
                                               "Loading media from Storage Element 2 into drive 1...done\n")
    assert mtx(changer, "unload", "2", "1", "load", "1", "1")[0] == 0
    assert mtx(changer, "previous", "1") == fatal("No More Media")  # slot 1 is the first
    # With the drive empty, mtx.c starts its search at index S (slot S+1, the first mail slot), not at slot S.
    assert mtx(changer, "transfer", "5", "25")[0] == 0
    assert mtx(changer, "previous") == ok("Loading media from Storage Element 25 into drive 0...done\n")


def test_exchange_is_not_supported_by_the_library(changer):
    # The simulator has no EXCHANGE MEDIUM (A6h): 05/20/00, which mtx dumps before its own failure line.
    dump = "".join(f"mtx: Request Sense: {line}\n" for line in (
        "Long Report=yes", "Valid Residual=no", "Error Code=70 (Current)", "Sense Key=Illegal Request",
        "FileMark=no", "EOM=no", "ILI=no", "Additional Sense Code = 20", "Additional Sense Qualifier = 00",
        "BPV=no", "Error in CDB=no", "SKSV=no"))
    assert mtx(changer, "exchange", "1", "22") == (
        1, b"", (dump + "EXCHANGE MEDIUM from Element Address 1000 to 1021 Failed\n").encode())
    assert mtx(changer, "exchange", "1") == fatal("No destination specified")
    assert mtx(changer, "exchange", "1", "29") == fatal("Invalid destination")


def test_position_is_silent_and_moves_nothing(changer):
    before = mtx(changer, "status")[1]
    assert mtx(changer, "position", "3") == ok("")
    assert mtx(changer, "position", "28", "status") == (0, before, b"")


def test_nobarcode_status_has_no_volume_tags(changer):
    assert mtx(changer, "load", "2", "1")[0] == 0
    expected = ("  Storage Changer " + changer + ":2 Drives, 28 Slots ( 4 Import/Export )\n"
                "Data Transfer Element 0:Empty\nData Transfer Element 1:Full (Storage Element 2 Loaded)\n"
                + "".join(f"      Storage Element {n}:{'Empty' if n in (2, 22, 23, 24) else 'Full '}\n"
                          for n in range(1, 25))
                + "".join(f"      Storage Element {n} IMPORT/EXPORT:Empty\n" for n in range(25, 29)))
    assert mtx(changer, "nobarcode", "status") == ok(expected)


def test_eepos_with_load_and_its_range(changer):
    assert mtx(changer, "eepos", "1", "load", "2", "0") == ok(
        "Loading media from Storage Element 2 into drive 0...done\n")
    assert loaded_in_drive0(changer) == drive_line(0, 2, "A00001L8")
    assert mtx(changer, "eepos", "4", "load", "3", "1") == fatal("eepos equires argument between 0 and 3.")
    assert mtx(changer, "eepos") == fatal("eepos equires argument between 0 and 3.")


def test_inventory_is_silent(changer):
    assert mtx(changer, "inventory") == ok("")
    assert mtx(changer, "inventory", "load", "6") == ok("Loading media from Storage Element 6 into drive 0...done\n")


def test_unload_then_load_in_one_command_line(changer):
    assert mtx(changer, "load", "3", "0")[0] == 0
    assert mtx(changer, "unload", "3", "0", "load", "4", "0") == ok(
        "Unloading drive 0 into Storage Element 3...done\n"
        "Loading media from Storage Element 4 into drive 0...done\n")
    assert loaded_in_drive0(changer) == drive_line(0, 4, "A00003L8")
    # Later commands on the line see the Full flags the earlier ones changed in mtx's cached status.
    assert mtx(changer, "unload", "22", "0", "unload", "23", "0") == fatal(
        "Data Transfer Element 0 is Empty", "Unloading drive 0 into Storage Element 22...done\n")


def test_all_types_report_the_lowest_addresses_first(served):
    # reference/scsi.md, READ ELEMENT STATUS: "Report elements with address >= start, of the requested type(s), in
    # address order, and at most 'number' descriptors". Element type 0 from address 0 with a count of 7 must
    # therefore report the robot (1), the four mail slots (10-13) and the two drives (500, 501), not the robot and
    # the first six storage slots (1000-1005). Fails against simulators/vtl as committed at 4fbbd0e
    # (changer_lu.read_element_status takes the first `count` elements in type order).
    with open_transport(served) as transport:
        cdb = smc.READ_ELEMENT_STATUS.encode(voltag=0, element_type=smc.ELEMENT_ALL, start=0, count=7, alloc=4096)
        result = transport.execute(cdb, b"", 4096, 30.0)
    report = smc.decode_element_status(bytes(result.data))
    assert sorted(e.address for e in report.elements) == [1, 10, 11, 12, 13, 500, 501]


def test_altres_reads_every_type_in_one_loop(changer):
    """mtx's altres asks for `storage` elements of all types from address 0, then from after the last one seen,
    until the addresses stop moving: with the L700 layout it sees the mail slots and the storage slots again, and
    warns as mtx does, but the drives are the same as in the per-type status."""
    plain, alt = mtx(changer, "status"), mtx(changer, "altres", "status")
    assert alt[0] == 0
    drives = [line for line in plain[1].splitlines() if line.startswith(b"Data Transfer Element")]
    assert [line for line in alt[1].splitlines() if line.startswith(b"Data Transfer Element")] == drives
    assert alt[2] and all(line.startswith(b"Warning:Too Many Storage Elements Reported (expected 28, now have ")
                          for line in alt[2].splitlines())
