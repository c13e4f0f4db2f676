"""Sense data: exact bytes of reference/scsi.md §2, round trips, the named table and the one-line messages."""

import pickle

import pytest
from hypothesis import given, strategies as st

from drivers.scsi import sense as s
from drivers.scsi.sense import SenseData
from drivers.transport.base import BUSY, CHECK_CONDITION, GOOD, ScsiResult


def fixed(key, asc, ascq, *, flags=0, valid=False, info=0, sks=b"\0\0\0"):
    """Fixed-format sense written out byte by byte, as reference/scsi.md §2 lays it out."""
    return (
        bytes([0x80 * valid | 0x70, 0, flags | key])
        + info.to_bytes(4, "big", signed=True)
        + bytes([10, 0, 0, 0, 0, asc, ascq, 0])
        + sks
    )


def test_write_protected_message_is_one_line_naming_device_command_and_cartridge():
    err = s.error_for(SenseData.decode(fixed(7, 0x27, 0)), "WRITE", "LTO-8 drive 1", "A00012L8")
    assert isinstance(err, s.WriteProtected)
    assert str(err) == "LTO-8 drive 1: WRITE: write protected (7/27/00) on cartridge A00012L8"
    assert "write-protect tab" in err.hint


def test_context_is_added_by_the_caller_that_knows_it():
    err = s.error_for(s.NO_MEDIUM.sense(), "TEST UNIT READY")
    assert str(err) == "TEST UNIT READY: no medium present (2/3A/00)"
    named = err.with_context(device="LTO-8 drive 0", cartridge="A00001L8")
    assert str(named) == "LTO-8 drive 0: TEST UNIT READY: no medium present (2/3A/00) on cartridge A00001L8"
    assert str(err) == "TEST UNIT READY: no medium present (2/3A/00)"  # the original is untouched
    assert isinstance(named, s.NoMedium) and isinstance(named, s.NotReady)


@pytest.mark.parametrize(
    "raw, error, text",
    [
        (fixed(0, 0, 1, flags=0x80, valid=True, info=3), s.FilemarkDetected, "filemark detected"),
        (fixed(0, 0, 2, flags=0x40, valid=True), s.EndOfMedium, "end of medium early warning (data written)"),
        (fixed(0, 0, 4, flags=0x40, valid=True), s.BeginningOfMedium, "beginning of medium"),
        (fixed(0, 0, 0, flags=0x20, valid=True, info=-1024), s.IncorrectLength, "incorrect length"),
        (fixed(8, 0, 5, valid=True, info=65536), s.BlankCheck, "end of data"),
        (fixed(0xD, 0, 2, flags=0x40, valid=True, info=1), s.VolumeOverflow, "end of medium, data not written"),
        (fixed(2, 0x3A, 0), s.NoMedium, "no medium present"),
        (fixed(2, 0x04, 0x01), s.NotReady, "becoming ready"),
        (fixed(2, 0x30, 0x03), s.CleaningCartridge, "cleaning cartridge installed"),
        (fixed(2, 0x04, 0x12), s.LogicalUnitOffline, "logical unit offline"),
        (fixed(3, 0x11, 0), s.MediumError, "unrecovered read error"),
        (fixed(5, 0x30, 0), s.IncompatibleMedium, "incompatible medium installed"),
        (fixed(4, 0x44, 0), s.HardwareError, "internal target failure"),
        (fixed(5, 0x20, 0), s.InvalidOpcode, "invalid command operation code"),
        (fixed(5, 0x21, 1), s.InvalidElement, "invalid element address"),
        (fixed(5, 0x3B, 0x0E), s.SourceEmpty, "medium source element empty"),
        (fixed(5, 0x3B, 0x0D), s.DestinationFull, "medium destination element full"),
        (fixed(5, 0x53, 0x02), s.RemovalPrevented, "medium removal prevented"),
        (fixed(6, 0x28, 0), s.UnitAttention, "medium may have changed"),
        (fixed(6, 0x29, 0), s.UnitAttention, "power on, reset or bus device reset"),
        (fixed(7, 0x30, 0x0C), s.WriteProtected, "WORM medium: overwrite attempted"),
        (fixed(0, 0x00, 0x17), s.CleaningRequired, "cleaning requested"),
    ],
)
def test_named_table(raw, error, text):
    err = s.error_for(SenseData.decode(raw), "CMD")
    assert type(err) is error
    assert err.text == text


def test_early_warning_and_cleaning_requests_say_the_command_completed():
    assert s.error_for(s.EARLY_WARNING.sense(information=0)).completed
    assert s.error_for(s.CLEANING_REQUESTED.sense()).completed
    assert not s.error_for(s.VOLUME_OVERFLOW.sense(information=1)).completed


def test_residue_is_signed_information():
    err = s.error_for(SenseData.decode(fixed(0, 0, 0, flags=0x20, valid=True, info=-1024)), "READ", "drive0")
    assert err.residue == -1024
    assert str(err) == "drive0: READ: incorrect length, residue -1024 (0/00/00)"
    assert s.error_for(SenseData.decode(fixed(0, 0, 1, flags=0x80)), "READ").residue == 0  # VALID=0


