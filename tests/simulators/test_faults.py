"""Each injectable fault once, planted with `tapeline-vtl fault` as an operator would, through the sense it causes."""

from __future__ import annotations

import json

from drivers.scsi import spc, ssc, tapelog
from simulators.vtl.cli import main as vtl_main
from tests.simulators.conftest import DRIVE0, SLOT0, code, sense


def fault(devices, *args: str) -> None:
    assert vtl_main(["fault", str(devices.directory), *args]) == 0


def write(drive, data: bytes):
    return drive.execute(ssc.WRITE_6.encode(length=len(data)), data)


def test_media_error_at_block_one_shot_and_persistent(devices):
    devices.load()
    d = devices.drive
    for _ in range(4):
        assert code(write(d, b"x" * 100)) == "GOOD"
    fault(devices, "media-error", "A00000L8", "--at", "2")
    fault(devices, "media-error", "A00000L8", "--at", "3", "--persistent")
    d.execute(ssc.LOCATE_10.encode(block=2))
    r = d.execute(ssc.READ_6.encode(length=100), b"", 100)
    assert (code(r), sense(r).information) == ("3/11/00", 100)
    assert code(d.execute(ssc.READ_6.encode(length=100), b"", 100)) == "GOOD"  # one-shot: gone, block 2 reads
    for _ in range(2):
        assert code(d.execute(ssc.READ_6.encode(length=100), b"", 100)) == "3/11/00"  # persistent at block 3
    r = d.execute(spc.LOG_SENSE.encode(pc=1, page_code=tapelog.PAGE_TAPE_ALERT, alloc=400), b"", 400)
    assert 0x05 in [f.number for f in tapelog.decode_tape_alert(r.data)]
    assert code(write(d, b"y")) == "3/0C/00"  # WRITE at block 3 fails too
    assert vtl_main(["fault", str(devices.directory), "--clear", "media-error"]) == 0
    assert code(write(d, b"y")) == "GOOD"


def test_drive_offline(devices):
    fault(devices, "drive-offline", "drive1", "--persistent")
    assert code(devices.drives[1].execute(spc.TEST_UNIT_READY.encode())) == "2/04/12"  # NOT READY, offline
    assert code(devices.drives[1].execute(ssc.LOAD_UNLOAD.encode(load=1))) == "2/04/12"
    assert code(devices.move(SLOT0, DRIVE0 + 1)) == "4/53/00"  # the library's load into it fails
    r = devices.drives[1].execute(spc.INQUIRY.encode(alloc=96), b"", 96)  # still answers INQUIRY
    assert code(r) == "GOOD"
    assert vtl_main(["fault", str(devices.directory), "--clear", "drive-offline", "drive1"]) == 0
    devices.load(SLOT0, drive=1)


def test_drive_offline_is_a_state_until_cleared(devices, capsys):
    """Offline is not an event: TEST UNIT READY (which st-like tools send at open) does not consume it."""
    devices.load(drive=1)
    fault(devices, "drive-offline", "drive1")  # no --persistent: still a state
    for cdb in (spc.TEST_UNIT_READY.encode(), ssc.REWIND.encode(), ssc.REWIND.encode()):
        assert code(devices.drives[1].execute(cdb)) == "2/04/12"
    capsys.readouterr()
    assert vtl_main(["fault", str(devices.directory), "--list"]) == 0
    assert capsys.readouterr().out == "drive-offline on drive1 (until cleared)\n"
    assert vtl_main(["fault", str(devices.directory), "--clear", "drive-offline", "drive1"]) == 0
    assert code(devices.drives[1].execute(ssc.REWIND.encode())) == "GOOD"


