"""What survives: restarts, kill -9 in the middle of writes, torn index records; and who may open a library."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from drivers.errors import DeviceBusy, DeviceNotFound
from drivers.scsi import smc, spc, ssc
from simulators.vtl.cartridge import MAGIC, RECORD, Cartridge
from simulators.vtl.local import LocalTransport
from tests.simulators.conftest import DRIVE0, SLOT0, code, open_devices

WRITER = textwrap.dedent("""
    import sys
    from drivers.scsi import ssc
    from simulators.vtl.local import LocalTransport
    drive = LocalTransport(sys.argv[1])
    i = 0
    while True:
        block = (i.to_bytes(4, "big") * 16384)[: 4096 + (i % 7) * 1000]
        r = drive.execute(ssc.WRITE_6.encode(fixed=0, length=len(block)), block)
        if r.status != 0:
            raise SystemExit(f"WRITE {i} failed: {r}")
        i += 1
        print(i, flush=True)
""")


def expected_block(i: int) -> bytes:
    return (i.to_bytes(4, "big") * 16384)[: 4096 + (i % 7) * 1000]


def test_restart_keeps_cartridges_places_and_data(library):
    devs = open_devices(library)
    devs.load(SLOT0 + 3)
    devs.drive.execute(ssc.WRITE_6.encode(length=5), b"hello")
    devs.drive.execute(ssc.WRITE_FILEMARKS_6.encode(count=1))
    assert code(devs.move(SLOT0 + 5, SLOT0 + 23)) == "GOOD"
    devs.close()

    devs = open_devices(library)
    try:
        report = smc.decode_element_status(devs.changer.execute(smc.READ_ELEMENT_STATUS.encode(
            voltag=1, element_type=0, start=0, count=100, alloc=4096), b"", 4096).data)
        by_address = {e.address: e for e in report.elements}
        assert by_address[DRIVE0].primary_tag == "A00003L8" and by_address[DRIVE0].source == SLOT0 + 3
        assert by_address[SLOT0 + 23].primary_tag == "A00005L8" and not by_address[SLOT0 + 5].full
        devs.drive.execute(ssc.REWIND.encode())
        r = devs.drive.execute(ssc.READ_6.encode(length=5), b"", 5)
        assert (code(r), bytes(r.data)) == ("GOOD", b"hello")
        assert code(devs.drive.execute(ssc.READ_6.encode(length=5), b"", 5)) == "0/00/01"
    finally:
        devs.close()


def test_kill_9_during_writes_keeps_every_acknowledged_block(library):
    devs = open_devices(library)
    devs.load()
    devs.close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, f"local://{library}/drive0"], stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    acknowledged = 0
    deadline = time.monotonic() + 60
    while acknowledged < 3000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Blocks acknowledged between our last readline and the kill were printed but not read: take them too.
    acknowledged = max([acknowledged, *(int(x) for x in proc.stdout.read().split())])
    assert acknowledged >= 3000

    devs = open_devices(library)
    try:
        d = devs.drive
        d.execute(ssc.REWIND.encode())
        for i in range(acknowledged):
            r = d.execute(ssc.READ_6.encode(length=16384), b"", 16384)
            assert bytes(r.data) == expected_block(i), f"block {i} of {acknowledged} acknowledged"
    finally:
        devs.close()


def test_torn_last_index_record_is_dropped(tmp_path):
    c = Cartridge(tmp_path, "T00001L8", 10**9)
    for i in range(3):
        c.write(i, bytes([i]) * 100)
    c.close()
    index = tmp_path / "T00001L8.index"
    with open(index, "ab") as fh:
        fh.write(RECORD.pack(300, 100, 0)[:9])  # a record cut short by a crash
    c = Cartridge(tmp_path, "T00001L8", 10**9)
    assert c.eod == 3 and index.stat().st_size == len(MAGIC) + 3 * RECORD.size
    c.write(3, b"z" * 10)
    assert c.read(3, 10) == b"z" * 10
    c.close()
    with open(index, "r+b") as fh:  # a full-length record with a bad checksum (half-written page)
        fh.seek(len(MAGIC) + 3 * RECORD.size + 8)
        fh.write(b"\xff\xff\xff\x7f")
    c = Cartridge(tmp_path, "T00001L8", 10**9)
    assert c.eod == 3
    c.close()


def test_second_process_is_told_who_holds_the_library_and_which_url(library):
    proc = subprocess.Popen([sys.executable, "-m", "simulators.vtl.cli", "serve", str(library), "--listen",
                             "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "serving" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "serving" in line, line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        with pytest.raises(DeviceBusy) as caught:
            LocalTransport(f"local://{library}/changer")
        message = str(caught.value)
        assert f"pid {proc.pid}" in message and url in message and "use its service URL" in message
        assert "\n" not in message
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    LocalTransport(f"local://{library}/changer").close()  # released on exit


def test_bad_urls_say_what_to_do(tmp_path, library):
    with pytest.raises(DeviceNotFound, match="tapeline-vtl init"):
        LocalTransport(f"local://{tmp_path}/nothing/changer")
    with pytest.raises(DeviceNotFound, match="has no device 'drive7'"):
        LocalTransport(f"local://{library}/drive7")
    with pytest.raises(DeviceNotFound, match="absolute library directory"):
        LocalTransport("local:///changer")
    with pytest.raises(DeviceNotFound, match="not a local device URL"):
        LocalTransport("local://changer")


def test_one_process_shares_the_library_between_transports(library):
    a = LocalTransport(f"local://{library}/changer")
    b = LocalTransport(f"local://{library}/changer")
    a.close()
    assert code(b.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
    b.close()


def position(drive) -> ssc.Position:
    r = drive.execute(ssc.READ_POSITION.encode(service_action=ssc.READ_POSITION_LONG), b"", 32)
    assert code(r) == "GOOD", code(r)
    return ssc.Position.decode(r.data, ssc.READ_POSITION_LONG)


def test_a_threaded_drive_keeps_position_mode_and_attention_across_a_clean_close(library):
    devs = open_devices(library)
    devs.load()
    for _ in range(3):
        devs.drive.execute(ssc.WRITE_6.encode(length=4), b"data")
    devs.drive.execute(ssc.WRITE_FILEMARKS_6.encode(count=2))
    mode = spc.ModeData(block_descriptor=spc.BlockDescriptor(block_length=512)).encode(for_select=True)
    assert code(devs.drives[1].execute(spc.MODE_SELECT_6.encode(pf=1, param_len=len(mode)), mode)) == "GOOD"
    assert code(devs.move(SLOT0 + 1, DRIVE0 + 1)) == "GOOD"  # drive1: 06/28/00 pending
    devs.close()

    devs = open_devices(library)
    try:
        # drive1's MODE SELECT is drive1's own business: drive0, another target, has nothing to report
        assert code(devs.drive.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
        at = position(devs.drive)
        assert (at.block, at.file, at.bop) == (5, 2, False)  # after the two filemarks, as it was
        assert code(devs.drive.execute(ssc.WRITE_6.encode(length=4), b"more")) == "GOOD"  # appends at EOD
        assert position(devs.drive).block == 6
        d1 = devs.drives[1]
        assert [code(d1.execute(spc.TEST_UNIT_READY.encode())) for _ in range(2)] == ["6/28/00", "GOOD"]
        r = d1.execute(spc.MODE_SENSE_6.encode(alloc=12), b"", 12)
        assert spc.ModeData.decode(r.data).block_descriptor.block_length == 512
    finally:
        devs.close()


KEEPER = textwrap.dedent("""
    import sys
    from drivers.scsi import spc, ssc
    from simulators.vtl.local import LocalTransport
    drive = LocalTransport(sys.argv[1])
    drive.execute(spc.TEST_UNIT_READY.encode())  # the medium-changed attention of the load
    for i in range(4):
        drive.execute(ssc.WRITE_6.encode(length=100), bytes([i]) * 100)
    drive.execute(ssc.WRITE_FILEMARKS_6.encode(count=1))
    drive.execute(ssc.LOCATE_10.encode(block=3))  # back before the last block
    print("written", flush=True)
    if sys.argv[2] == "wait":
        sys.stdin.readline()  # killed here
