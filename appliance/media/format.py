"""The on-tape format (docs/tape-format.md has it byte by byte): labels, the set header block, the packing of zstd
frames into fixed blocks, and the index and media-set catalog files.

A cartridge holds, one tape file each: file 0 the volume label, file 1 the media-set label, then for each set (or its
part on this cartridge) the set's data followed by its index file, and the media set's catalog file last.

Invariants:
- Every block is exactly `block_size` bytes; a tape file is a whole number of blocks.
- A set's data file is one valid zstd stream: the header block and the tail padding are skippable frames, everything
  between is independent zstd frames (`zstd -dc` of the file is the pax archive slice the set holds).
- Labels are plain text a person can read (`dd | head -c 2000`), closed by a BLAKE3 check of that text: a label that
  starts like ours but fails the check is ours and damaged (`LabelError`), anything else is foreign (`NotOurLabel`).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii as _quote

import blake3
import zstandard

from appliance.errors import TapelineError

BLOCK_SIZE = 256 * 1024
LABEL_VERSION = 1
_LABEL_MAGIC = b"TAPELINE "
_VOLUME_KIND = "VOLUME LABEL"
_MEDIA_SET_KIND = "MEDIA SET LABEL"
_CHECK = "check"


class FormatError(TapelineError):
    """Data on tape that is not what the format says."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message, fix)


class NotOurLabel(FormatError):
    """The block is not a Tapeline label at all: foreign data."""


class LabelError(FormatError):
    """A Tapeline label that cannot be read: damaged, the wrong kind, or written by a newer version."""


@dataclass(frozen=True)
class VolumeLabel:
    barcode: str
    uuid: str
    pool: str | None
    created: datetime
    block_size: int
    version: int = LABEL_VERSION


@dataclass(frozen=True)
class MediaSetLabel:
    pool: str
    media_set: str
    sequence: int
    key_fingerprint: str | None
    created: datetime
    version: int = LABEL_VERSION


