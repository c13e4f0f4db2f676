"""Every distinct version of a file or directory across a group's snapshots, read from the manifests alone
(the catalog indexes the same thing faster; this is the store's own answer and the rebuild path)."""

from __future__ import annotations

import os

import blake3
import msgpack

from appliance.protect.types import Version
from appliance.store import Store
from appliance.store.errors import ManifestDamaged
from appliance.store.model import (DIR, R_CHUNKS, R_MTIME, R_PATH, R_SIZE, R_SOURCE, R_TYPE, TYPES, content_digest,
                                   path_key)


def _locate(sources: tuple[str, ...], full: bytes) -> tuple[int, tuple] | None:
    for si, src in enumerate(sources):
        root = os.fsencode(src).rstrip(b"/")
        if full == root or full.startswith(root + b"/"):
            return si, path_key(full[len(root) + 1:])
    return None


def _find(store: Store, snapshot_id: str, si: int, key: tuple) -> tuple[list, bytes] | None:
    """The row at key and, for a directory, a digest of everything beneath it."""
    found = None
    tree = blake3.blake3()
    n = len(key)
    for row in store.rows(snapshot_id):
        if row[R_SOURCE] < si:
            continue
        rkey = path_key(row[R_PATH])
        if row[R_SOURCE] > si or (rkey[:n] != key and rkey > key):
            break
        if rkey == key:
            found = row
            if row[R_TYPE] != DIR:
                return row, content_digest(row[R_CHUNKS]) or b""
        elif found is not None and rkey[:n] == key:
            tree.update(msgpack.packb([row[R_PATH], row[R_TYPE], row[R_SIZE], row[R_MTIME], row[R_CHUNKS]]))
    return (found, tree.digest()) if found is not None else None


def versions(store: Store, group: str | None, path: bytes | str) -> list[Version]:
    """Oldest first; a version is listed at the first snapshot holding it (same type, size, mtime, content)."""
    full = os.fsencode(path).rstrip(b"/") or b"/"
    out: list[Version] = []
    last = None
    for info in store.snapshots(group):
        where = _locate(info.sources, full)
        if where is None:
            continue
        try:
            hit = _find(store, info.id, *where)
        except ManifestDamaged:
            continue
        if hit is None:
            last = None
            continue
        row, digest = hit
        ident = (row[R_TYPE], row[R_SIZE], row[R_MTIME], digest)
        if ident != last:
            out.append(Version(info.id, info.created, info.kind, full, TYPES[row[R_TYPE]], row[R_SIZE],
                               row[R_MTIME], digest or None))
            last = ident
    return out
