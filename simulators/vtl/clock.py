"""The timing model: how long tape operations take, on a clock tests can speed up or switch off.

Invariants:
- Durations are computed in simulated seconds from the drive personality (`personality.Drive`), never from the
  wall clock, and added to `Clock.simulated` whether or not the clock sleeps, so tests can check the model without
  waiting.
- A clock with `factor=None` (the default in tests and `local://` benches) never sleeps and reports every deadline as
  already passed; with a factor F it sleeps simulated/F real seconds.
- With a factor, the running total of simulated seconds is kept in the library's `clock` file (one number, rewritten
  in place at each step), so a bench reads the modelled time of a command beside its real time.
- Streaming: a drive keeps a speed-matching window. When the host delivers data slower than the medium's lowest
  speed-matching step, each stall counts one backhitch (shoe-shining), as IBM's speed matching describes.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulators.vtl.personality import Drive, Media

MB = 10**6
# Seconds without data after which a drive stops streaming; the next block after a longer gap is a backhitch.
STREAM_GAP_S = 0.5
BACKHITCH_S = 3.0


class Clock:
    """Simulated time. `factor` None: off (no sleeping); F > 0: F simulated seconds per real second."""

    def __init__(self, factor: float | None = None, record: Path | None = None):
        if factor is not None and factor <= 0:
            raise ValueError(f"clock factor must be positive or None (off), not {factor}")
        self.factor = factor
        self.simulated = 0.0
        self._lock = threading.Lock()
        self._record = None if factor is None or record is None else \
            os.open(record, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if self._record is not None:
            self._add(float(_recorded(record)))  # a restarted server goes on from the total it left

    def _add(self, seconds: float) -> None:
        with self._lock:
            self.simulated += seconds
            if self._record is not None:
                os.pwrite(self._record, b"%20.6f\n" % self.simulated, 0)

    def close(self) -> None:
        """Close the clock file (the library's close calls it: one descriptor per open of the library)."""
        with self._lock:
            fd, self._record = self._record, None
        if fd is not None:
            os.close(fd)

    @property
    def on(self) -> bool:
        return self.factor is not None

    def now(self) -> float:
        return time.monotonic()

    def spend(self, seconds: float) -> None:
        """Account `seconds` of simulated time and, when on, wait the scaled real time."""
        self._add(seconds)
        if self.factor is not None and seconds > 0:
            time.sleep(seconds / self.factor)

    def deadline(self, seconds: float) -> float:
        """Real monotonic time at which an operation lasting `seconds` simulated seconds ends (now when off)."""
        self._add(seconds)
        if self.factor is None:
            return 0.0
        return time.monotonic() + seconds / self.factor


def _recorded(path: Path) -> float:
    try:
        return float(path.read_bytes().strip() or 0)
    except ValueError:
        return 0.0


def recorded_seconds(directory: Path) -> float:
    """The simulated seconds a library directory's clock has run so far (0 with the timing model off)."""
    path = directory / "clock"
    return _recorded(path) if path.exists() else 0.0


def locate_seconds(drive: Drive, media: Media | None, distance_bytes: int, capacity: int) -> float:
    """Time to wind over `distance_bytes` of a tape holding `capacity` bytes: proportional, plus a fixed settle."""
    if distance_bytes <= 0 or capacity <= 0:
        return 0.0
    return 1.0 + drive.full_wind_s * min(1.0, distance_bytes / capacity)


def load_seconds(drive: Drive, first_load: bool) -> float:
    return drive.load_s + (drive.first_load_s if first_load else 0.0)


@dataclass
class Streaming:
    """Per-drive streaming state: the rate the tape runs at and the backhitches the host caused."""

    backhitches: int = 0
    last_data: float = field(default=0.0)
    bytes_since_start: int = 0
    window_start: float = 0.0

    def transfer_seconds(self, drive: Drive, media: Media | None, nbytes: int, now: float) -> float:
        """Simulated tape time for `nbytes`; counts a backhitch when the host rate fell below the speed floor."""
        rate = min(drive.native_rate, media.native_rate if media else drive.native_rate) * MB
        floor = (media.speed_floor if media else 0) * MB
        gap = now - self.last_data if self.last_data else 0.0
        if self.last_data and gap > STREAM_GAP_S:
            self.window_start, self.bytes_since_start = now, 0
            self.backhitches += 1
        elif not self.last_data:
            self.window_start = now
        self.bytes_since_start += nbytes
        elapsed = now - self.window_start
        if elapsed > STREAM_GAP_S and self.bytes_since_start / elapsed < floor:
            # The host is slower than the lowest speed-matching step: the buffer ran dry once more.
            self.backhitches += 1
            self.window_start, self.bytes_since_start = now, 0
        self.last_data = now
        return nbytes / rate