""")  # exits without closing: the atexit clean close saves the drive


@pytest.mark.parametrize("end", ["exit", "kill -9"])
def test_the_next_process_finds_the_drive_where_it_was_or_power_cycled(library, end):
    devs = open_devices(library)
    devs.load(SLOT0 + 2)
    devs.close()
    proc = subprocess.Popen([sys.executable, "-c", KEEPER, f"local://{library}/drive0",
                             "wait" if end == "kill -9" else "exit"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    assert proc.stdout.readline() == "written\n"
    if end == "kill -9":
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=20) == (-signal.SIGKILL if end == "kill -9" else 0)

    devs = open_devices(library)
    try:
        d = devs.drive
        if end == "exit":
            at = position(d)
            assert (at.block, at.file) == (3, 0)  # where LOCATE left it: before the last block
            r = d.execute(ssc.READ_6.encode(length=100), b"", 100)
            assert bytes(r.data) == bytes([3]) * 100
        else:  # like a drive after a power cycle: the tape stays threaded, at BOP, with 06/29/00 once
            assert code(d.execute(spc.TEST_UNIT_READY.encode())) == "6/29/00"
            assert code(d.execute(spc.TEST_UNIT_READY.encode())) == "GOOD"
            at = position(d)
            assert (at.block, at.bop) == (0, True)
            assert code(d.execute(ssc.SPACE_6.encode(code=ssc.SPACE_END_OF_DATA))) == "GOOD"
            assert position(d).block == 5  # every acknowledged block and the filemark are there
    finally:
        devs.close()
