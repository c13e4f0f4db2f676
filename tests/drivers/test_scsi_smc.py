"""Changer data codecs: READ ELEMENT STATUS and the element address page, exact bytes of reference/scsi.md §3."""

import pytest
from hypothesis import given, strategies as st

from drivers.scsi import smc
from drivers.scsi.smc import ElementStatus, decode_element_status, encode_element_status
from drivers.scsi.spc import ModeData

STK_ID = "STK     T10000B         XYZZY_B1  "  # 34 bytes: vendor (8), product (16), serial


def test_real_mhvtl_l80_drive_page_with_device_ids():
    # RES b8 04 01f4 0004 ff 000800 00 00: DTE, DVCID, no VOLTAG, alloc 2048 (reference/scsi.md §3 worked example)
    drives = [ElementStatus(smc.ELEMENT_DATA_TRANSFER, 500 + i, device_id=STK_ID) for i in range(4)]
    data = encode_element_status(drives, voltag=False, alloc=2048, dvcid=True)
    assert data[:8].hex() == "01f40004000000d0"  # first 500, 4 elements, 208 bytes follow
    assert data[8:16].hex() == "0400003200" "0000c8"  # DTE, no tags, 50-byte descriptors, 200 bytes
    assert data[16:28].hex() == "01f4" "08" "00" "0000" "000000" "00" "0000"  # addr 500, ACCESS, empty, no source
    assert data[28:32].hex() == "02010022" and data[32:66] == STK_ID.encode()
    assert len(data) == 8 + 208
    assert decode_element_status(data).elements == tuple(drives)


def test_storage_descriptor_with_volume_tag_is_52_bytes_space_padded():
    slots = [
        ElementStatus(smc.ELEMENT_STORAGE, 1000, full=True, primary_tag="A00001L8", medium_type=smc.MEDIUM_DATA),
        ElementStatus(smc.ELEMENT_STORAGE, 1001),
    ]
    data = encode_element_status(slots, voltag=True, alloc=4096)
    assert data[:8].hex() == "03e8000200" "000070"  # 8 + 2 * 52 = 112 bytes of pages
    assert data[8:16].hex() == "0280003400" "000068"  # storage, PVOLTAG, 52-byte descriptors, 104 bytes
    full = data[16:68]
    assert full[:12].hex() == "03e8" "09" "00" "0000" "000000" "01" "0000"  # FULL+ACCESS, data medium
    assert full[12:48] == b"A00001L8" + b" " * 24 + bytes(4)
    assert full[48:] == bytes(4)
    assert data[68 + 12 : 68 + 48] == bytes(36)  # an empty slot's tag is all zeros


def test_allocation_drops_whole_descriptors_and_keeps_full_byte_counts():
    slots = [ElementStatus(smc.ELEMENT_STORAGE, 1000 + i, full=True, primary_tag=f"T{i:05d}L8") for i in range(10)]
    whole = encode_element_status(slots, voltag=True, alloc=1 << 20)
    cut = encode_element_status(slots, voltag=True, alloc=8 + 8 + 3 * 52 + 51)
    assert len(cut) == 8 + 8 + 3 * 52
    assert cut == whole[: len(cut)]  # same header and page header: counts state the full report
    report = decode_element_status(cut)
    assert [e.primary_tag for e in report.elements] == ["T00000L8", "T00001L8", "T00002L8"]
    assert not report.complete and report.needed_alloc == len(whole)
    assert encode_element_status(slots, voltag=True, alloc=8) == whole[:8]  # mtx's retry with alloc 8
    assert encode_element_status(slots, voltag=True, alloc=5) == whole[:5]


def test_no_matching_elements_gives_header_with_count_zero():
    assert encode_element_status([], voltag=True, alloc=1024) == bytes(8)
    assert decode_element_status(bytes(8)).elements == ()


def test_select_elements_orders_by_type_then_address_and_caps_the_count():
    els = [
        ElementStatus(smc.ELEMENT_DATA_TRANSFER, 0x100),
        ElementStatus(smc.ELEMENT_STORAGE, 0x401),
        ElementStatus(smc.ELEMENT_STORAGE, 0x400),
        ElementStatus(smc.ELEMENT_TRANSPORT, 0x1),
        ElementStatus(smc.ELEMENT_IMPORT_EXPORT, 0x10),
    ]
    addrs = [e.address for e in smc.select_elements(els, smc.ELEMENT_ALL, 0, 0xFFFF)]
    assert addrs == [0x1, 0x400, 0x401, 0x10, 0x100]
    assert [e.address for e in smc.select_elements(els, smc.ELEMENT_STORAGE, 0x401, 10)] == [0x401]
    assert len(smc.select_elements(els, smc.ELEMENT_ALL, 0, 2)) == 2
    data = encode_element_status(smc.select_elements(els, smc.ELEMENT_ALL, 0, 0xFFFF), voltag=True, alloc=4096)
    assert decode_element_status(data).available == 5
    assert [e.element_type for e in decode_element_status(data).elements] == [1, 2, 2, 3, 4]


def test_tags_are_read_like_mtx():
    # mhVTL pads all 36 bytes with spaces; IBM NUL-pads: both read back as the bare label
    assert smc._read_tag(b"A00001L8" + b" " * 28) == "A00001L8"
    assert smc._read_tag(b"A00001L8" + bytes(28)) == "A00001L8"
    assert smc._read_tag(bytes(36)) is None


