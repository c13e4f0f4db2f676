"""CDB tables: exact bytes against reference/scsi.md and the tools' captures, and round trips for every table."""

import pytest
from hypothesis import given, strategies as st

from drivers.scsi import smc, spc, ssc
from drivers.scsi.cdb import Cdb, CdbFieldError, Field
from drivers.scsi.commands import by_opcode, commands_for

ALL = (*spc.COMMANDS, *smc.COMMANDS, *ssc.COMMANDS)


@pytest.mark.parametrize(
    "cdb, values, hex_bytes",
    [
        (spc.INQUIRY, dict(alloc=0x38), "120000003800"),  # mtx inquiry
        (spc.INQUIRY, dict(evpd=1, page_code=0x80, alloc=255), "12018000ff00"),
        (spc.TEST_UNIT_READY, {}, "000000000000"),
        (spc.MODE_SENSE_6, dict(dbd=1, page_code=0x1D, alloc=0x88), "1a081d008800"),  # mtx page 0x1D
        (spc.MODE_SENSE_6, dict(alloc=0x0C), "1a0000000c00"),  # st open
        (spc.LOG_SENSE, dict(pc=1, page_code=0x2E, alloc=0x144), "4d006e00000000014400"),
        (spc.PREVENT_ALLOW_MEDIUM_REMOVAL, dict(prevent=1), "1e0000000100"),
        (spc.REPORT_LUNS, dict(alloc=0x1000), "a0000000000000001000" "0000"),
        (ssc.READ_BLOCK_LIMITS, {}, "050000000000"),
        (ssc.LOAD_UNLOAD, dict(reten=1), "1b0000000200"),  # mtx eject
        (ssc.WRITE_6, dict(fixed=0, length=262144), "0a0004000000"),
        (ssc.READ_6, dict(sili=1, length=65536), "080201000000"),
        (ssc.SPACE_6, dict(code=ssc.SPACE_FILEMARKS, count=-1), "1101ffffff00"),
        (ssc.SPACE_6, dict(code=ssc.SPACE_END_OF_DATA), "110300000000"),
        (ssc.LOCATE_16, dict(identifier=0x123456789), "92000000000000012345678900000000"),
        (ssc.LOCATE_10, dict(block=1000), "2b0000000003e8000000"),
        (ssc.READ_POSITION, dict(service_action=ssc.READ_POSITION_LONG), "34060000000000000000"),
        (ssc.WRITE_FILEMARKS_6, dict(count=2), "100000000200"),
        (smc.MOVE_MEDIUM, dict(source=0x400, destination=0x100), "a50000000400010000000000"),
        (smc.MOVE_MEDIUM, dict(source=10, destination=1000, eepos=2), "a5000000000a03e800000080"),
        (smc.READ_ELEMENT_STATUS, dict(voltag=1, element_type=2, start=1000, count=40, alloc=8 + 32 + 40 * 84),
         "b81203e8002800000d480000"),  # fmt: skip
        (smc.INITIALIZE_ELEMENT_STATUS, {}, "070000000000"),
        (smc.INITIALIZE_ELEMENT_STATUS_WITH_RANGE, dict(range=1, start=1000, count=40), "370103e8000000280000"),
    ],
)
def test_exact_bytes(cdb: Cdb, values, hex_bytes):
    encoded = cdb.encode(**values)
    assert encoded.hex() == hex_bytes
    decoded = cdb.decode(encoded)
    assert {k: decoded[k] for k in values} == values


def test_decode_of_real_mhvtl_res_cdb():
    # reference/scsi.md §3 worked example: b8 04 01f4 0004 ff 000800 00 00 (byte 6 = ff sets CURDATA and DVCID)
    fields = smc.READ_ELEMENT_STATUS.decode(bytes.fromhex("b80401f40004ff0008000000"))
    assert fields == dict(voltag=0, element_type=4, start=500, count=4, curdata=1, dvcid=1, alloc=2048, control=0)


@st.composite
def cdb_and_values(draw):
    cdb = draw(st.sampled_from(ALL))
    values = {}
    for name, f in cdb.fields.items():
        low, high = f.value_range()
        values[name] = draw(st.integers(low, high))
    return cdb, values


@given(cdb_and_values())
def test_every_table_round_trips(case):
    cdb, values = case
    encoded = cdb.encode(**values)
    assert len(encoded) == cdb.length and encoded[0] == cdb.opcode
    assert cdb.decode(encoded) == values


@given(st.integers(-(1 << 23), (1 << 23) - 1))
def test_space6_signed_count_round_trips(count):
    assert ssc.SPACE_6.decode(ssc.SPACE_6.encode(code=0, count=count))["count"] == count


def test_fields_do_not_overlap():
    for cdb in ALL:
        seen: dict[int, int] = {}
        for name, f in cdb.fields.items():
            for i, byte in enumerate(f.bits.to_bytes(f.width, "big")):
                at = f.byte + i
                assert not seen.get(at, 0) & byte, f"{cdb.name}.{name} overlaps at byte {at}"
                seen[at] = seen.get(at, 0) | byte


def test_out_of_range_and_unknown_fields_are_refused():
    with pytest.raises(CdbFieldError, match=r"SPACE: count=8388608 does not fit \(allowed -8388608..8388607\)"):
        ssc.SPACE_6.encode(count=1 << 23)
    with pytest.raises(CdbFieldError, match="INQUIRY: evpd=2"):
        spc.INQUIRY.encode(evpd=2)
    with pytest.raises(CdbFieldError, match="no field 'pagecode'"):
        spc.INQUIRY.encode(pagecode=1)


def test_decode_refuses_wrong_opcode_and_short_cdb():
    with pytest.raises(CdbFieldError, match="opcode 0x1a is not 0x12"):
        spc.INQUIRY.decode(bytes.fromhex("1a081d008800"))
    with pytest.raises(CdbFieldError, match="CDB is 5 bytes, needs 6"):
        spc.INQUIRY.decode(b"\x12\0\0\0\0")


def test_field_pointer_names_the_byte_and_top_bit():
    assert spc.INQUIRY.pointer("page_code") == (2, None)
    assert spc.INQUIRY.pointer("evpd") == (1, 0)
    assert ssc.READ_6.pointer("sili") == (1, 1)
    assert ssc.LOCATE_16.pointer("dest_type") == (1, 5)
    assert Cdb("X", 0xC0, 6, {"w": Field(2, width=2, mask=0x0FF0)}).pointer("w") == (2, 3)


def test_lookup_is_per_device_type():
    assert by_opcode(spc.PDT_TAPE, 0x2B) is ssc.LOCATE_10
    assert by_opcode(spc.PDT_CHANGER, 0x2B) is smc.POSITION_TO_ELEMENT
    assert by_opcode(spc.PDT_CHANGER, 0x0A) is None  # WRITE is not a changer command
    assert by_opcode(spc.PDT_TAPE, 0x12) is spc.INQUIRY
    assert set(commands_for(spc.PDT_CHANGER)) >= {0x00, 0x03, 0x12, 0x1A, 0x5A, 0xB8, 0xA5, 0x07, 0x37, 0x1E, 0xA0}
    with pytest.raises(ValueError, match="no command table for peripheral device type 0x05"):
        commands_for(5)
