"""The timing model: load/unload/locate/rewind durations, streaming and backhitches, on a clock tests control."""

from __future__ import annotations

import os
import types

import pytest

from drivers.scsi import spc, ssc
from simulators.vtl.clock import STREAM_GAP_S, Clock, Streaming, locate_seconds, recorded_seconds
from simulators.vtl.personality import DRIVES, MEDIA
from tests.simulators.conftest import DRIVE0, SLOT0, code, make_library, open_devices


def sleeps(monkeypatch) -> list[float]:
    """What the clock asks the machine to sleep (measuring the sleep itself would be a wall-clock assertion)."""
    asked: list[float] = []
    monkeypatch.setattr("simulators.vtl.clock.time.sleep", asked.append)
    return asked


def test_clock_off_never_sleeps_but_counts(monkeypatch):
    asked = sleeps(monkeypatch)
    clock = Clock()
    clock.spend(3600)
    assert asked == [] and clock.simulated == 3600
    assert clock.deadline(60) == 0.0


def test_clock_factor_scales_real_time(monkeypatch):
    asked = sleeps(monkeypatch)
    clock = Clock(1000)
    clock.spend(100)  # 100 simulated seconds = 0.1 s
    assert asked == [pytest.approx(0.1)] and clock.simulated == 100
    with pytest.raises(ValueError):
        Clock(0)


def test_a_running_clock_keeps_its_total_in_the_library_directory_for_benches(monkeypatch, tmp_path):
    sleeps(monkeypatch)
    assert recorded_seconds(tmp_path) == 0.0  # no clock file: the timing model is off
    clock = Clock(100, tmp_path / "clock")
    clock.spend(1200)  # an LTO-9 cartridge's first load
    clock.deadline(19)
    assert recorded_seconds(tmp_path) == pytest.approx(1219)
    again = Clock(100, tmp_path / "clock")  # a restarted server goes on from there
    again.spend(1)
    assert recorded_seconds(tmp_path) == pytest.approx(1220)
    Clock(None, tmp_path / "off").spend(5)
    assert not (tmp_path / "off").exists()


def test_opening_and_closing_a_timed_library_keeps_no_descriptor(tmp_path):
    directory = make_library(tmp_path / "vtl", "--clock-factor", "100")
    open_devices(directory).close()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        open_devices(directory).close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_locate_time_is_proportional_to_distance():
    drive, media = DRIVES["LTO-8"], MEDIA["LTO-8"]
    cap = media.native_capacity
    quarter, half = locate_seconds(drive, media, cap // 4, cap), locate_seconds(drive, media, cap // 2, cap)
    assert quarter == pytest.approx(1 + drive.full_wind_s / 4) and half - 1 == pytest.approx(2 * (quarter - 1))
    assert locate_seconds(drive, media, 0, cap) == 0


def test_backhitch_when_the_host_is_slower_than_the_speed_floor():
    drive, media = DRIVES["LTO-8"], MEDIA["LTO-8"]
    fast, slow = Streaming(), Streaming()
    t = 100.0
    for _ in range(200):  # 256 KiB every 0.5 ms: ~520 MB/s, above the 112 MB/s floor
        fast.transfer_seconds(drive, media, 256 * 1024, t)
        t += 0.0005
    t = 100.0
    for _ in range(200):  # 256 KiB every 10 ms: ~26 MB/s, below it
        slow.transfer_seconds(drive, media, 256 * 1024, t)
        t += 0.01
    assert fast.backhitches == 0 and slow.backhitches >= 2
    stalled = Streaming()
    stalled.transfer_seconds(drive, media, 1, 0.0 + 1)
    stalled.transfer_seconds(drive, media, 1, 1 + STREAM_GAP_S * 2)  # the host paused: the tape stopped
    assert stalled.backhitches == 1


def test_native_rate_sets_write_time():
    drive, media = DRIVES["LTO-9"], MEDIA["LTO-9"]
    assert Streaming().transfer_seconds(drive, media, 400 * 10**6, 1.0) == pytest.approx(1.0)


def test_drive_is_becoming_ready_while_loading(tmp_path, monkeypatch):
    # The library's real-time clock is one this test moves: a loaded machine cannot make the load look finished
    # before the first TEST UNIT READY.
    now = [1000.0]
    clock = types.SimpleNamespace(monotonic=lambda: now[0], sleep=lambda seconds: None)
    monkeypatch.setattr("simulators.vtl.clock.time", clock)
    monkeypatch.setattr("simulators.vtl.drive_lu.time", clock)
    directory = make_library(tmp_path / "timed", "--clock-factor", "100")  # LTO-8 load: 19 s -> 0.19 s
    devs = open_devices(directory)
    try:
        assert code(devs.move(SLOT0, DRIVE0)) == "GOOD"
        tur = spc.TEST_UNIT_READY.encode()
        assert code(devs.drive.execute(tur)) == "6/28/00"
        assert code(devs.drive.execute(tur)) == "2/04/01"
        now[0] += 0.18
        assert code(devs.drive.execute(tur)) == "2/04/01"
        now[0] += 0.02
        assert code(devs.drive.execute(tur)) == "GOOD"
        lib = devs.drive.library
        before = lib.clock.simulated
        devs.drive.execute(ssc.WRITE_6.encode(length=1 << 20), bytes(1 << 20))
        assert lib.clock.simulated - before == pytest.approx((1 << 20) / 360e6)  # LTO-8 at 360 MB/s
    finally:
        devs.close()