def test_element_address_assignment_page_real_mhvtl_l80_bytes():
    page = smc.ElementAddressAssignment(1, 1, 1000, 40, 10, 4, 500, 4)
    mode = ModeData(buffered_mode=1, pages=(page.encode(),))  # mhVTL's changer sets 0x10 in the device byte
    assert mode.encode().hex() == "17001000" "1d12" "0001" "0001" "03e8" "0028" "000a" "0004" "01f4" "0004" "0000"
    assert smc.ElementAddressAssignment.decode(ModeData.decode(mode.encode()).page(0x1D)) == page
    ten = ModeData(pages=(page.encode(),)).encode(ten=True)
    assert ten[:8].hex() == "001a000000000000"  # length 26, no block descriptors
    assert smc.ElementAddressAssignment.decode(ModeData.decode(ten, ten=True).page(0x1D)) == page


def test_geometry_and_capabilities_pages_round_trip():
    geo = smc.TransportGeometry((True,), (0,))
    assert geo.encode().hex() == "1e020100"
    assert smc.TransportGeometry.decode(geo.encode()) == geo
    caps = smc.DeviceCapabilities(0b1110, (0, 0b1110, 0b1110, 0b1110), (0, 0, 0, 0))
    raw = caps.encode()
    assert len(raw) == 20 and raw[:2].hex() == "1f12"
    assert smc.DeviceCapabilities.decode(raw) == caps


tags = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=32)


@st.composite
def element(draw, kind, with_tags, with_ids):
    full = draw(st.booleans())
    return ElementStatus(
        element_type=kind,
        address=draw(st.integers(0, 0xFFFF)),
        full=full,
        impexp=draw(st.booleans()),
        except_=draw(st.booleans()),
        access=draw(st.booleans()),
        asc=draw(st.integers(0, 255)),
        ascq=draw(st.integers(0, 255)),
        svalid=draw(st.booleans()),
        medium_type=draw(st.integers(0, 7)),
        source=draw(st.integers(0, 0xFFFF)),
        lun=draw(st.integers(0, 7)),
        target_id=draw(st.integers(0, 255)),
        primary_tag=draw(tags) if with_tags and full else None,
        alternate_tag=draw(tags) if with_tags == 2 and full else None,
        device_id=draw(tags) if with_ids and kind == smc.ELEMENT_DATA_TRANSFER else None,
    )


@st.composite
def reports(draw):
    voltag = draw(st.integers(0, 2))  # 0 none, 1 primary, 2 primary + alternate
    dvcid = draw(st.booleans())
    elements = []
    for kind in (1, 2, 3, 4):
        elements += draw(st.lists(element(kind, voltag, dvcid), max_size=5))
    return elements, voltag, dvcid


@given(reports())
def test_element_status_round_trips(case):
    elements, voltag, dvcid = case
    data = encode_element_status(elements, voltag=voltag >= 1, avoltag=voltag == 2, dvcid=dvcid, alloc=1 << 20)
    report = decode_element_status(data)
    assert report.elements == tuple(elements)
    assert report.complete and report.needed_alloc == len(data)


def test_overlong_tag_is_refused():
    with pytest.raises(ValueError, match="longer than 32"):
        encode_element_status([ElementStatus(2, 1, full=True, primary_tag="X" * 33)], voltag=True, alloc=100)


def test_mtx_forms_of_the_commands_encode_as_mtx_sends_them():
    res = dict(voltag=1, element_type=smc.ELEMENT_STORAGE, start=1000, count=24, alloc=2048)
    assert smc.READ_ELEMENT_STATUS_ATTACHED.encode(**res) == bytes([0xB4]) + smc.READ_ELEMENT_STATUS.encode(**res)[1:]
    move = dict(transport=1, source=1000, destination=500, invert=1, eepos=2)
    assert smc.MOVE_MEDIUM_ATTACHED.encode(**move) == bytes.fromhex("a7 00 0001 03e8 01f4 0000 01 80".replace(" ", ""))
    exchange = smc.EXCHANGE_MEDIUM.encode(mtx_invert2=1, transport=1, source=1000, first_destination=500,
                                          second_destination=1001, inv1=1, eepos=3)
    assert exchange == bytes.fromhex("a6010001 03e801f4 03e9 02c0".replace(" ", ""))
    assert smc.START_STOP_UNIT.encode(loej=1) == bytes([0x1B, 0, 0, 0, 0x02, 0])


def test_raw_tag_fields_and_page_headers_for_mtx():
    data = encode_element_status(
        [ElementStatus(smc.ELEMENT_STORAGE, 1000, full=True, primary_tag="A00001L8"),
         ElementStatus(smc.ELEMENT_STORAGE, 1001)], voltag=True, alloc=1024)
    full, empty = smc.decode_element_status(data).elements
    assert full.primary_tag == "A00001L8"
    assert full.primary_tag_field == b"A00001L8" + b" " * 24 + bytes(4)  # padding kept, as mtx prints it
    assert empty.primary_tag_field == bytes(36) and empty.alternate_tag_field == b""
    assert smc.element_status_pages(data) == (smc.ElementStatusPage(smc.ELEMENT_STORAGE, True, False, 52, 104),)
    short = bytearray(data)
    short[10:12] = (2).to_bytes(2, "big")  # a descriptor length the decoder refuses: the header walk still reports it
    assert smc.element_status_pages(bytes(short))[0].descriptor_length == 2
