"""Reading a cartridge whole: `media rebuild` (labels, set headers and index files only, never the data frames)
and `media verify` (every frame of every set, against its hash).

A cartridge is walked from its start: file 0 the volume label, file 1 the media-set label, then for each set part
its data file (recognised by its header block) and its index file, and the media-set catalog last. Rebuild reads the
first block of a data file (its header) and spaces over the rest with one SPACE FILEMARKS; it trusts the index
files, not the catalog file, so a cartridge whose last write was cut short (no catalog file, a data file without its
index) still gives every set that was whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from drivers.scsi.sense import BlankCheck, FilemarkDetected, MediumError

from appliance.media import archive
from appliance.media import format as fmt
from appliance.media.tape_read import Blocks

log = logging.getLogger("tapeline.media.scan")


@dataclass
class FoundPart:
    """One set part found on a cartridge, with the bytes of its index file as written."""

    barcode: str
    header: "fmt.SetHeader"
    index: "fmt.SetIndex"
    raw_index: bytes
    tape_file: int
    index_file: int
    first_block: int
    blocks: int


@dataclass
class TapeScan:
    barcode: str
    volume: "fmt.VolumeLabel | None" = None
    media_set: "fmt.MediaSetLabel | None" = None
    parts: list[FoundPart] = field(default_factory=list)
    next_file: int = 2  # after the last whole part's index file
    bytes_read: int = 0
    bytes_on_tape: int = 0  # up to the end of data
    problems: list[str] = field(default_factory=list)
    blank: bool = False
    foreign: str | None = None  # why the tape is not ours


def _read_file(drive, block_size: int, scan: TapeScan) -> bytes:
    """The rest of the current tape file (its filemark consumed)."""
    chunks = []
    for block in drive.read_file(block_size):
        scan.bytes_read += len(block)
        chunks.append(block)
    return b"".join(chunks)


def scan_tape(drive, barcode: str, block_size: int) -> TapeScan:
    """Walk a mounted cartridge from its start without reading set data beyond each header block."""
    scan = TapeScan(barcode)
    drive.rewind()
    try:
        first = drive.read(block_size)
    except BlankCheck:
        scan.blank = True
        return scan
    scan.bytes_read += len(first)
    try:
        scan.volume = fmt.decode_volume_label(first)
    except fmt.NotOurLabel as exc:
        scan.foreign = str(exc)
        return scan
    _skip_rest(drive)
    try:
        label = _read_file(drive, block_size, scan)
        scan.media_set = fmt.decode_media_set_label(label[:block_size])
    except (fmt.FormatError, BlankCheck):
        return scan  # labelled, never written into a media set
    tape_file = 2
    pending: tuple | None = None  # (header, tape file, first block, blocks) of a data file whose index comes next
    while True:
        start = drive.read_position().block
        try:
            block = drive.read(block_size)
        except BlankCheck:
            break
        except FilemarkDetected:  # an empty file: nothing we write
            tape_file += 1
            continue
        scan.bytes_read += len(block)
        try:
            header = fmt.decode_set_header(block)
        except fmt.FormatError:
            header = None
        if header is not None:
            _skip_rest(drive)
            end = drive.read_position().block  # past the filemark, which LOCATE counts as an object too
            pending = (header, tape_file, start, end - start - 1)
            tape_file += 1
            continue
        data = block + _read_file(drive, block_size, scan)
        try:
            index = fmt.decode_index(data)
        except fmt.FormatError:
            index = None
        if index is not None and pending is not None and pending[0].set_uuid == index.header.set_uuid:
            header, data_file, first_block, blocks = pending
            scan.parts.append(FoundPart(barcode, header, index, data, data_file, tape_file, first_block, blocks))
            scan.next_file = tape_file + 1
            pending = None
        else:
            try:
                fmt.decode_catalog(data)  # the last file: read for its check, the index files are the truth
            except fmt.FormatError:
                scan.problems.append(f"tape file {tape_file} of {barcode} is neither an index nor a catalog")
        tape_file += 1
    if pending is not None:
        scan.problems.append(f"set {pending[0].set_uuid} on {barcode} (tape file {pending[1]}) has no index: a write "
                             "was cut short; it does not count")
    scan.bytes_on_tape = drive.read_position().block * block_size
    return scan


def _skip_rest(drive) -> None:
    try:
        drive.space_filemarks(1)
    except FilemarkDetected:
        pass


def verify_parts_on(drive, barcode: str, parts: list, indexes: dict[str, list["fmt.SetIndex"]], block_size: int,
                    cipher_for) -> dict:
    """Read every frame of the set parts on one cartridge (catalog PartInfo with their set uuid) and check each
    frame's hash; then its labels, index files and catalog file through a scan."""
    checked, bad, read = 0, [], 0
    for set_uuid, part in parts:
        index = next((i for i in indexes[set_uuid] if i.header.part == part.part), None)
        if index is None or not index.frames:
            continue
        drive.locate(index.frames[0].block)
        blocks = Blocks(drive, block_size, index.frames[0].block)
        try:
            for _raw in archive.read_frames(blocks, index.frames[0].offset, cipher=cipher_for(set_uuid),
                                        frames=list(index.frames), check_only=True):
                checked += 1
        except (archive.ArchiveError, fmt.FormatError, MediumError) as exc:
            bad.append(f"set {set_uuid} part {part.part}: {exc}")
        read += blocks.bytes
    scan = scan_tape(drive, barcode, block_size)
    bad.extend(scan.problems)
    return {"frames_checked": checked, "problems": bad, "bytes_read": read + scan.bytes_read}