def _check_value(name: str, value: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise FormatError(f"label field {name} {value!r} holds a line break or NUL",
                          "use a name without control characters")
    return value


def _encode_label(kind: str, fields: list[tuple[str, str | None]], about: str, block_size: int) -> bytes:
    lines = [f"TAPELINE {kind}", f"format: {LABEL_VERSION}"]
    lines += [f"{name}: {_check_value(name, value)}" for name, value in fields if value is not None]
    text = "\n".join(lines) + "\n"
    text += f"{_CHECK}: {blake3.blake3(text.encode()).hexdigest()[:32]}\n\n{about}\n"
    raw = text.encode()
    if len(raw) > block_size:
        raise FormatError(f"label of {len(raw)} bytes does not fit a {block_size}-byte block",
                          "use a block size of at least 4 KiB")
    return raw + bytes(block_size - len(raw))


def _decode_label(block: bytes, kind: str) -> dict[str, str]:
    if not block.startswith(_LABEL_MAGIC):
        raise NotOurLabel("the block is not a Tapeline label (foreign data)",
                          "relabel or erase the cartridge with --force if its data may be lost")
    text = block[: block.find(b"\0")] if b"\0" in block else block
    try:
        lines = text.decode().split("\n")
    except UnicodeDecodeError:
        raise LabelError("the Tapeline label is damaged (not text)", "relabel the cartridge with --force") from None
    if lines[0] != f"TAPELINE {kind}":
        raise LabelError(f"expected a Tapeline {kind.lower()}, found {lines[0][:40]!r}",
                         "check which tape file the drive is positioned at")
    # The version first: a newer format may check itself differently.
    version = lines[1].removeprefix("format: ") if len(lines) > 1 else ""
    if not version.isdigit():
        raise LabelError(f"the Tapeline {kind.lower()} has no format version", "relabel the cartridge with --force")
    if int(version) > LABEL_VERSION:
        raise LabelError(f"the {kind.lower()} is format {version}, newer than this Tapeline reads ({LABEL_VERSION})",
                         "upgrade Tapeline to read this cartridge")
    fields: dict[str, str] = {}
    for i, line in enumerate(lines):
        name, sep, value = line.partition(": ")
        if name == _CHECK:
            expected = blake3.blake3(("\n".join(lines[:i]) + "\n").encode()).hexdigest()[:32]
            if value != expected:
                raise LabelError(f"the Tapeline {kind.lower()} is damaged (check mismatch)",
                                 "relabel the cartridge with --force, or read it in another drive")
            return fields
        if not line:
            break
        if sep:
            fields[name] = value
    raise LabelError(f"the Tapeline {kind.lower()} is damaged (no check line)",
                     "relabel the cartridge with --force, or read it in another drive")


def _field(fields: dict[str, str], name: str, kind: str, convert=str):
    try:
        return convert(fields[name])
    except (KeyError, ValueError):
        raise LabelError(f"the Tapeline {kind.lower()} lacks a valid {name!r}",
                         "relabel the cartridge with --force") from None


def encode_volume_label(label: VolumeLabel) -> bytes:
    """Tape file 0: exactly one block of text, NUL padded."""
    about = (f"This is tape file 0 of cartridge {label.barcode}, written by Tapeline. Tape file 1 is the media-set\n"
             f"label; each later file is a backup set (zstd frames of a pax archive: dd bs={label.block_size} | "
             f"zstd -dc | tar -x)\nor the index of the set before it; the last file is the media set's catalog.")
    return _encode_label(_VOLUME_KIND, [
        ("barcode", label.barcode), ("uuid", label.uuid), ("pool", label.pool),
        ("created", label.created.isoformat()), ("block-size", str(label.block_size))], about, label.block_size)


def decode_volume_label(block: bytes) -> VolumeLabel:
    """The label in tape file 0; NotOurLabel for anything that is not a Tapeline label, LabelError for one that is
    damaged, of another kind, or newer than this version reads."""
    fields = _decode_label(block, _VOLUME_KIND)
    kind = _VOLUME_KIND
    return VolumeLabel(barcode=_field(fields, "barcode", kind), uuid=_field(fields, "uuid", kind),
                       pool=fields.get("pool"), created=_field(fields, "created", kind, datetime.fromisoformat),
                       block_size=_field(fields, "block-size", kind, int), version=int(fields["format"]))


def encode_media_set_label(label: MediaSetLabel, block_size: int = BLOCK_SIZE) -> bytes:
    """Tape file 1: exactly one block of text, NUL padded."""
    about = (f"This is tape file 1: cartridge number {label.sequence} of media set {label.media_set} "
             f"(pool {label.pool}), written by Tapeline.\n"
             + ("Its sets are encrypted (AES-256-GCM): restoring them needs the key with the fingerprint above.\n"
                if label.key_fingerprint else ""))
    return _encode_label(_MEDIA_SET_KIND, [
        ("pool", label.pool), ("media-set", label.media_set), ("sequence", str(label.sequence)),
        ("key-fingerprint", label.key_fingerprint), ("created", label.created.isoformat())], about, block_size)


def decode_media_set_label(block: bytes) -> MediaSetLabel:
    """The label in tape file 1; same errors as `decode_volume_label`."""
    fields = _decode_label(block, _MEDIA_SET_KIND)
    kind = _MEDIA_SET_KIND
    return MediaSetLabel(pool=_field(fields, "pool", kind), media_set=_field(fields, "media-set", kind),
                         sequence=_field(fields, "sequence", kind, int), key_fingerprint=fields.get("key-fingerprint"),
                         created=_field(fields, "created", kind, datetime.fromisoformat),
                         version=int(fields["format"]))


# ---- zstd skippable frames (RFC 8878 3.1.2): magic 0x184D2A50..5F, a u32 LE content length, the content ---------
SKIPPABLE_HEADER = 8
HEADER_MAGIC = 0x184D2A50  # the set header block and the tail padding
SEALED_MAGIC = 0x184D2A5E  # an encrypted frame's envelope (crypto.py)
_SKIPPABLE = struct.Struct("<II")


def skippable_frame(content: bytes, magic: int = HEADER_MAGIC) -> bytes:
    return _SKIPPABLE.pack(magic, len(content)) + content


def padding(length: int, block_size: int) -> bytes:
    """Bytes that bring a tape file of `length` bytes to a whole number of blocks as one skippable frame (nothing
    when it is whole). A gap of 1-7 bytes cannot hold a skippable frame's header: the padding then runs on through
    one more block."""
    gap = -length % block_size
    if gap == 0:
        return b""
    if gap < SKIPPABLE_HEADER:
        gap += block_size
    return skippable_frame(bytes(gap - SKIPPABLE_HEADER))


def skippable_at(data: bytes | memoryview, at: int = 0) -> tuple[int, int] | None:
    """(magic, content length) of a skippable frame starting at `at`, or None when none starts there."""
    if len(data) - at < SKIPPABLE_HEADER:
        return None
    magic, length = _SKIPPABLE.unpack_from(data, at)
    return (magic, length) if magic & 0xFFFFFFF0 == HEADER_MAGIC else None


# ---- sets ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetHeader:
    set_uuid: str
    group: str
    point: int | None
    snapshot_id: str | None
    created: datetime
    kind: str  # "full" | "incremental" | "direct"
    part: int  # 1.. : the part of a set on one cartridge
    tape_file: int
    pool: str
    media_set: str
    block_size: int = BLOCK_SIZE
    encrypted: bool = False


@dataclass(frozen=True)
class IndexEntry:
    path: bytes  # full path on the protected machine, without the leading "/"
    type: str  # appliance.store.model.TYPES
    size: int
    mode: int  # st_mode, type bits included
    uid: int
    gid: int
    mtime_ns: int
    digest: bytes | None
    frame: int  # the frame (numbered through the whole set) holding the member's first tar header
    offset: int  # that header's byte offset in the frame's decompressed data
    part: int
    in_set: str | None = None  # the set holding the data, when not this one (an incremental's unchanged member)
    link: bytes | None = None  # a symlink's target, or the member path a hardlink names (its data's member)


@dataclass(frozen=True)
class Frame:
    data: bytes  # one zstd frame, or its sealed envelope
    raw_length: int  # decompressed bytes
    number: int  # in the set, from 0
    entries: list[IndexEntry]
    hash: bytes | None = None  # BLAKE3 of `data`, when the writer computed it already


@dataclass(frozen=True)
class FramePosition:
    number: int
    block: int  # absolute block address (LOCATE) of the block the frame starts in
    offset: int  # byte offset of its start in that block
    length: int  # stored bytes
    raw_length: int
    hash: bytes  # BLAKE3 of the stored bytes


def _recipe(header: SetHeader) -> str:
    bs = header.block_size
    bs_arg = f"{bs // 1024}k" if bs % 1024 == 0 else str(bs)
    decrypt = f" | {DECRYPT_COMMAND}" if header.encrypted else ""
    return (
        f"Tape file {header.tape_file} holds part {header.part} of backup set {header.set_uuid}\n"
        f"(group {header.group}, {header.kind}) as zstd frames of a POSIX pax archive. To restore it without\n"
        "Tapeline, as root, with GNU tar and zstd:\n\n"
        "  mt -f /dev/nst0 rewind\n"
        f"  mt -f /dev/nst0 fsf {header.tape_file}\n"
        f"  dd if=/dev/nst0 bs={bs_arg}{decrypt} | zstd -dc | tar --xattrs --xattrs-include='*' --acls -xpf -\n\n"
        + ("The set is encrypted: the decrypt step needs the pool's key file (see docs/tape-format.md).\n"
           if header.encrypted else "")
        + "A set that spans cartridges continues on the next cartridge of the media set as part "
          f"{header.part + 1}:\nconcatenate the parts' dd output in order before zstd -dc. The tape file after this one "
          "is the set's index.\n")


DECRYPT_COMMAND = "tapeline media decrypt --key KEYFILE"


def _header_fields(header: SetHeader) -> list[tuple[str, str | None]]:
    return [("set", header.set_uuid), ("group", header.group),
            ("point", None if header.point is None else str(header.point)), ("snapshot", header.snapshot_id),
            ("created", header.created.isoformat()), ("kind", header.kind), ("part", str(header.part)),
            ("tape-file", str(header.tape_file)), ("pool", header.pool), ("media-set", header.media_set),
            ("block-size", str(header.block_size)), ("encrypted", "yes" if header.encrypted else "no")]


_SET_KIND = "BACKUP SET"


def encode_set_header(header: SetHeader) -> bytes:
    """The first block of a set's tape file: a skippable frame whose content is the set's description and recipe."""
    text = _encode_label(_SET_KIND, _header_fields(header), _recipe(header), header.block_size - SKIPPABLE_HEADER)
    return skippable_frame(text)


def decode_set_header(block: bytes) -> SetHeader:
    found = skippable_at(block)
    if found is None or found[0] != HEADER_MAGIC:
        raise NotOurLabel("the block is not a Tapeline set header", "check which tape file the drive is positioned at")
    fields = _decode_label(block[SKIPPABLE_HEADER:SKIPPABLE_HEADER + found[1]], _SET_KIND)
    kind = _SET_KIND
    point = fields.get("point")
    return SetHeader(set_uuid=_field(fields, "set", kind), group=_field(fields, "group", kind),
                     point=None if point is None else int(point), snapshot_id=fields.get("snapshot"),
                     created=_field(fields, "created", kind, datetime.fromisoformat), kind=_field(fields, "kind", kind),
                     part=_field(fields, "part", kind, int), tape_file=_field(fields, "tape-file", kind, int),
                     pool=_field(fields, "pool", kind), media_set=_field(fields, "media-set", kind),
                     block_size=_field(fields, "block-size", kind, int), encrypted=fields.get("encrypted") == "yes")


class SetStream:
    """The blocks of one set's part on one cartridge: the header block, the frames packed back to back across fixed
    blocks, and the tail padding. Positions are absolute block addresses: `first_block` is where the header goes."""

    def __init__(self, header: SetHeader, first_block: int, block_size: int = BLOCK_SIZE) -> None:
        self.header = header
        self.first_block = first_block
        self.block_size = block_size
        self._pending = bytearray()
        self._emitted = 1  # the header block
        self._frames: list[FramePosition] = []
        self._finished = False

    def header_block(self) -> bytes:
        return encode_set_header(self.header)

    def _position(self) -> tuple[int, int]:
        return self.first_block + self._emitted + len(self._pending) // self.block_size, \
            len(self._pending) % self.block_size

    def add(self, frame: Frame) -> bytes:
        """The whole blocks this frame completed, back to back (often none for a small frame, several for a big
        one): one WRITE carries them all."""
        if self._finished:
            raise RuntimeError("SetStream.add after finish")
        block, offset = self._position()
        digest = frame.hash or blake3.blake3(frame.data).digest()
        self._frames.append(FramePosition(frame.number, block, offset, len(frame.data), frame.raw_length, digest))
        bs = self.block_size
        whole = (len(self._pending) + len(frame.data)) // bs
        if not whole:
            self._pending += frame.data
            return b""
        # One copy of the frame, into the blocks handed out (appending it to the pending bytes first was another).
        cut = whole * bs - len(self._pending)
        with memoryview(frame.data) as data:
            blocks = b"".join((self._pending, data[:cut]))
            self._pending = bytearray(data[cut:])
        self._emitted += whole
        return blocks

    def _take(self) -> bytes:
        bs = self.block_size
        whole = len(self._pending) // bs
        if not whole:
            return b""
        with memoryview(self._pending) as view:
            blocks = bytes(view[:whole * bs])
        del self._pending[:whole * bs]
        self._emitted += whole
        return blocks

    def finish(self) -> bytes:
        """The last blocks: what is pending, padded with a skippable frame to whole blocks."""
        self._pending += padding(len(self._pending), self.block_size)
        self._finished = True
        return self._take()

    @property
    def frames(self) -> list[FramePosition]:
        return list(self._frames)

    @property
    def blocks(self) -> int:
        """Blocks handed out so far, the header block included (all of them once finished)."""
        return self._emitted


# ---- index and catalog files -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetIndex:
    header: SetHeader
    frames: list[FramePosition]
    entries: list[IndexEntry]
    complete: bool  # False: the part of a set that goes on on another cartridge


@dataclass(frozen=True)
class CatalogPart:
    part: int
    barcode: str
    sequence: int  # the cartridge's number in the media set
    tape_file: int
    index_file: int
    first_block: int
    blocks: int


@dataclass(frozen=True)
class CatalogSet:
    header: SetHeader  # as written in the set's first part
    parts: list[CatalogPart]
    complete: bool


@dataclass(frozen=True)
class MediaSetCatalog:
    label: MediaSetLabel
    sets: list[CatalogSet]


INDEX_FORMAT = "tapeline-set-index"
CATALOG_FORMAT = "tapeline-media-set-catalog"
FILE_VERSION = 1


def _time(value: datetime) -> str:
    return value.isoformat()


def _header_json(h: SetHeader) -> dict:
    return {"set": h.set_uuid, "group": h.group, "point": h.point, "snapshot": h.snapshot_id,
            "created": _time(h.created), "kind": h.kind, "part": h.part, "tape_file": h.tape_file, "pool": h.pool,
            "media_set": h.media_set, "block_size": h.block_size, "encrypted": h.encrypted}


def _header_from(d: dict) -> SetHeader:
    return SetHeader(set_uuid=d["set"], group=d["group"], point=d["point"], snapshot_id=d["snapshot"],
                     created=datetime.fromisoformat(d["created"]), kind=d["kind"], part=d["part"],
                     tape_file=d["tape_file"], pool=d["pool"], media_set=d["media_set"], block_size=d["block_size"],
                     encrypted=d["encrypted"])


def _path_text(path: bytes) -> str:
    # surrogateescape: a name that is not UTF-8 survives (json writes the escapes as \udcXX, json reads them back)
    return path.decode("utf-8", "surrogateescape")


_JSON = json.JSONEncoder(separators=(",", ":"))  # ASCII: \uXXXX escapes for everything else


def member_line(e: IndexEntry) -> str:
    """An index's member record, the very text `_JSON.encode` gives its dict (the keys in this order), built
    directly: a set of 100,000 members spent over a second in dicts and the encoder as the drive waited."""
    link = f',"link":{_quote(_path_text(e.link))}' if e.link is not None else ""
    digest = f'"{e.digest.hex()}"' if e.digest else "null"
    in_set = _quote(e.in_set) if e.in_set is not None else "null"
    return (f'{{"m":{_quote(_path_text(e.path))},"type":{_quote(e.type)},"size":{e.size},"mode":{e.mode},'
            f'"uid":{e.uid},"gid":{e.gid},"mtime_ns":{e.mtime_ns},"digest":{digest},"frame":{e.frame},'
            f'"offset":{e.offset},"part":{e.part},"in_set":{in_set}{link}}}')


class _Lines:
    """JSON lines compressed as they come into one zstd frame (level 3, as the frames: level 9 took six times as
    long for an index no smaller, its digests do not compress)."""

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
        self._out = bytearray()
        self._batch: list[str] = []

    def add(self, lines: Iterable[str]) -> None:
        self._batch += lines
        if len(self._batch) >= 4096:
            self._flush_batch()

    def _flush_batch(self) -> None:
        self._out += self._compressor.compress(("\n".join(self._batch) + "\n").encode("ascii"))
        self._batch.clear()

    def done(self) -> bytes:
        if self._batch:
            self._flush_batch()
        return bytes(self._out + self._compressor.flush())


def _compress_lines(lines: Iterable[str], block_size: int) -> bytes:
    compressed = _Lines()
    compressed.add(lines)
    data = compressed.done()
    return data + padding(len(data), block_size)


def _records(data: bytes, expected: str) -> Iterator[dict]:
    """The file's records one by one, after checking its first line: a big set's index is never held twice."""
    damaged = f"a damaged {expected} file", "read it again, or from another cartridge of the set"
    reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True),
                              encoding="ascii")
    not_ours = NotOurLabel(f"the tape file is not a {expected} file", "check which tape file the drive is positioned at")
    if data[:4] != zstandard.FRAME_HEADER:
        raise not_ours
    try:
        try:
            head = json.loads(reader.readline() or "null")
        except ValueError:
            raise not_ours from None
        if not isinstance(head, dict) or head.get("format") != expected:
            raise not_ours
        if head.get("version", 0) > FILE_VERSION:
            raise LabelError(f"the {expected} file is version {head['version']}, newer than this Tapeline reads",
                             "upgrade Tapeline to read this cartridge")
        yield head
        for line in reader:
            yield json.loads(line)
    except (zstandard.ZstdError, ValueError) as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
        raise FormatError(f"{damaged[0]} ({exc})", damaged[1]) from None


