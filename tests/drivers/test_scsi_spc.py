"""SPC data codecs: INQUIRY, VPD pages, mode parameter data, log pages; exact bytes and round trips."""

import pytest
from hypothesis import given, strategies as st

from drivers.scsi import spc
from drivers.scsi.spc import BlockDescriptor, Designator, InquiryData, LogParameter, ModeData


def test_inquiry_of_an_ibm_lto8_drive():
    data = InquiryData(spc.PDT_TAPE, "IBM", "ULT3580-TD8", "2160", rmb=True, version=0x05).encode()
    assert data[:8].hex() == "018005021f000000"  # tape, RMB, SPC-3, format 2, 31 more bytes
    assert data[4] == 31 and len(data) == 36
    assert data[8:36] == b"IBM     ULT3580-TD8     2160"
    # mtx prints the raw 8/16/4 bytes; lsscsi trims them
    assert InquiryData.decode(data).product == "ULT3580-TD8"


def test_changer_inquiry_keeps_mchngr_zero_and_serial_in_vendor_specific():
    data = InquiryData(spc.PDT_CHANGER, "STK", "L700", "0108", vendor_specific=b"XYZZY_A").encode()
    assert data[0] == 0x08 and data[6] & 0x08 == 0
    assert len(data) == 56 and data[4] == 51
    assert data[36:56] == b"XYZZY_A" + bytes(13)
    back = InquiryData.decode(data[:56])
    assert back.vendor_specific == b"XYZZY_A" + bytes(13)
    assert InquiryData.decode(data[:36]).vendor_specific == b""  # alloc 36: vendor bytes cut off


@given(
    st.integers(0, 31),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", max_size=8),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789- ", max_size=16).map(str.rstrip),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_inquiry_round_trips(pdt, vendor, product, rmb, mchngr, cmdque):
    inq = InquiryData(pdt, vendor, product, "A1B2", rmb=rmb, mchngr=mchngr, cmdque=cmdque)
    assert InquiryData.decode(inq.encode()) == inq


def test_too_long_strings_are_refused():
    with pytest.raises(ValueError, match="vendor 'VENDORNAME' is longer than 8"):
        InquiryData(1, "VENDORNAME", "X", "1").encode()


def test_vpd_pages():
    assert spc.encode_vpd_supported_pages(1, (0x80, 0x00, 0x83, 0xB0)).hex() == "0100000400" "8083b0"
    assert spc.decode_vpd_supported_pages(bytes.fromhex("01000004008083b0")) == (0, 0x80, 0x83, 0xB0)
    serial = spc.encode_vpd_serial(1, "10WT012345")
    assert serial == bytes.fromhex("0180000a") + b"10WT012345"
    assert spc.decode_vpd_serial(serial) == "10WT012345"
    t10 = Designator.t10_vendor("STK", "L700", "XYZZY_A")
    page = spc.encode_vpd_device_identification(8, (t10, Designator(3, bytes.fromhex("5000e11100001234"), code_set=1)))
    assert page[4:8].hex() == "0201001f" and page[8:39] == b"STK     L700            XYZZY_A"
    assert spc.decode_vpd_device_identification(page) == (t10, Designator(3, bytes.fromhex("5000e11100001234"), 1))


def test_mode_sense_header_and_block_descriptor_for_st():
    # st's MODE SENSE(6) alloc 12: header + block descriptor. LTO-8 medium 0x88, WP, buffered, density 0x5E, variable
    mode = ModeData(medium_type=0x88, wp=True, buffered_mode=1, block_descriptor=BlockDescriptor(0x5E, 0, 0))
    assert mode.encode().hex() == "0b889008" "5e000000" "00000000"
    ten = mode.encode(ten=True)
    assert ten.hex() == "000e88900000" "0008" "5e00000000000000"
    assert ModeData.decode(ten, ten=True) == mode
    select = ModeData(block_descriptor=BlockDescriptor(block_length=262144)).encode(for_select=True)
    assert select.hex() == "00000008" "00000000" "00040000"  # mt setblk 262144
    assert ModeData.decode(select).block_descriptor.block_length == 262144


pages = st.lists(
    st.builds(lambda code, body: bytes([code, len(body)]) + body, st.integers(1, 0x3E), st.binary(max_size=20)),
    max_size=3,
)


