"""Whatever bytes arrive as a CDB, the target answers with a status and decodable sense, and never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scsi.commands import commands_for
from drivers.scsi.sense import SenseData
from drivers.scsi.spc import PDT_CHANGER, PDT_TAPE
from tests.simulators.conftest import make_library, open_devices

OPCODES = sorted(set(commands_for(PDT_TAPE)) | set(commands_for(PDT_CHANGER)))


@pytest.fixture(scope="module")
def devs(tmp_path_factory):
    """One library for the whole run, with a loaded drive so tape commands reach their deeper paths."""
    devices = open_devices(make_library(tmp_path_factory.mktemp("fuzz"), "--capacity", str(1 << 20)))
    devices.load()
    yield devices
    devices.close()


@settings(max_examples=400, deadline=None)
@given(
    opcode=st.sampled_from(OPCODES) | st.integers(0, 255),
    rest=st.binary(max_size=15),
    data_out=st.binary(max_size=64),
    data_in_len=st.integers(0, 4096),
    device=st.sampled_from(["changer", "drive0"]),
)
def test_random_cdbs_never_break_the_target(devs, opcode, rest, data_out, data_in_len, device):
    unit = devs.changer if device == "changer" else devs.drive
    r = unit.execute(bytes([opcode]) + rest, data_out, data_in_len)
    assert r.status in (0, 2)
    assert len(r.data) <= data_in_len and r.resid == data_in_len - len(r.data)
    if r.status == 2:
        assert SenseData.decode(r.sense).key in (0, 2, 3, 4, 5, 6, 7, 8, 0xD)