class IndexWriter:
    """A set part's index file, built as the part is written: the members' lines (`member_line` of each entry, in
    order) are compressed as they come, on the drive's thread while it waits for frames; the first line and the
    frames' lines once the part ends, in a zstd frame of their own ahead of the members' (readers read across
    frames: `zstd -dc` shows the lines in the same order as one frame would)."""

    def __init__(self) -> None:
        self._members = _Lines()

    def add(self, lines: Iterable[str]) -> None:
        self._members.add(lines)

    def finish(self, index: SetIndex) -> bytes:
        """The index file: a first line describing the set, one line per frame ("f"), then the members' ("m")."""
        head = _Lines()
        head.add([_JSON.encode({"format": INDEX_FORMAT, "version": FILE_VERSION, "header": _header_json(index.header),
                                "complete": index.complete})])
        head.add(_JSON.encode({"f": f.number, "block": f.block, "offset": f.offset, "length": f.length,
                               "raw": f.raw_length, "hash": f.hash.hex()}) for f in index.frames)
        data = head.done() + self._members.done()
        return data + padding(len(data), index.header.block_size)


def encode_index(index: SetIndex) -> bytes:
    """The set's index file (`IndexWriter`) with its entries' lines all at once."""
    writer = IndexWriter()
    writer.add(map(member_line, index.entries))
    return writer.finish(index)


