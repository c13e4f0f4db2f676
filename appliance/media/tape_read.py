"""Reading members back from tape: which frames a restore needs, in what order, and reading only those.

A set's index (its parts' index files) gives every member's frame and the offset of its tar header in that frame's
data, and every frame's block and offset on its cartridge. A restore groups the wanted members into runs of frames
read in one pass (one LOCATE each; frames a few apart are read through rather than located again), orders the runs
by cartridge and block, and stops a run once its last wanted member is out. A member that runs on past the last frame
of a part continues with the next part's first frame, on the next cartridge.

Invariants:
- Only the frames holding wanted members are read (plus the gaps of at most MERGE_GAP frames read through).
- A medium error (or a frame whose hash is wrong) loses the members whose data lies in the frames that block
  touches: they are named, and reading goes on with the next wanted member (a new LOCATE), stopping short of the
  bad frames. A READ never asks for blocks past the frames a run needs, so a bad block further on costs nothing.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass, field
from typing import Callable, Iterator

from drivers.scsi.sense import BlankCheck, FilemarkDetected, MediumError

from appliance.media import archive
from appliance.media import format as fmt
from appliance.text import noun, plural

log = logging.getLogger("tapeline.media.read")

MERGE_GAP = 2  # frames between two wanted ones that are read through rather than located over
READ_BLOCKS = 4  # blocks per READ command (1 MiB at the default block size)


@dataclass
class SetLayout:
    """Where one set's frames are: frame number -> (part, position), each part's cartridge, and the last frame
    each member's data reaches (from the member that follows it in the index)."""

    set_uuid: str
    block_size: int
    frames: dict[int, tuple[int, "fmt.FramePosition"]] = field(default_factory=dict)
    barcodes: dict[int, str] = field(default_factory=dict)  # part -> barcode
    ends: dict[bytes, int] = field(default_factory=dict)  # member path -> its last frame

    @classmethod
    def of(cls, indexes: list["fmt.SetIndex"], barcodes: dict[int, str]) -> "SetLayout":
        layout = cls(indexes[0].header.set_uuid, indexes[0].header.block_size, barcodes=dict(barcodes))
        for index in indexes:
            for pos in index.frames:
                layout.frames[pos.number] = (index.header.part, pos)
        held = sorted((e for index in indexes for e in index.entries if e.in_set is None),
                      key=lambda e: (e.frame, e.offset))
        last = max(layout.frames, default=0)
        for entry, following in zip(held, held[1:] + [None]):
            if following is None:
                layout.ends[entry.path] = last
            else:
                layout.ends[entry.path] = following.frame if following.offset else max(entry.frame,
                                                                                      following.frame - 1)
        return layout

    def end_block(self, number: int) -> int:
        """The block after the last one frame `number` occupies."""
        pos = self.frames[number][1]
        return pos.block + (pos.offset + pos.length + self.block_size - 1) // self.block_size

    def frames_at(self, part: int, block: int) -> set[int]:
        """The frames of `part` that have bytes in `block`."""
        return {n for n, (q, pos) in self.frames.items() if q == part and pos.block <= block < self.end_block(n)}


@dataclass
class Run:
    layout: SetLayout
    first_frame: int
    wanted: dict[bytes, "fmt.IndexEntry"]  # path -> entry

    @property
    def barcode(self) -> str:
        return self.layout.barcodes[self.layout.frames[self.first_frame][0]]

    @property
    def block(self) -> int:
        return self.layout.frames[self.first_frame][1].block


def plan(layout: SetLayout, entries: list["fmt.IndexEntry"]) -> list[Run]:
    """Runs over the wanted entries of one set, sorted by cartridge then block."""
    runs: list[Run] = []
    current: Run | None = None
    reach = -10  # the last frame the current run reads
    for entry in sorted(entries, key=lambda e: (e.frame, e.offset)):
        if current is not None and entry.frame - reach <= MERGE_GAP:
            current.wanted[entry.path] = entry
        else:
            current = Run(layout, entry.frame, {entry.path: entry})
            runs.append(current)
        reach = max(reach, layout.ends.get(entry.path, entry.frame))
    return sorted(runs, key=lambda r: (r.barcode, r.block))


