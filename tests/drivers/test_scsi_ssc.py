"""Tape data codecs: READ POSITION, READ BLOCK LIMITS, mode pages 0x0F/0x10, TapeAlert and capacity log pages."""

import pytest
from hypothesis import given, strategies as st

from drivers.scsi import ssc, tapelog
from drivers.scsi.ssc import BlockLimits, CompressionPage, DeviceConfigurationPage, Position


def test_read_position_short_form_at_bop():
    data = Position(block=0, bop=True).encode()
    assert data.hex() == "80000000" "00000000" "00000000" "00000000" "00000000"
    pos = Position.decode(data)
    assert pos.bop and pos.block == 0 and pos.last_block == 0 and pos.file is None


def test_read_position_long_form_carries_the_file_number():
    data = Position(block=78585, file=3, eop=True).encode(ssc.READ_POSITION_LONG)
    assert len(data) == 32
    assert data.hex() == "40000000" "00000000" "00000000000132f9" "0000000000000003" "0000000000000000"
    assert Position.decode(data, ssc.READ_POSITION_LONG) == Position(block=78585, file=3, eop=True, set_number=0)


@given(
    st.integers(0, 0xFFFFFFFF), st.integers(0, 255), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
    st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFFFFFF),
)  # fmt: skip
def test_short_form_round_trips(block, partition, bop, eop, bpew, unknown, in_buffer, bytes_in_buffer):
    pos = Position(block, partition, bop, eop, bpew, unknown, block, in_buffer, bytes_in_buffer)
    assert Position.decode(pos.encode()) == pos


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.booleans())
def test_long_form_round_trips(block, partition, file, bop):
    pos = Position(block=block, partition=partition, file=file, bop=bop, set_number=0)
    assert Position.decode(pos.encode(ssc.READ_POSITION_LONG), ssc.READ_POSITION_LONG) == pos


def test_read_block_limits_of_lto():
    assert BlockLimits().encode().hex() == "00800000" "0001"  # tapeinfo: MaxBlock 8388608, MinBlock 1
    assert BlockLimits.decode(bytes.fromhex("008000000001")) == BlockLimits(8388608, 1, 0)
    with pytest.raises(ValueError, match="6"):
        BlockLimits.decode(b"\0\0")


def test_compression_page():
    page = CompressionPage(dce=True, dcc=True, dde=True)
    assert page.encode().hex() == "0f0e" "c080" "000000ff" "000000ff" "00000000"
    assert CompressionPage.decode(page.encode()) == page
    off = CompressionPage(dce=False)
    assert CompressionPage.decode(off.encode()).dce is False


def test_device_configuration_page_round_trips():
    page = DeviceConfigurationPage(active_partition=1, write_delay_time=100, select_compression=0)
    raw = page.encode()
    assert raw[:2].hex() == "100e" and len(raw) == 16
    assert DeviceConfigurationPage.decode(raw) == page


def test_tape_alert_page_bytes():
    data = tapelog.encode_tape_alert({0x14})
    assert data[:4].hex() == "2e000140"  # 64 parameters of 5 bytes
    assert data[4:9].hex() == "0001c00100"  # flag 1, control C0, length 1, clear
    assert data[4 + 19 * 5 : 4 + 20 * 5].hex() == "0014c00101"  # flag 0x14 set
    (flag,) = tapelog.decode_tape_alert(data)
    assert (flag.number, flag.name, flag.severity) == (0x14, "Clean now", "critical")
    assert "cleaning cartridge" in flag.action
    assert str(flag).startswith("TapeAlert[20]: Clean now (critical)")


@given(st.sets(st.integers(1, 64)))
def test_tape_alert_round_trips(flags):
    assert {f.number for f in tapelog.decode_tape_alert(tapelog.encode_tape_alert(flags))} == flags


def test_tape_alert_table_matches_the_reference():
    f = tapelog.TAPE_ALERT_FLAGS
    assert (f[0x04].name, f[0x04].severity) == ("Media", "critical")
    assert (f[0x09].name, f[0x09].severity) == ("Write protect", "critical")
    assert (f[0x0A].severity, f[0x0B].name) == ("information", "Cleaning media")
    assert (f[0x37].name, f[0x3B].name, f[0x3C].name) == (
        "Loading failure",
        "WORM medium integrity check failed",
        "WORM medium overwrite attempted",
    )
    assert len(f) == 64 and f[0x40].name.startswith("Reserved")
    with pytest.raises(ValueError, match="1..64"):
        tapelog.encode_tape_alert({65})


def test_tape_capacity_page_in_mib():
    cap = tapelog.TapeCapacity(remaining=(11_444_224, 0), maximum=(11_444_224, 0))  # LTO-8 12 TB in MiB
    data = cap.encode()
    assert data[:4].hex() == "31000020"  # four 8-byte parameters
    assert data[4:12].hex() == "00010004" + (11_444_224).to_bytes(4, "big").hex()
    assert tapelog.TapeCapacity.decode(data) == cap
    with pytest.raises(ValueError, match="not tape capacity"):
        tapelog.TapeCapacity.decode(tapelog.encode_tape_alert(()))


def test_read_attribute_cdb_asks_for_the_barcode_exactly():
    cdb = ssc.READ_ATTRIBUTE.encode(service_action=ssc.READ_ATTRIBUTE_VALUES, first_attribute=ssc.MAM_BARCODE, alloc=41)
    assert cdb.hex() == "8c00000000000000" "0806" "00000029" "0000"
    fields = ssc.READ_ATTRIBUTE.decode(cdb)
    assert (fields["first_attribute"], fields["alloc"], fields["partition"]) == (0x0806, 41, 0)


def test_barcode_attribute_is_32_ascii_bytes_space_padded():
    data = ssc.encode_attributes([ssc.barcode_attribute("A00012L8")])
    assert data.hex() == "00000025" "0806" "01" "0020" + (b"A00012L8" + b" " * 24).hex()
    (attr,) = ssc.decode_attributes(data)
    assert (attr.identifier, attr.format, attr.read_only, attr.text) == (0x0806, ssc.ATTRIBUTE_FORMAT_ASCII, False,
                                                                          "A00012L8")


def test_attribute_list_cut_by_the_allocation_length_drops_the_partial_one():
    data = ssc.encode_attributes([ssc.Attribute(0x0400, b"\x01\x02", read_only=True), ssc.barcode_attribute("X")])
    assert ssc.decode_attributes(data[:20]) == (ssc.Attribute(0x0400, b"\x01\x02", read_only=True),)
    assert ssc.decode_attributes(ssc.encode_attributes([])) == ()
    with pytest.raises(ValueError, match="needs at least 4"):
        ssc.decode_attributes(b"\0\0")
