"""Optional encryption of a set's frames: AES-256-GCM in a versioned envelope (docs/tape-format.md).

A sealed frame is a zstd skippable frame (magic 0x184D2A5E), so an encrypted set's tape file is still one valid zstd
stream; `decrypt_stream` turns it back into the plain one (`dd | tapeline media decrypt --key K | zstd -dc | tar -x`).

Envelope, version 1 (all integers little endian), the content of the skippable frame:
    b"TLE" | version u8 = 1 | key id (8 bytes) | set id (16 bytes) | frame number u64 | nonce (12 bytes) |
    ciphertext of the zstd frame | GCM tag (16 bytes)
The 48 bytes before the ciphertext are the GCM associated data: a frame cannot be moved to another place, set or key
without failing its tag. The key id is the start of the key's fingerprint; the set id BLAKE3 of the set's UUID.
Nonces are random (96 bits): fine for far more frames than one key will ever seal (2^32 frames of 4 MiB = 16 PiB).

Keys are files of 32 random bytes, mode 0600, kept outside the catalog. A lost key is lost data: nothing on tape or in
the catalog can recover a set without it.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import BinaryIO

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import TapelineError
from appliance.media.format import SEALED_MAGIC, SKIPPABLE_HEADER, skippable_at, skippable_frame

KEY_SIZE = 32
ENVELOPE_VERSION = 1
_MAGIC = b"TLE"
_HEAD = struct.Struct("<3sB8s16sQ12s")  # magic, version, key id, set id, frame number, nonce
_TAG = 16
_FINGERPRINT_CONTEXT = b"tapeline key fingerprint v1\0"


class CryptoError(TapelineError):
    """A key that cannot be used, or a frame that does not open with it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message, fix)


def key_fingerprint(key: bytes) -> str:
    """"blake3:" and 32 hex digits: names a key without revealing it (a keyed hash of a fixed context)."""
    return "blake3:" + blake3.blake3(_FINGERPRINT_CONTEXT + key).hexdigest()[:32]


def _key_id(key: bytes) -> bytes:
    return bytes.fromhex(key_fingerprint(key).removeprefix("blake3:"))[:8]


def _set_id(set_uuid: str) -> bytes:
    return blake3.blake3(set_uuid.encode()).digest()[:16]


def create_key_file(path: Path) -> str:
    """A new key of 32 random bytes at `path` (mode 0600, never replacing a file); its fingerprint."""
    key = os.urandom(KEY_SIZE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise CryptoError(f"{path} exists: a key file is never replaced (its sets would be lost)",
                          "choose another path") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key_fingerprint(key)


def load_key(path: Path) -> bytes:
    """The key in `path`: exactly 32 bytes, readable by its owner only."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CryptoError(f"key file {path} cannot be read ({exc.strerror})",
                          "give the path of the pool's key file (see 'tapeline pool show')") from None
    try:
        st = os.fstat(fd)
        key = os.read(fd, KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_SIZE:
        raise CryptoError(f"key file {path} holds {len(key)} bytes, not {KEY_SIZE}",
                          "give the key file the pool was created with")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise CryptoError(f"key file {path} can be read by others (mode {stat.S_IMODE(st.st_mode):o})",
                          f"chmod 600 {path}")
    return key


class FrameCipher:
    """Seals and opens the frames of one set (`ArchiveWriter(cipher=...)`, `read_frames(..., cipher=...)`)."""

    def __init__(self, key: bytes, set_uuid: str | None = None) -> None:
        if len(key) != KEY_SIZE:
            raise CryptoError(f"a key of {len(key)} bytes, not {KEY_SIZE}", "give a key made by create_key_file")
        self._aead = AESGCM(key)
        self.fingerprint = key_fingerprint(key)
        self._key_id = _key_id(key)
        self._set_id = _set_id(set_uuid) if set_uuid is not None else None

    def seal(self, number: int, frame: bytes) -> bytes:
        if self._set_id is None:
            raise CryptoError("a cipher without a set cannot seal", "give the set's UUID to FrameCipher")
        head = _HEAD.pack(_MAGIC, ENVELOPE_VERSION, self._key_id, self._set_id, number, os.urandom(12))
        return skippable_frame(head + self._aead.encrypt(head[-12:], frame, head), SEALED_MAGIC)

    def open(self, sealed: bytes, number: int | None = None) -> bytes:
        """The zstd frame inside a sealed one; `number` (and the set, when this cipher has one) must match."""
        found = skippable_at(sealed)
        if found is None or found[0] != SEALED_MAGIC or len(sealed) < SKIPPABLE_HEADER + _HEAD.size + _TAG:
            raise CryptoError("not an encrypted frame", "leave out the decrypt step: this set is not encrypted")
        body = memoryview(sealed)[SKIPPABLE_HEADER:SKIPPABLE_HEADER + found[1]]
        magic, version, key_id, set_id, got_number, nonce = _HEAD.unpack_from(body)
        if magic != _MAGIC or version > ENVELOPE_VERSION:
            raise CryptoError(f"an encrypted frame of envelope version {version}, newer than this Tapeline reads",
                              "upgrade Tapeline to read this set")
        if key_id != self._key_id:
            raise CryptoError(f"frame {got_number} was sealed with another key (id {key_id.hex()}, this key's "
                              f"fingerprint is {self.fingerprint})", "give the key file whose fingerprint the set records")
        if number is not None and got_number != number:
            raise CryptoError(f"frame {got_number} found where frame {number} was expected",
                              "restore its files from another copy of the set")
        if self._set_id is not None and set_id != self._set_id:
            raise CryptoError(f"frame {got_number} belongs to another set", "check which tape file is being read")
        try:
            return self._aead.decrypt(nonce, bytes(body[_HEAD.size:]), bytes(body[:_HEAD.size]))
        except InvalidTag:
            raise CryptoError(f"frame {got_number} does not open with this key (damaged or altered)",
                              "restore its files from another copy of the set") from None


def decrypt_stream(key: bytes, infile: BinaryIO, outfile: BinaryIO) -> int:
    """The standard-tools decrypt step: a set's tape file (or its parts, concatenated) on `infile`, the plain zstd
    stream on `outfile`; the header block and padding pass through (zstd skips them). Returns the frames opened.
    Anything but skippable frames is refused: an unencrypted set needs no decrypt step."""
    cipher = FrameCipher(key)
    frames = 0
    while True:
        head = _read_exactly(infile, SKIPPABLE_HEADER)
        if not head:
            return frames
        found = skippable_at(head) if len(head) == SKIPPABLE_HEADER else None
        if found is None:
            raise CryptoError("the input is not an encrypted Tapeline set (a plain zstd frame or other data)",
                              "leave out the decrypt step for an unencrypted set, or check the dd command")
        body = _read_exactly(infile, found[1])
        if len(body) != found[1]:
            raise CryptoError("the input ends inside a frame", "read the whole tape file (dd until its filemark)")
        if found[0] == SEALED_MAGIC:
            outfile.write(cipher.open(head + body))
            frames += 1
        else:
            outfile.write(head + body)


def _read_exactly(infile: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = infile.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)
