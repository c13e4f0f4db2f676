"""Writing one tape set: frames made on their own thread reach the drive through a bounded queue, a set spans
cartridges at early warning, and a media error starts the set again on another cartridge.

The order on each cartridge (docs/tape-format.md): ... [set data][index][media-set catalog] EOD. A new set is
written at the cartridge's `next_file` (the file after the last good set's index), over the old catalog and over
whatever a crashed write left there, so a set that did not finish never counts.

Invariants:
- Nothing in the catalog says a set exists on a cartridge until its index file and the catalog trailer are written:
  `TapeSetPart` rows and a cartridge's new `next_file` are recorded after the filemark that ends the part.
- The producer thread never runs ahead of the drive by more than QUEUE_FRAMES frames (bounded memory), and the
  drive never waits on the producer when making frames is faster than writing them (`stalls` counts the waits).
- Early warning ends the part after the frame in progress (the early-warning zone holds far more than one frame);
  the physical end of the medium (VolumeOverflow) or a media error abandons the attempt: the cartridge is marked
  suspect and the whole set is written again, from its first frame, on another cartridge.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from drivers.scsi.sense import MediumError, VolumeOverflow, WriteProtected

from appliance.media import format as fmt

log = logging.getLogger("tapeline.media.write")

QUEUE_FRAMES = 16  # frames of at most ~4 MiB between the producer and the drive: 64 MiB keeps a drive streaming
ATTEMPTS = 3  # a set is started again on another cartridge at most this many times after a media error
SWITCH_INTERVAL = 0.0002  # s: see streaming_interpreter
_END = object()


@dataclass
class PartWritten:
    """One part of a set, on one cartridge, as the catalog records it once its index is on tape."""

    part: int
    barcode: str
    tape_file: int
    index_file: int
    first_block: int
    blocks: int
    bytes: int  # compressed bytes of the set's frames in this part
    header: object = None  # fmt.SetHeader
    index: bytes = b""  # the index file as written to tape (the appliance keeps the same bytes)
    frames: list = field(default_factory=list)  # fmt.FramePosition
    entries: list = field(default_factory=list)  # fmt.IndexEntry
    complete: bool = False  # the set's last part


@dataclass
class WriteStats:
    raw_bytes: int = 0  # archive bytes before compression
    tape_bytes: int = 0  # bytes written to tape in data files (frames and padding)
    seconds: float = 0.0
    stalls: int = 0  # times the drive had to wait for a frame
    stall_seconds: float = 0.0
    parts: list[PartWritten] = field(default_factory=list)


class Abandon(Exception):
    """This attempt cannot go on on this cartridge (media error, physical end): start the set again elsewhere."""

    def __init__(self, barcode: str, cause: Exception):
        super().__init__(f"cartridge {barcode}: {cause}")
        self.barcode = barcode
        self.cause = cause


class FramePump:
    """Runs `make()` (an iterator of frames) on its own thread, QUEUE_FRAMES ahead of the consumer at most. An
    exception in the producer is raised again in the consumer."""

    def __init__(self, make: Callable[[], Iterator], cancel: threading.Event, depth: int = QUEUE_FRAMES):
        self._queue: queue.Queue = queue.Queue(depth)
        self._cancel = cancel
        self._stop = threading.Event()
        self.stalls = 0
        self.stall_seconds = 0.0
        self._thread = threading.Thread(target=self._run, args=(make,), name="tape-frames", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make) -> None:
        frames = None
        try:
            frames = make()
            for frame in frames:
                if self._stop.is_set() or self._cancel.is_set() or not self._put(frame):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which reports it
            self._put(exc)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:  # a generator's cleanup (the frame workers it started) runs now, on this thread
                close()

    def __iter__(self):
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                started = time.monotonic()
                item = None
                while item is None:
                    if self._cancel.is_set():
                        return
                    try:
                        item = self._queue.get(timeout=0.2)
                    except queue.Empty:
                        continue
                self.stalls += 1
                self.stall_seconds += time.monotonic() - started
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=30)


def write_blocks(drive, data: bytes, barcode: str) -> bool:
    """Write whole blocks given back to back, in as few WRITE commands as the drive's transport takes (a round trip
    per 256 KiB block cost the drive thread most of its time); True once past early warning. The physical end or a
    media error abandons the attempt."""
    if not data:
        return False
    try:
        return drive.write(data)
    except (MediumError, VolumeOverflow, WriteProtected) as exc:
        raise Abandon(barcode, exc) from exc


def write_file(drive, data: bytes, barcode: str) -> bool:
    """A small tape file (label, index, catalog) already padded to whole blocks, then its filemark."""
    warned = write_blocks(drive, data, barcode)
    try:
        return drive.write_filemarks(1) or warned
    except (MediumError, VolumeOverflow) as exc:
        raise Abandon(barcode, exc) from exc


class Target:
    """Where a set's parts go: the tape job's side of the writer (cartridge choice, catalog records). Methods:
    `start_part(part) -> (drive, barcode, tape_file)`: a mounted cartridge positioned at the tape file where the part
    begins (labelled, with the media-set label, when it was scratch); `trailer(part: PartWritten) -> bytes`: the
    media-set catalog file to end the cartridge with; `part_done(part, full)`: the part is on tape;
    `suspect(barcode, cause)`: the cartridge failed a write and must not be written again."""

    def start_part(self, part: int):
        raise NotImplementedError

    def trailer(self, part: PartWritten) -> bytes:
        raise NotImplementedError

    def part_done(self, part: PartWritten, full: bool) -> None:
        raise NotImplementedError

    def suspect(self, barcode: str, cause: Exception) -> None:
        raise NotImplementedError


class Cancelled(Exception):
    pass


_settings = threading.Lock()
_writers = 0
_before = 0.0


@contextmanager
def streaming_interpreter():
    """While any set is written, the daemon's interpreter lock changes hands after SWITCH_INTERVAL instead of Python's
    default 5 ms (as before once the last set being written ends): a D2T set's readers and compressors give the lock
    up and take it back several times a chunk, and at up to 5 ms a time they ran mostly while the archive's thread
    waited for them (12 to 35% faster). The daemon's garbage collector is set for such jobs all the time
    (workers.steady_collector)."""
    global _writers, _before
    with _settings:
        if not _writers:
            _before = sys.getswitchinterval()
            sys.setswitchinterval(min(_before, SWITCH_INTERVAL))
        _writers += 1
    try:
        yield
    finally:
        with _settings:
            _writers -= 1
            if not _writers:
                sys.setswitchinterval(_before)


def write_set(target: Target, make_frames: Callable[[], Iterator], header: Callable[[int, int], "fmt.SetHeader"],
              block_size: int, cancel: threading.Event,
              progress: Callable[[int, int | None, str], None] = lambda *a: None,
              total: int | None = None, carried: list | None = None) -> WriteStats:
    """Write a whole set (every frame `make_frames()` yields, a new iterator per attempt); returns what was written.
    `header(part, tape_file)` gives each part's header; `carried` (filled while the frames are made) holds index
    entries of members other sets hold, listed in the last part's index. Raises Abandon after ATTEMPTS media errors,
    Cancelled."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with streaming_interpreter():
                return _attempt(target, make_frames, header, block_size, cancel, progress, total,
                                carried if carried is not None else [])
        except Abandon as exc:
            log.warning("set abandoned on %s (attempt %d): %s", exc.barcode, attempt, exc.cause)
            target.suspect(exc.barcode, exc.cause)
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class _Part:
    """The part being written: its drive, stream and what it holds so far."""

    def __init__(self, target: Target, number: int, header, block_size: int):
        self.number = number
        self.drive, self.barcode, self.tape_file = target.start_part(number)
        self.header = header(number, self.tape_file)
        self.first_block = self.drive.read_position().block
        self.stream = fmt.SetStream(self.header, self.first_block, block_size)
        self.entries: list = []
        self.index = fmt.IndexWriter()  # its member lines built and compressed as the frames go to the drive
        self.blocks = 1
        self.bytes = 0
        write_blocks(self.drive, self.stream.header_block(), self.barcode)

    def add(self, frame) -> bool:
        # The frames were made ahead of the drive, not knowing which part they would land in.
        entries = [e if e.part == self.number else replace(e, part=self.number) for e in frame.entries]
        self.entries += entries
        self.index.add(map(fmt.member_line, entries))
        blocks = self.stream.add(frame)
        self.blocks += len(blocks) // self.stream.block_size
        self.bytes += len(frame.data)
        return write_blocks(self.drive, blocks, self.barcode)

    def finish(self, target: Target, complete: bool, full: bool, carried: list = ()) -> PartWritten:
        """End the part; `carried`: the entries of members other sets hold (the last part's index lists them)."""
        blocks = self.stream.finish()
        self.blocks += len(blocks) // self.stream.block_size
        write_blocks(self.drive, blocks, self.barcode)
        write_file(self.drive, b"", self.barcode)  # the filemark that ends the set's data
        frames = list(self.stream.frames)
        self.index.add(map(fmt.member_line, carried))
        self.entries += carried
        index = self.index.finish(fmt.SetIndex(self.header, frames, self.entries, complete))
        write_file(self.drive, index, self.barcode)
        part = PartWritten(self.number, self.barcode, self.tape_file, self.tape_file + 1, self.first_block,
                           self.blocks, self.bytes, self.header, index, frames, self.entries, complete)
        write_file(self.drive, target.trailer(part), self.barcode)
        target.part_done(part, full)
        return part


def _attempt(target: Target, make_frames, header, block_size: int, cancel: threading.Event, progress,
             total: int | None, carried: list) -> WriteStats:
    started = time.monotonic()
    stats = WriteStats()
    pump = FramePump(make_frames, cancel)
    try:
        part = _Part(target, 1, header, block_size)
        for frame in pump:
            warned = part.add(frame)
            stats.raw_bytes += frame.raw_length
            progress(stats.raw_bytes, total, f"writing to {part.barcode}")
            if warned:  # early warning: this cartridge is full; the set goes on on the next one
                stats.parts.append(part.finish(target, complete=False, full=True))
                part = _Part(target, part.number + 1, header, block_size)
        if cancel.is_set():
            raise Cancelled()
        stats.parts.append(part.finish(target, complete=True, full=False, carried=carried))
    finally:
        pump.close()
        stats.stalls, stats.stall_seconds = pump.stalls, pump.stall_seconds
    stats.tape_bytes = sum(p.blocks for p in stats.parts) * block_size
    stats.seconds = time.monotonic() - started
    return stats
