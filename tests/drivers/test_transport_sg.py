"""The sg transport without a device: sg_io_hdr_t layout, the buffers a command points at, result judging, open errors.

No /dev/sg node exists on the machines that run these tests, so the ioctl itself is not exercised; everything
around it is, including the header layout against the kernel's own header when a C compiler is present.
"""

from __future__ import annotations

import ctypes
import subprocess

import pytest

from drivers.errors import DeviceNotFound, TransportError
from drivers.transport import sg
from drivers.transport.base import open_transport
from drivers.transport.sg import SgCommand, SgIoHdr, judge

# (field, offset, size) from reference/scsi.md §1 (x86-64).
LAYOUT = [
    ("interface_id", 0, 4), ("dxfer_direction", 4, 4), ("cmd_len", 8, 1), ("mx_sb_len", 9, 1),
    ("iovec_count", 10, 2), ("dxfer_len", 12, 4), ("dxferp", 16, 8), ("cmdp", 24, 8), ("sbp", 32, 8),
    ("timeout", 40, 4), ("flags", 44, 4), ("pack_id", 48, 4), ("usr_ptr", 56, 8), ("status", 64, 1),
    ("masked_status", 65, 1), ("msg_status", 66, 1), ("sb_len_wr", 67, 1), ("host_status", 68, 2),
    ("driver_status", 70, 2), ("resid", 72, 4), ("duration", 76, 4), ("info", 80, 4),
]
URL = "sg:///dev/sg3"
INQUIRY = bytes([0x12, 0, 0, 0, 0x38, 0])


def test_header_is_88_bytes_with_every_field_where_the_kernel_has_it():
    assert ctypes.sizeof(SgIoHdr) == 88
    assert [(name, getattr(SgIoHdr, name).offset, getattr(SgIoHdr, name).size) for name, _ in SgIoHdr._fields_] \
        == LAYOUT


def test_layout_matches_the_installed_kernel_header(tmp_path):
    fields = " ".join(f'printf("{n} %zu %zu\\n", offsetof(sg_io_hdr_t, {n}), sizeof(((sg_io_hdr_t*)0)->{n}));'
                      for n, _, _ in LAYOUT)
    src = tmp_path / "layout.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include <scsi/sg.h>\nint main(void){"
                   f'printf("size %zu 0\\n", sizeof(sg_io_hdr_t)); {fields} return 0;}}\n')
    subprocess.run(["cc", "-o", str(tmp_path / "layout"), str(src)], check=True)
    out = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "size 88 0"
    assert [tuple(line.split()) for line in out[1:] if line] == [(n, str(o), str(s)) for n, o, s in LAYOUT]


def test_command_points_the_header_at_its_buffers():
    cmd = SgCommand(INQUIRY, b"", 56, timeout=30)
    hdr = cmd.hdr
    assert hdr.interface_id == ord("S")
    assert hdr.dxfer_direction == sg.SG_DXFER_FROM_DEV and hdr.dxfer_len == 56
    assert hdr.cmd_len == 6 and ctypes.string_at(hdr.cmdp, 6) == INQUIRY
    assert hdr.mx_sb_len == 64 and hdr.timeout == 30_000
    ctypes.memmove(hdr.dxferp, b"IBM", 3)  # what the kernel does with the data-in buffer
    assert cmd.data_in[:3] == b"IBM"


def test_write_points_at_the_data_and_a_move_carries_none():
    block = b"\xAA" * 4096
    write = SgCommand(bytes([0x0A, 1, 0, 0, 1, 0]), block, 0, timeout=300)
    assert write.hdr.dxfer_direction == sg.SG_DXFER_TO_DEV and write.hdr.dxfer_len == 4096
    assert ctypes.string_at(write.hdr.dxferp, 4096) == block
    view = SgCommand(bytes([0x0A, 1, 0, 0, 1, 0]), memoryview(bytearray(b"xyz")), 0, timeout=1)
    assert ctypes.string_at(view.hdr.dxferp, 3) == b"xyz"
    move = SgCommand(bytes([0xA5, 0, 0, 0, 0, 0x10, 0, 0x01, 0, 0, 0, 0]), b"", 0, timeout=300)
    assert move.hdr.dxfer_direction == sg.SG_DXFER_NONE and move.hdr.dxfer_len == 0 and move.hdr.cmd_len == 12


