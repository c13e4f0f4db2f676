"""A cartridge image on disk: a sparse data file plus an append-only index of the objects recorded on it.

Layout of `<dir>/<BARCODE>.index`: a 16-byte header (`MAGIC`), then one 16-byte record per object in tape order:
`data offset (u64 LE) | length (i32 LE, -1 = filemark) | crc32 of the previous 12 bytes (u32 LE)`. Block data lives at
its offset in `<BARCODE>.data`; blocks are contiguous, so the data file is sparse only where nothing was ever written.

Invariants:
- The objects on tape are exactly the valid index records; end of data (EOD) is the end of the index.
- A block is acknowledged only after its data was written and then its index record: a process killed at any point
  (kill -9: the page cache survives) leaves every acknowledged object readable. A torn or unfinished last record
  (short, or a bad crc) is dropped when the image is opened, and the index is cut back to the last good record.
- Writing at position n < EOD first cuts the index (then the data) back to n: everything after it is gone, as on tape.
- Each WRITE costs one pwrite of the data and one small write of the record: no copies, no fsync (kill -9 safety
  needs none; a power loss is outside what a simulator promises).
- Policy that depends on the drive (compatibility, faults) is the caller's; this module enforces what belongs to the
  medium: capacity and early warning, WORM append-only, the write-protect tab.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# "TAPELINE VTL CARTRIDGE INDEX, version 1"; bump the last byte when the record layout changes.
MAGIC = b"TLVTL-CARTIDX\x00\x00\x01"
RECORD = struct.Struct("<QiI")
RECORD_HEAD = struct.Struct("<Qi")  # the part the crc covers
FILEMARK = -1


class CartridgeError(Exception):
    """A write the medium itself refuses; the drive turns it into sense data."""


class WriteProtected(CartridgeError):
    """The write-protect tab is set."""


class WormOverwrite(CartridgeError):
    """A WORM cartridge may only be appended to at end of data."""


class PhysicalEnd(CartridgeError):
    """No room left before the physical end of the medium: the block was not written."""


class CorruptImage(CartridgeError):
    """The index file is not a cartridge index (wrong magic)."""


def early_warning_zone(capacity: int) -> int:
    """Bytes between early warning and physical end: 2% of the medium, at most 4 GiB, at least one byte."""
    return max(1, min(capacity // 50, 4 << 30))


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    position: int  # position after the write
    early_warning: bool  # the write ended inside the early-warning zone (data was written)


class Cartridge:
    """An open cartridge image. Not thread-safe: the drive that holds it serialises access."""

    def __init__(self, directory: Path, barcode: str, capacity: int, *, worm: bool = False, protected: bool = False):
        self.barcode = barcode
        self._capacity = capacity
        self._warning_zone: int | None = None
        self._warning_at = self._early_warning()
        self.worm = worm
        self.protected = protected
        directory.mkdir(parents=True, exist_ok=True)
        self._data_path = directory / f"{barcode}.data"
        self._index_path = directory / f"{barcode}.index"
        self._offsets = array("q")
        self._lengths = array("i")
        self._filemarks = array("q")  # positions of filemarks, ascending
        self._data_end = 0
        self._data_fd = os.open(self._data_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._index_fd = os.open(self._index_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # ---- opening ----------------------------------------------------------------------------------------------
    def _load(self) -> None:
        raw = _read_all(self._index_fd)
        if not raw:
            os.write(self._index_fd, MAGIC)
            return
        if raw[: len(MAGIC)] != MAGIC:
            raise CorruptImage(f"{self._index_path} is not a cartridge index: remove it or restore it from a copy")
        body = memoryview(raw)[len(MAGIC) :]
        good = 0
        expected_offset = 0
        for offset, length, crc in RECORD.iter_unpack(body[: len(body) - len(body) % RECORD.size]):
            if crc != zlib.crc32(RECORD_HEAD.pack(offset, length)) or offset != expected_offset or length < -1:
                break
            if length == FILEMARK:
                self._filemarks.append(good)
            else:
                expected_offset += length
            self._offsets.append(offset)
            self._lengths.append(length)
            good += 1
        self._data_end = expected_offset
        keep = len(MAGIC) + good * RECORD.size
        if keep != len(raw):  # a torn or unfinished last record: drop it so appends follow the last good one
            os.ftruncate(self._index_fd, keep)

    def close(self) -> None:
        for fd in (self._data_fd, self._index_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._data_fd = self._index_fd = -1

    # ---- what is on the tape ----------------------------------------------------------------------------------
    @property
    def eod(self) -> int:
        """Number of objects: the position of end of data."""
        return len(self._lengths)

    @property
    def used(self) -> int:
        return self._data_end

    @property
    def capacity(self) -> int:
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        self._capacity = value
        self._warning_at = self._early_warning()

    @property
    def warning_zone(self) -> int | None:
        """Bytes from early warning to the end; None = `early_warning_zone(capacity)`."""
        return self._warning_zone

    @warning_zone.setter
    def warning_zone(self, value: int | None) -> None:
        self._warning_zone = value
        self._warning_at = self._early_warning()

    def _early_warning(self) -> int:
        zone = early_warning_zone(self._capacity) if self._warning_zone is None else self._warning_zone
        return max(0, self._capacity - zone)

    @property
    def early_warning_at(self) -> int:
        return self._warning_at

    def in_early_warning(self, position: int) -> bool:
        return self._offset_at(position) >= self.early_warning_at

    def length(self, position: int) -> int:
        """Length of the block at `position`, or FILEMARK."""
        return self._lengths[position]

    def is_filemark(self, position: int) -> bool:
        return self._lengths[position] == FILEMARK

    def file_number(self, position: int) -> int:
        """Filemarks before `position`."""
        return bisect_left(self._filemarks, position)

    def next_filemark(self, position: int) -> int | None:
        """Position of the first filemark at or after `position`."""
        i = bisect_left(self._filemarks, position)
        return self._filemarks[i] if i < len(self._filemarks) else None

    def previous_filemark(self, position: int) -> int | None:
        """Position of the last filemark before `position`."""
        i = bisect_left(self._filemarks, position)
        return self._filemarks[i - 1] if i > 0 else None

    def filemark_number(self, n: int) -> int | None:
        """Position of the n-th filemark (0-based)."""
        return self._filemarks[n] if 0 <= n < len(self._filemarks) else None

    def bytes_between(self, a: int, b: int) -> int:
        """Data bytes between positions a and b (for the timing model)."""
        return abs(self._offset_at(b) - self._offset_at(a))

    def _offset_at(self, position: int) -> int:
        return self._offsets[position] if position < len(self._offsets) else self._data_end

    def read(self, position: int, size: int) -> bytes:
        """Up to `size` bytes of the block at `position` (the rest of a longer block is skipped by the caller)."""
        n = min(size, self._lengths[position])
        return os.pread(self._data_fd, n, self._offsets[position]) if n > 0 else b""

    def read_into(self, position: int, buffer: memoryview) -> int:
        """Read the block at `position` into `buffer` (up to its length); returns the bytes placed."""
        n = min(len(buffer), self._lengths[position])
        return os.preadv(self._data_fd, [buffer[:n]], self._offsets[position]) if n > 0 else 0

    # ---- writing ----------------------------------------------------------------------------------------------
    def _check_writable(self, position: int) -> None:
        if self.protected:
            raise WriteProtected(self.barcode)
        if self.worm and position < self.eod:
            raise WormOverwrite(self.barcode)

    def write(self, position: int, block: bytes | bytearray | memoryview) -> WriteOutcome:
        """Record one block at `position`, discarding everything after it."""
        eod = len(self._lengths)
        if self.protected or (self.worm and position < eod):
            self._check_writable(position)
        size = len(block)
        start = self._offsets[position] if position < eod else self._data_end
        if start + size > self._capacity:
            raise PhysicalEnd(self.barcode)
        if position < eod:
            self.truncate(position)
        written = os.pwrite(self._data_fd, block, start)
        if written != size:  # disk full: keep the index honest, report a write error upstream
            raise OSError(f"short write to {self._data_path}: {written} of {size} bytes")
        self._append(start, size)
        self._data_end = end = start + size
        return WriteOutcome(position + 1, end >= self._warning_at)

    def write_filemarks(self, position: int, count: int) -> WriteOutcome:
        self._check_writable(position)
        if position < self.eod:
            self.truncate(position)
        start = self._data_end
        records = bytearray()
        for i in range(count):
            records += _record(start, FILEMARK)
            self._offsets.append(start)
            self._lengths.append(FILEMARK)
            self._filemarks.append(position + i)
        if records:
            os.write(self._index_fd, records)
        return WriteOutcome(position + count, self._data_end >= self.early_warning_at)

    def _append(self, offset: int, length: int) -> None:
        os.write(self._index_fd, _record(offset, length))
        self._offsets.append(offset)
        self._lengths.append(length)

    def truncate(self, position: int) -> None:
        """Make `position` the end of data (ERASE from here, or a write mid-tape)."""
        if self.worm and position < self.eod:
            raise WormOverwrite(self.barcode)
        if self.protected and position < self.eod:
            raise WriteProtected(self.barcode)
        if position >= self.eod:
            return
        new_end = self._offsets[position]
        # Index first: if killed between the two, the data file is merely longer than the index says.
        os.ftruncate(self._index_fd, len(MAGIC) + position * RECORD.size)
        os.ftruncate(self._data_fd, new_end)
        del self._offsets[position:]
        del self._lengths[position:]
        del self._filemarks[bisect_left(self._filemarks, position) :]
        self._data_end = new_end


def _record(offset: int, length: int) -> bytes:
    return RECORD.pack(offset, length, zlib.crc32(RECORD_HEAD.pack(offset, length)))


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def remove_image(directory: Path, barcode: str) -> None:
    for suffix in (".data", ".index"):
        (directory / f"{barcode}{suffix}").unlink(missing_ok=True)


def read_tape_file(directory: Path, barcode: str, number: int) -> Iterator[bytes]:
    """The blocks of tape file `number` (0-based: the objects after `number` filemarks, up to the next filemark or
    end of data), read from the image without opening it as a `Cartridge`: nothing is written or cut back, so a
    library being served may be read meanwhile. Only records whose crc holds count (a torn last one is EOD)."""
    try:
        with open(directory / f"{barcode}.index", "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raw = b""
    if raw and raw[: len(MAGIC)] != MAGIC:
        raise CorruptImage(f"{directory / barcode}.index is not a cartridge index: remove it or restore it from a copy")
    body = memoryview(raw)[len(MAGIC) :] if raw else memoryview(b"")
    objects = []
    for offset, length, crc in RECORD.iter_unpack(body[: len(body) - len(body) % RECORD.size]):
        if crc != zlib.crc32(RECORD_HEAD.pack(offset, length)) or length < -1:
            break
        objects.append((offset, length))
    marks = [i for i, (_, length) in enumerate(objects) if length == FILEMARK]
    count = len(marks) + (1 if objects and objects[-1][1] != FILEMARK else 0)
    if not 0 <= number < count:
        raise NoSuchFile(f"cartridge {barcode} holds {count} tape files, not file {number}: "
                         + ("it is blank" if not count else f"give a number from 0 to {count - 1}"))
    start = marks[number - 1] + 1 if number else 0
    fd = os.open(directory / f"{barcode}.data", os.O_RDONLY)
    try:
        for offset, length in objects[start:]:
            if length == FILEMARK:
                return
            yield os.pread(fd, length, offset)
    finally:
        os.close(fd)


class NoSuchFile(CartridgeError):
    """A tape file number past the last filemark and end of data."""
