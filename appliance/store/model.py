"""Values the store hands out: `SnapshotInfo` (one recovery point or sync) and `Entry` (one manifest row).

A manifest row is stored as a msgpack array (`Row`, field positions below) so a sync can copy an unchanged row
from the previous manifest without decoding it into an object; `Entry` is the decoded, public form.
Paths are bytes end to end (names that are not UTF-8 survive); `Entry.path` is relative to `Entry.source`
(the source root as the group configured it), with b"" for the root itself and b"/" between components.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import blake3

DIGEST_SIZE = 32

TYPES = ("file", "dir", "symlink", "fifo", "chardev", "blockdev", "hardlink")
TYPE_CODE = {name: code for code, name in enumerate(TYPES)}
FILE, DIR, SYMLINK, FIFO, CHARDEV, BLOCKDEV, HARDLINK = range(7)

# Positions in a manifest row (msgpack array). Append only: readers accept longer rows.
R_SOURCE, R_PATH, R_TYPE, R_MODE, R_UID, R_GID, R_USER, R_GROUP, R_SIZE = range(9)
R_MTIME, R_ATIME, R_CTIME, R_INO, R_DEV, R_NLINK, R_RDEV, R_TARGET, R_XATTRS = range(9, 18)
R_DIGEST, R_CHUNKS, R_EXTENTS, R_NOTE = range(18, 22)  # R_DIGEST: reserved, written nil (content_digest)
ROW_FIELDS = 22


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    group: str
    kind: str  # "sync" | "point"
    created: datetime  # UTC, aware
    sources: tuple[str, ...]
    state: str  # "ok" | "damaged"
    files: int
    bytes: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One file, directory, link or device of a snapshot.

    `type` "hardlink" names another entry of the same source (`target`, a path relative to the source root)
    holding the content; `digest` identifies the content (content_digest: equal digests, equal content); `extents` lists
    the (offset, length) data regions of a sparse file, whose chunks hold only those regions, in order.
    """

    source: str
    path: bytes
    type: str
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    size: int
    mtime_ns: int
    atime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    nlink: int
    rdev: int
    target: bytes | None
    xattrs: tuple[tuple[bytes, bytes], ...]
    digest: bytes | None
    chunks: tuple[bytes, ...]
    extents: tuple[tuple[int, int], ...] | None
    note: str | None

    @property
    def full_path(self) -> bytes:
        """The path on the protected machine (source root joined with `path`)."""
        root = self.source.encode("utf-8", "surrogateescape")
        return root if not self.path else root.rstrip(b"/") + b"/" + self.path


def content_digest(chunks: bytes | None) -> bytes | None:
    """Equal digests, equal content: the chunk digest itself for a one-chunk file, else BLAKE3 of the
    concatenated chunk digests; None for what has no content of its own (directories, links, devices).
    Derived, not stored: 32 incompressible bytes a row would otherwise carry in every manifest."""
    if chunks is None:
        return None
    if len(chunks) == DIGEST_SIZE:
        return chunks
    return blake3.blake3(chunks).digest()


def split_chunks(blob: bytes | None) -> tuple[bytes, ...]:
    if not blob:
        return ()
    if len(blob) == DIGEST_SIZE:
        return (blob,)
    return tuple(blob[i:i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE))


_new = object.__new__
_set = object.__setattr__


def entry_from_row(row: list, sources: list[str]) -> Entry:
    """Decode a row without the frozen dataclass's per-field setattr (a 100k-row manifest loads in ~0.15 s)."""
    (si, path, kind, mode, uid, gid, user, group, size, mtime, atime, ctime, ino, dev, nlink, rdev, target,
     xattrs, digest, chunks, extents, note) = row[:ROW_FIELDS]
    entry = _new(Entry)
    _set(entry, "__dict__", {
        "source": sources[si], "path": path, "type": TYPES[kind], "mode": mode, "uid": uid, "gid": gid,
        "user": user, "group": group, "size": size, "mtime_ns": mtime, "atime_ns": atime, "ctime_ns": ctime,
        "ino": ino, "dev": dev, "nlink": nlink, "rdev": rdev, "target": target,
        "xattrs": tuple(sorted(xattrs.items())) if xattrs else (), "digest": content_digest(chunks),
        "chunks": split_chunks(chunks),
        "extents": tuple((a, b) for a, b in extents) if extents is not None else None, "note": note})
    return entry


def path_key(path: bytes) -> tuple[bytes, ...]:
    """Manifest order: depth first, children of a directory sorted by name bytes, right after the directory."""
    return tuple(path.split(b"/")) if path else ()