def test_command_refuses_what_sg_io_cannot_carry():
    with pytest.raises(ValueError, match="one way"):
        SgCommand(INQUIRY, b"x", 4, timeout=1)
    with pytest.raises(ValueError, match="6 to 16"):
        SgCommand(b"\x00" * 5, b"", 0, timeout=1)


def filled(cmd: SgCommand, **fields: int) -> SgCommand:
    """Fill the header as the kernel would after the command."""
    for name, value in fields.items():
        setattr(cmd.hdr, name, value)
    return cmd


def test_good_command_with_a_short_read_trims_the_data():
    cmd = SgCommand(INQUIRY, b"", 56, timeout=30)
    ctypes.memmove(cmd.hdr.dxferp, b"x" * 36, 36)
    filled(cmd, resid=20, duration=3)
    result = judge(cmd.hdr, cmd.sense.raw, cmd.data_in, URL, INQUIRY)
    assert result.status == 0 and result.resid == 20 and bytes(result.data) == b"x" * 36 and result.sense == b""


def test_check_condition_returns_the_sense_the_device_wrote():
    cmd = SgCommand(bytes(6), b"", 0, timeout=30)
    sense = bytes([0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x28, 0x00, 0, 0, 0, 0])
    ctypes.memmove(cmd.hdr.sbp, sense, len(sense))
    filled(cmd, status=0x02, masked_status=0x01, sb_len_wr=18, driver_status=sg.DRIVER_SENSE)
    result = judge(cmd.hdr, cmd.sense.raw, cmd.data_in, URL, bytes(6))
    assert result.status == 0x02 and result.sense == sense  # UNIT ATTENTION is the caller's to handle


def test_sense_reported_by_the_driver_alone_is_a_check_condition():
    cmd = SgCommand(bytes(6), b"", 0, timeout=30)
    ctypes.memmove(cmd.hdr.sbp, b"\x70\x00\x02", 3)
    filled(cmd, status=0, sb_len_wr=3, driver_status=0x28)  # DRIVER_SENSE with a "suggest" bit
    assert judge(cmd.hdr, cmd.sense.raw, None, URL, bytes(6)).status == 0x02


def test_busy_and_reservation_conflict_reach_the_caller():
    for status in (0x08, 0x18):
        cmd = filled(SgCommand(bytes(6), b"", 0, timeout=1), status=status)
        assert judge(cmd.hdr, cmd.sense.raw, None, URL, bytes(6)).status == status


def test_adapter_and_driver_failures_are_transport_errors_naming_the_device():
    cmd = filled(SgCommand(INQUIRY, b"", 56, timeout=30), host_status=3)
    with pytest.raises(TransportError, match=r"sg:///dev/sg3: command 0x12 failed in the adapter: DID_TIME_OUT"):
        judge(cmd.hdr, cmd.sense.raw, cmd.data_in, URL, INQUIRY)
    cmd = filled(SgCommand(INQUIRY, b"", 56, timeout=30), driver_status=0x06)
    with pytest.raises(TransportError, match=r"sg:///dev/sg3: command 0x12 failed in the sg driver: DRIVER_TIMEOUT"):
        judge(cmd.hdr, cmd.sense.raw, cmd.data_in, URL, INQUIRY)
    # Unlike mtx: a GOOD status byte does not hide a host failure.
    cmd = filled(SgCommand(INQUIRY, b"", 56, timeout=30), status=0, host_status=1)
    with pytest.raises(TransportError, match="DID_NO_CONNECT"):
        judge(cmd.hdr, cmd.sense.raw, cmd.data_in, URL, INQUIRY)


def test_missing_node_says_which_and_how_to_find_one():
    with pytest.raises(DeviceNotFound, match=r"sg:///dev/sg97: /dev/sg97 does not exist; .*lsscsi -g"):
        open_transport("sg:///dev/sg97")


def test_a_file_that_is_not_sg_is_named(tmp_path):
    plain = tmp_path / "sg0"
    plain.write_bytes(b"")
    with pytest.raises(DeviceNotFound, match=rf"{plain} is not an sg device"):
        sg.SgTransport(f"sg://{plain}")
    with pytest.raises(DeviceNotFound, match="/dev/null is not an sg device"):
        sg.SgTransport("sg:///dev/null")


def test_bad_sg_urls():
    with pytest.raises(DeviceNotFound, match="three slashes"):
        sg.SgTransport("sg://dev/sg3")
