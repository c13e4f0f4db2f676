"""What turns members of a recovery point into a tape set's frames: a batch of manifest rows, with where their
chunks are in the packs, archived (pax) and compressed into whole frames. It runs on the tape job's thread for the
first batches of a set and in worker processes past them (snapshot_frames.py decides): building the members and
reading their chunks hold the GIL, so on the job's threads the archive was bound to one core.

A batch ends its last frame: the frames of one batch never hold members of another, so batches are made side by side
and their frames only numbered, in order, by the job. A member too big for one batch is cut into pieces at chunk
boundaries, each a batch of its own: its first piece with its headers (`FIRST`), the next ones content only (`MORE`,
the last one with the member's padding); the job checks that the pieces gave the bytes the header announced.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from appliance.media import members
from appliance.media.archive import ArchiveWriter
from appliance.store.packs import verified
from appliance.store.workers import Blobs, serve

WHOLE, FIRST, MORE = 0, 1, 2
LEVEL = 3
RAW_MIN = 64 << 10  # content the store kept raw, from this size on, is framed at archive.FAST_LEVEL
WINDOW = 256 << 10  # read ahead in a pack for the next small chunks (a sync stores a directory's files side by side)


class BatchArchiver:
    """Archives batches. An item is (WHOLE or FIRST, row, places) or (MORE, pad, places), `places` a member's
    chunks (or this piece's) as (pack id, offset, length, flags, digest), None for a member without content;
    `packs` maps a pack id to (descriptor, "pack NAME" for an error message)."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self.packs: dict[int, tuple[int, str]] = {}
        self.roots: dict[str, bytes] = {}
        self.writer = ArchiveWriter(workers=0, level=LEVEL)  # one for every batch: its compressors and buffer stay
        self.view = memoryview(bytearray(WINDOW))
        self.window = (-1, 0, 0)  # (pack descriptor, start, end) of what the buffer holds

    def _chunks(self, places: list[tuple]) -> Iterator[bytes]:
        """The verified chunks, each in memory of its own (the archive holds them until their frame is cut)."""
        for pack, offset, length, flags, digest in places:
            fd, name = self.packs[pack]
            if length > WINDOW:
                blob = os.pread(fd, length, offset)
            else:
                wfd, start, end = self.window
                if fd != wfd or offset < start or offset + length > end:
                    self.window = (-1, 0, 0)
                    self.window = (fd, offset, offset + os.preadv(fd, [self.view], offset))
                at = offset - self.window[1]
                blob = self.view[at:at + length]
            data = verified(digest, blob, flags, lambda: name)
            yield bytes(data) if isinstance(data, memoryview) else data

    def archive(self, items: list[tuple]) -> Blobs:
        """The batch: its frames' stored bytes beside ([(raw length, BLAKE3, entries as (path, key, offset,
        link))] for its frames, [(path or None, bytes given)] for each piece of a split member, in order)."""
        writer = self.writer
        pieces: list[tuple] = []

        def frames():
            for kind, what, places in items:
                # the store found it incompressible (not merely too small to compress: under 128 bytes)
                raw = bool(places) and not any(place[3] for place in places) and sum(p[2] for p in places) >= RAW_MIN
                if kind == MORE:
                    given = yield from writer.add_more(self._chunks(places), what, raw)
                    pieces.append((None, given))
                    continue
                member = members.prepared_from_row(what, self.sources, self.roots)
                member.content = None if places is None else self._chunks(places)
                given = yield from writer.add(member, kind == WHOLE, raw)
                if kind == FIRST:
                    pieces.append((member.path, given))
            yield from writer.close()

        made = list(frames())
        return Blobs(([(frame.raw_length, frame.hash,
                        [(e.path, (e.type, e.size, e.mode, e.uid, e.gid, e.mtime_ns, e.digest), e.offset, e.link)
                         for e in frame.entries]) for frame in made], pieces), [frame.data for frame in made])


def _archive(archiver: BatchArchiver, message: tuple, fds: list[int]) -> tuple:
    packs, items = message
    for (pack, name), fd in zip(packs, fds):
        archiver.packs[pack] = (fd, name)
    return archiver.archive(items)


def main(fd: int) -> None:
    """Serve one set: its sources first, then a message per batch, (new packs [(id, "pack NAME")], items), the new
    packs' descriptors right behind it."""
    serve(fd, BatchArchiver, _archive, lambda message: len(message[0]))