def test_states_are_listed_with_what_ends_them(devices, capsys):
    fault(devices, "write-protect", "A00002L8")
    fault(devices, "cleaning-required", "drive0")
    fault(devices, "load-failure", "A00001L8")
    capsys.readouterr()
    assert vtl_main(["fault", str(devices.directory), "--list"]) == 0
    assert capsys.readouterr().out == ("write-protect on A00002L8 (until cleared)\n"
                                       "cleaning-required on drive0 (until a cleaning cartridge is used)\n"
                                       "load-failure on A00001L8 (one-shot)\n")
    assert code(devices.move(SLOT0, DRIVE0)) == "GOOD"  # the request fires (00/00/17 once), the state stays
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "6/28/00"
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "0/00/17"
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
    capsys.readouterr()
    assert vtl_main(["fault", str(devices.directory), "--list"]) == 0
    assert "cleaning-required on drive0 (until a cleaning cartridge is used)" in capsys.readouterr().out


def test_cleaning_required_sets_tapealert_clean_now(devices):
    fault(devices, "cleaning-required", "drive0")
    devices.move(SLOT0, DRIVE0)
    devices.drive.execute(spc.TEST_UNIT_READY.encode())
    assert code(devices.drive.execute(spc.TEST_UNIT_READY.encode())) == "0/00/17"
    r = devices.drive.execute(spc.LOG_SENSE.encode(pc=1, page_code=tapelog.PAGE_TAPE_ALERT, alloc=400), b"", 400)
    assert [f.number for f in tapelog.decode_tape_alert(r.data)] == [0x14]


def test_early_eom_at_bytes(devices):
    fault(devices, "early-eom", "A00000L8", "--at", str(100_000))
    devices.load()
    results = [write(devices.drive, bytes([i]) * 10_000) for i in range(11)]
    # 100,000 bytes is less than one 8 MiB block: the early-warning zone starts at BOP, so every block that fits is
    # written with 00/00/02 EOM=1, and the one that does not is refused
    assert [code(r) for r in results] == ["0/00/02"] * 10 + ["D/00/02"]
    assert all(sense(r).eom for r in results[:10])
    assert code(devices.drive.execute(ssc.REWIND.encode())) == "GOOD"
    for i in range(10):
        back = devices.drive.execute(ssc.READ_6.encode(length=10_000), b"", 10_000)
        assert code(back) == "GOOD" and bytes(back.data) == bytes([i]) * 10_000
    assert code(devices.drive.execute(ssc.READ_6.encode(length=10_000), b"", 10_000)) == "8/00/05"  # not written


def test_early_eom_warns_one_largest_block_ahead(devices):
    mib = 1 << 20
    fault(devices, "early-eom", "A00000L8", "--at", str(20 * mib))
    devices.load()
    results = [code(write(devices.drive, b"m" * mib)) for _ in range(21)]
    # early warning at 20 - 8 = 12 MiB: the 12th block reaches it; the 20th ends exactly at the end; the 21st overflows
    assert results == ["GOOD"] * 11 + ["0/00/02"] * 9 + ["D/00/02"]


def test_cartridge_fails_to_load_once(devices):
    fault(devices, "load-failure", "A00001L8")
    assert code(devices.move(SLOT0 + 1, DRIVE0)) == "4/53/00"
    assert code(devices.move(SLOT0 + 1, DRIVE0)) == "GOOD"  # one-shot: the retry works


def test_write_protect_a_cartridge(devices):
    fault(devices, "write-protect", "A00002L8")
    devices.load(SLOT0 + 2)
    assert code(write(devices.drive, b"x")) == "7/27/00"


def test_fault_command_validates_and_lists(devices, capsys):
    d = str(devices.directory)
    assert vtl_main(["fault", d, "media-error", "A00000L8"]) == 2  # bad usage
    assert "needs --at" in capsys.readouterr().err
    assert vtl_main(["fault", d, "drive-offline", "drive9"]) == 2
    assert "drive0..drive1" in capsys.readouterr().err
    assert vtl_main(["fault", d, "melt", "drive0"]) == 2
    assert vtl_main(["fault", d, "early-eom", "A00000L8", "--at", "5000"]) == 0
    capsys.readouterr()
    assert vtl_main(["fault", d, "--list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"kind": "early-eom", "target": "A00000L8", "arg": 5000, "persistent": False}]
