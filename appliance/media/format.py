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

from dataclasses import dataclass
from datetime import datetime

import blake3

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
