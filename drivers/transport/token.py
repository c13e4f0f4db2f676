"""The served library's credential: a token file only the user serving the library can read.

`tapeline-vtl init` (or the first `tapeline-vtl serve` of an older library) writes `<library>/token`: 64 hex digits,
mode 0600. The stream protocol's handshake (`drivers.transport.frames`) proves knowledge of it without sending it: the
server sends a fresh nonce, the client answers HMAC-SHA256(token, nonce).

Invariants:
- A token file is written whole or not at all (temp file, fsync, rename, directory fsync), created 0600 from the start.
- A token file that group or others may read is refused at both ends (`TokenError`, with the fix): it is no longer a
  credential only its owner holds.
- `read_token` reads only files of the token format, so a client never proves anything about another kind of file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from drivers.errors import DeviceError

TOKEN_NAME = "token"  # in the library directory
NONCE_SIZE = 32
PROOF_SIZE = hashlib.sha256().digest_size
_FORMAT = re.compile(rb"[0-9a-f]{64}\n?")


class TokenError(DeviceError):
    """A token file that cannot be used; the message names the file, the cause and the fix."""


def create_token(path: Path) -> Path:
    """Write a new random token to `path` (mode 0600), replacing any previous one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover temp file
        os.write(fd, secrets.token_hex(32).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_token(path: str | Path) -> bytes:
    """The token in `path`; `TokenError` when it is missing, unreadable, readable by others or not a token."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise TokenError(f"token file {path} does not exist: give the library's own token file "
                         f"(<library directory>/{TOKEN_NAME})") from None
    except PermissionError:
        raise TokenError(f"token file {path} is not readable by this user: run as the user that serves the library, "
                         f"or give a copy of its token readable only by you") from None
    except OSError as exc:
        raise TokenError(f"token file {path} cannot be opened ({exc.strerror}): give the library's token "
                         f"file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TokenError(f"token file {path} is not a regular file: give the library's token file")
        if st.st_mode & 0o077:
            raise TokenError(f"token file {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}): "
                             f"run `chmod 600 {path}`, or delete it and restart the library for a new one")
        raw = os.read(fd, 256)
    finally:
        os.close(fd)
    if not _FORMAT.fullmatch(raw):
        raise TokenError(f"{path} is not a Tapeline library token (64 hex digits): give the library's token file")
    return raw.strip()


def ensure_token(directory: Path) -> Path:
    """The library's token file, created on first use; `TokenError` if the existing one is unusable."""
    path = directory / TOKEN_NAME
    if not path.exists():
        create_token(path)
    read_token(path)
    return path


def proof(token: bytes, nonce: bytes) -> bytes:
    return hmac.new(token, nonce, hashlib.sha256).digest()


def verify(token: bytes, nonce: bytes, answer: bytes) -> bool:
    return hmac.compare_digest(proof(token, nonce), answer)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)