@given(
    st.integers(0, 255),
    st.booleans(),
    st.integers(0, 7),
    st.integers(0, 15),
    st.none() | st.builds(BlockDescriptor, st.integers(0, 255), st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFFFF)),
    pages,
    st.booleans(),
)
def test_mode_data_round_trips(medium, wp, buffered, speed, descriptor, page_list, ten):
    mode = ModeData(medium, wp, buffered, speed, descriptor, tuple(page_list))
    assert ModeData.decode(mode.encode(ten=ten), ten=ten) == mode


def test_mode_data_cut_by_allocation_keeps_whole_pages_only():
    page = bytes([0x0F, 0x0E]) + bytes(14)
    mode = ModeData(block_descriptor=BlockDescriptor(), pages=(page,))
    assert ModeData.decode(mode.encode()[:12]).pages == ()


def test_log_page_round_trip_and_cut():
    params = (LogParameter(1, b"\x00\x01"), LogParameter(0x8000, b"\x05", 0x40))
    data = spc.encode_log_page(0x0C, params)
    assert data.hex() == "0c00000b" "0001000200" "01" "8000400105"
    assert spc.decode_log_page(data) == (0x0C, params)
    assert spc.decode_log_page(data[:10]) == (0x0C, params[:1])


def test_report_luns_exact_bytes():
    # One LUN 0 (every simulated device is LUN 0 of its own target): list length 8, then 00 00 00 00 00 00 00 00
    assert spc.encode_report_luns([0]).hex() == "00000008" "00000000" "0000000000000000"
    # LUN 1 (a changer behind a drive, lsscsi-04) peripheral addressing; 300 flat space (method 01b)
    data = spc.encode_report_luns([300, 1, 0])
    assert data.hex() == "00000018" "00000000" "0000000000000000" "0001000000000000" "412c000000000000"
    assert spc.decode_report_luns(data) == (0, 1, 300)
    assert spc.report_luns_length(data[:16]) == 32
    assert spc.decode_report_luns(data[:20]) == (0,)  # alloc cut mid-entry: only whole LUNs
    assert spc.encode_report_luns([]).hex() == "00000000" "00000000"  # well-known LUNs only: none here


def test_report_luns_refuses_what_it_cannot_number():
    with pytest.raises(ValueError, match="out of range 0..16383"):
        spc.encode_lun(0x4000)
    with pytest.raises(ValueError, match="hierarchical"):
        spc.decode_lun(bytes.fromhex("0001000200000000"))
    with pytest.raises(ValueError, match="address method 2"):
        spc.decode_lun(bytes.fromhex("8001000000000000"))
    with pytest.raises(ValueError, match="needs an 8-byte header"):
        spc.decode_report_luns(b"\0\0\0\x08")


@given(st.lists(st.integers(0, spc.MAX_FLAT_LUN), max_size=20))
def test_report_luns_round_trips(luns):
    assert spc.decode_report_luns(spc.encode_report_luns(luns)) == tuple(sorted(set(luns)))


def test_supported_log_pages_exact_bytes():
    data = spc.encode_supported_log_pages([0x31, 0x2E, 0x0C])
    assert data.hex() == "00000004" "000c2e31"  # page 0x00 lists itself, ascending
    assert spc.decode_supported_log_pages(data) == (0x00, 0x0C, 0x2E, 0x31)
    assert spc.decode_supported_log_pages(data[:6]) == (0x00, 0x0C)
    with pytest.raises(ValueError, match="not the supported pages list"):
        spc.decode_supported_log_pages(bytes.fromhex("2e000000"))
    with pytest.raises(ValueError, match="0x00..0x3F"):
        spc.encode_supported_log_pages([0x40])


def test_block_descriptor_field_pointers_come_from_the_codec_table():
    assert [BlockDescriptor.offset(n) for n in ("density", "blocks", "block_length")] == [0, 1, 5]
    assert BlockDescriptor(0x5E, 0x010203, 0x040506).encode().hex() == "5e010203" "00040506"
    # MODE SELECT(6): 4-byte header; (10): 8-byte header (mt setblk and setdensity errors point here)
    assert ModeData.block_descriptor_pointer("block_length") == 9
    assert ModeData.block_descriptor_pointer("density", ten=True) == 8
    assert ModeData(block_descriptor=BlockDescriptor()).pages_pointer() == 12
    assert ModeData().pages_pointer(ten=True) == 8