def index_header(data: bytes) -> SetHeader:
    """The header of an index file, from its first record alone (the members are not decoded)."""
    return _header_from(next(_records(data, INDEX_FORMAT))["header"])


def decode_index(data: bytes) -> SetIndex:
    records = _records(data, INDEX_FORMAT)
    first = next(records)
    frames, entries = [], []
    try:
        for r in records:
            if "f" in r:
                frames.append(FramePosition(r["f"], r["block"], r["offset"], r["length"], r["raw"],
                                            bytes.fromhex(r["hash"])))
            else:
                entries.append(IndexEntry(
                    path=r["m"].encode("utf-8", "surrogateescape"), type=r["type"], size=r["size"], mode=r["mode"],
                    uid=r["uid"], gid=r["gid"], mtime_ns=r["mtime_ns"],
                    digest=bytes.fromhex(r["digest"]) if r["digest"] else None, frame=r["frame"],
                    offset=r["offset"], part=r["part"], in_set=r["in_set"],
                    link=r["link"].encode("utf-8", "surrogateescape") if "link" in r else None))
        return SetIndex(_header_from(first["header"]), frames, entries, first["complete"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"a damaged {INDEX_FORMAT} file (bad record: {exc})",
                          "read the index from another cartridge of the set") from None


def encode_catalog(catalog: MediaSetCatalog, block_size: int = BLOCK_SIZE) -> bytes:
    """The media set's catalog file (the last file of each cartridge), in the index file's form."""
    def records() -> Iterator[dict]:
        label = catalog.label
        yield {"format": CATALOG_FORMAT, "version": FILE_VERSION, "pool": label.pool, "media_set": label.media_set,
               "sequence": label.sequence, "key_fingerprint": label.key_fingerprint, "created": _time(label.created)}
        for s in catalog.sets:
            yield {"set": _header_json(s.header), "complete": s.complete,
                   "parts": [{"part": p.part, "barcode": p.barcode, "sequence": p.sequence, "tape_file": p.tape_file,
                              "index_file": p.index_file, "first_block": p.first_block, "blocks": p.blocks}
                             for p in s.parts]}
    return _compress_lines(map(_JSON.encode, records()), block_size)


def decode_catalog(data: bytes) -> MediaSetCatalog:
    records = _records(data, CATALOG_FORMAT)
    first = next(records)
    try:
        label = MediaSetLabel(pool=first["pool"], media_set=first["media_set"], sequence=first["sequence"],
                              key_fingerprint=first["key_fingerprint"], created=datetime.fromisoformat(first["created"]))
        sets = [CatalogSet(_header_from(r["set"]), [CatalogPart(**p) for p in r["parts"]], r["complete"])
                for r in records]
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"a damaged {CATALOG_FORMAT} file (bad record: {exc})",
                          "read the catalog from another cartridge of the set") from None
    return MediaSetCatalog(label, sets)