def test_illegal_field_points_at_the_byte_and_bit():
    raw = SenseData.illegal_field(1, bit=1).encode()
    # 05/24/00, SKSV=1, C/D=1, BPV=1, bit pointer 1, field pointer 1
    assert raw == fixed(5, 0x24, 0, sks=bytes([0x80 | 0x40 | 0x08 | 1, 0, 1]))
    err = s.error_for(SenseData.decode(raw), "READ", "drive0")
    assert err.field_pointer == 1
    assert str(err) == "drive0: READ: invalid field in CDB at CDB byte 1 bit 1 (5/24/00)"
    param = SenseData.illegal_field(4, in_cdb=False)
    assert (param.key, param.asc, param.cd, param.sksv) == (5, 0x26, False, True)
    assert str(s.error_for(param, "MODE SELECT(6)")).endswith("invalid field in parameter list at parameter data byte 4 (5/26/00)")


def test_targets_build_sense_from_the_table_or_an_exception_class():
    assert s.sense_for(s.SourceEmpty).encode() == fixed(5, 0x3B, 0x0E)
    assert s.sense_for(s.FILEMARK_DETECTED, information=7).encode() == fixed(0, 0, 1, flags=0x80, valid=True, info=7)
    assert s.sense_for(s.EndOfMedium, information=0).encode() == fixed(0, 0, 2, flags=0x40, valid=True)


def test_unknown_codes_fall_back_to_the_key_or_the_asc_family():
    err = s.error_for(SenseData(key=3, asc=0x99, ascq=4), "READ", "d")
    assert type(err) is s.MediumError
    assert str(err) == "d: READ: medium error, additional sense 99/04 (3/99/04)"
    assert type(s.error_for(SenseData(key=2, asc=0x3A, ascq=0x02))) is s.NoMedium  # tray open: same family


def test_descriptor_format_decodes_like_fixed():
    # 72h header (key 0, 00/01, 16 bytes of descriptors), information descriptor (VALID, -5), stream descriptor (FILEMARK)
    raw = bytes([0x72, 0, 0, 1, 0, 0, 0, 16, 0x00, 0x0A, 0x80, 0]) + (-5).to_bytes(8, "big", signed=True)
    raw += bytes([0x04, 0x02, 0, 0x80])
    got = SenseData.decode(raw)
    assert got == SenseData(key=0, asc=0, ascq=1, filemark=True, valid=True, information=-5, response_code=0x72)
    assert type(s.error_for(got)) is s.FilemarkDetected
    assert got.encode() == fixed(0, 0, 1, flags=0x80, valid=True, info=-5)  # re-encoded as fixed format


def _fields(sense):
    return {name: getattr(sense, name) for name in SenseData.__dataclass_fields__}


sense_data = st.builds(
    SenseData,
    key=st.integers(0, 15),
    asc=st.integers(0, 255),
    ascq=st.integers(0, 255),
    filemark=st.booleans(),
    eom=st.booleans(),
    ili=st.booleans(),
    valid=st.booleans(),
    information=st.integers(-(1 << 31), (1 << 31) - 1),
    response_code=st.sampled_from([0x70, 0x71]),
    command_info=st.integers(0, (1 << 32) - 1),
    fru=st.integers(0, 255),
    sksv=st.booleans(),
    cd=st.booleans(),
    bpv=st.booleans(),
    bit_pointer=st.integers(0, 7),
    field_pointer=st.integers(0, 0xFFFF),
)


@given(sense_data)
def test_fixed_format_round_trips(sense):
    raw = sense.encode()
    assert len(raw) == 18 and raw[7] == 10
    assert SenseData.decode(raw) == sense


@given(sense_data)
def test_descriptor_format_round_trips(sense):
    got = SenseData.decode(sense.encode_descriptor())
    expect = _fields(sense) | {"response_code": sense.response_code + 2, "fru": 0}
    if not sense.valid:
        expect["information"] = 0
    if not sense.sksv:
        expect |= dict(cd=False, bpv=False, bit_pointer=0, field_pointer=0)
    assert _fields(got) == expect


def test_bad_sense_bytes_are_refused():
    with pytest.raises(ValueError, match="no sense data"):
        SenseData.decode(b"")
    with pytest.raises(ValueError, match="response code 0x00"):
        SenseData.decode(bytes(18))


def result(status, sense=b""):
    return ScsiResult(status=status, sense=sense)


def test_raise_for_result():
    s.raise_for_result(result(GOOD), "TEST UNIT READY", "drive0")
    s.raise_for_result(result(CHECK_CONDITION, fixed(1, 0x5D, 0)), "READ", "drive0")  # recovered error
    s.raise_for_result(result(CHECK_CONDITION, fixed(0, 0, 0)), "READ", "drive0")  # nothing to report
    with pytest.raises(s.SourceEmpty, match=r"^changer: MOVE MEDIUM: medium source element empty \(5/3B/0E\)$"):
        s.raise_for_result(result(CHECK_CONDITION, fixed(5, 0x3B, 0x0E)), "MOVE MEDIUM", "changer")
    with pytest.raises(s.TargetBusy, match=r"changer: MOVE MEDIUM: device busy; retry .* \(status 0x08\)"):
        s.raise_for_result(result(BUSY), "MOVE MEDIUM", "changer")
    with pytest.raises(s.ScsiError, match="CHECK CONDITION without sense data"):
        s.raise_for_result(result(CHECK_CONDITION), "READ", "drive0")


def test_errors_survive_pickling_with_their_context():
    err = s.error_for(s.WRITE_PROTECTED.sense(), "WRITE", "drive1", "A00012L8")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is s.WriteProtected and str(back) == str(err)


def test_every_error_is_a_device_error():
    from drivers.errors import DeviceError

    for condition in s.CONDITIONS:
        assert isinstance(s.error_for(condition.sense()), DeviceError)
        assert isinstance(s.error_for(condition.sense()), condition.error), condition.text