class Blocks:
    """Blocks from `block` (the drive positioned there) up to `stop` (exclusive; None: the next filemark),
    READ_BLOCKS per command at most. `bad` is the block a medium error hit."""

    def __init__(self, drive, block_size: int, block: int, stop: int | None = None):
        self.drive, self.block_size, self.next, self.stop = drive, block_size, block, stop
        self.bytes, self._taken, self.bad = 0, 0, None

    def take(self) -> int:
        """Bytes read since the last call."""
        new, self._taken = self.bytes - self._taken, self.bytes
        return new

    def _got(self, data: bytes) -> bytes:
        self.bytes += len(data)
        self.next += len(data) // self.block_size
        return data

    def __iter__(self) -> Iterator[bytes]:
        size = self.block_size
        while self.stop is None or self.next < self.stop:
            count = READ_BLOCKS if self.stop is None else min(READ_BLOCKS, self.stop - self.next)
            try:
                data = self.drive.read(size * count)
            except (FilemarkDetected, BlankCheck) as err:
                partial = getattr(err, "partial", b"") or b""
                if partial:
                    yield self._got(partial)
                return
            except MediumError as err:
                partial = getattr(err, "partial", b"") or b""
                self._got(partial)
                self.bad = self.next
                raise
            yield self._got(data)


class FrameSource:
    """The decompressed frames of one set from frame `first` on (up to, not including, frame `stop`), crossing to
    the next part's cartridge when a run goes past the end of a part. After a read error `bad_frames` says which
    frames the bad block holds."""

    def __init__(self, layout: SetLayout, mount: Callable[[str], object], cipher=None):
        self.layout = layout
        self.mount = mount
        self.cipher = cipher
        self.bytes_read = 0
        self._part = None
        self._blocks: Blocks | None = None

    def frames(self, first: int, stop: int | None = None, stop_at_part_end: bool = False,
               check_only: bool = False) -> Iterator[bytes]:
        """Decompressed frames; `check_only` (a verify): the stored bytes of each, once its hash matched."""
        layout = self.layout
        number = first
        start_part = layout.frames[first][0] if first in layout.frames else None
        while number in layout.frames and (stop is None or number < stop):
            part, pos = layout.frames[number]
            if stop_at_part_end and part != start_part:
                return
            last = number
            while last + 1 in layout.frames and layout.frames[last + 1][0] == part and (stop is None or
                                                                                      last + 1 < stop):
                last += 1
            drive = self.mount(layout.barcodes[part])
            drive.locate(pos.block)
            self._part = part
            self._blocks = blocks = Blocks(drive, layout.block_size, pos.block, layout.end_block(last))
            positions = [layout.frames[n][1] for n in range(number, last + 1)]
            try:
                for raw in archive.read_frames(blocks, pos.offset, cipher=self.cipher, frames=positions,
                                               check_only=check_only):
                    yield raw
                    number += 1
            finally:
                self.bytes_read += blocks.take()

    def bad_frames(self, err: Exception) -> set[int]:
        if isinstance(err, archive.FrameDamaged):
            return {err.number}
        if self._blocks is not None and self._blocks.bad is not None:
            return self.layout.frames_at(self._part, self._blocks.bad)
        return set()


@dataclass
class ReadResult:
    members: int = 0
    lost: list[bytes] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_run(run: Run, source: FrameSource, write: Callable[[object, object], None], result: ReadResult) -> None:
    """Read the run's frames and hand each wanted member to `write(tarinfo, fileobj)`. Members whose data lies in
    a bad frame are recorded in `result.lost`; the others are still read, around the bad frames."""
    layout = run.layout
    left = dict(run.wanted)
    bad: set[int] = set()

    def spans_bad(entry) -> bool:
        return any(entry.frame <= b <= layout.ends.get(entry.path, entry.frame) for b in bad)

    while left:
        start = min(left.values(), key=lambda e: (e.frame, e.offset))
        stop = min((b for b in bad if b > start.frame), default=None)
        before = len(left)
        try:
            for info, content in archive.read_members(source.frames(start.frame, stop), start.offset):
                path = info.name.encode("utf-8", "surrogateescape")
                if path in left:
                    write(info, content)
                    result.members += 1
                    del left[path]
                    if not left:
                        return
        except (MediumError, archive.FrameDamaged, tarfile.TarError) as err:
            found = source.bad_frames(err) if not isinstance(err, tarfile.TarError) else set()
            if found - bad:
                bad |= found
                frames = ", ".join(map(str, sorted(found)))
                result.warnings.append(f"set {layout.set_uuid}: {noun(len(found), 'frame')} {frames} unreadable "
                                       f"({err})")
            elif not isinstance(err, tarfile.TarError) or stop is None:
                raise
        lost = [p for p, e in left.items() if spans_bad(e)]
        for p in lost:
            del left[p]
        result.lost.extend(lost)
        if len(left) == before and not lost and (stop is None or start.frame >= stop):
            break  # no progress: what is left is not where the index says
    if left:
        result.lost.extend(left)
        result.warnings.append(f"set {layout.set_uuid}: {plural(len(left), 'file')} named by the index "
                               f"{'was' if len(left) == 1 else 'were'} not found on tape")
