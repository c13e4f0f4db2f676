"""Consistency check: the chunks a snapshot names exist and hash right; damage is repaired or reported.

A quick check (full=False) of a snapshot: every chunk it names must be in the index, and the chunks it names that
the snapshot before it did not are read back and hashed. Right after a sync (`after`), the sync did that as it went
(SyncResult.verified: each pack it sealed read back and hashed, each chunk an unchanged file names looked up), so
the check costs what the sync changed, not what the snapshot holds: it repairs or reports what the sync found, and
its drift counts the files the sync read that changed since (the sync counts them while its last writes reach
the disk: SyncResult.drift).
full=True re-reads and re-hashes every chunk of every snapshot of the group, and every manifest.
A bad chunk is repaired when a source file recorded with it still has the same size and mtime and still yields
that chunk: a fresh copy goes to a new pack (the newer pack wins in the index). Otherwise the chunk joins the
store's damaged list (a later sync stores it again if the content comes back), and every snapshot naming it, in
any group, is marked damaged with an alert.
A full check that finds a damaged snapshot whole again (its manifest reads and checks, every chunk it names hashes
right: the content came back and a sync stored it anew, or the manifest was put back) clears its damage notes.
Alert messages name the cause only; the caller says which recovery point (it knows the catalog's point ids).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import blake3

from appliance.protect.pipeline import Pipeline, compress
from appliance.protect.read_worker import count_drift
from appliance.protect.types import NO_PROGRESS, Alert, CheckResult, GroupSpec, Progress, SyncResult
from appliance.store import Store
from appliance.store.errors import ChunkDamaged, ChunkMissing, ManifestDamaged
from appliance.store.model import (DIGEST_SIZE, FILE, R_CHUNKS, R_EXTENTS, R_MTIME, R_PATH, R_SIZE, R_SOURCE,
                                   R_TYPE)
from appliance.text import plural


def _chunks(store: Store, sid: str) -> set[bytes]:
    out: set[bytes] = set()
    for row in store.rows(sid):
        blob = row[R_CHUNKS]
        if blob:
            out.update(blob[i:i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE))
    return out


def _verify(store: Store, digests: list[bytes], progress: Progress, cancel) -> set[bytes]:
    def one(digest: bytes) -> bytes | None:
        if cancel is not None and cancel.is_set():
            return None
        try:
            store.read_chunk(digest)
        except (ChunkDamaged, ChunkMissing, OSError):
            return digest
        return None

    bad = set()
    with ThreadPoolExecutor(2) as pool:
        for n, result in enumerate(pool.map(one, digests, chunksize=64)):
            if result is not None:
                bad.add(result)
            if n % 1024 == 0:
                progress(n, len(digests), "verifying chunks")
    return bad


def _repair(store: Store, sid: str, bad: set[bytes]) -> set[bytes]:
    """Re-read source files recorded with a bad chunk; returns the chunks stored again."""
    info = store.snapshot(sid)
    fixed: set[bytes] = set()
    session = store.session()
    pipe = Pipeline(lambda d: False)
    try:
        for row in store.rows(sid):
            blob = row[R_CHUNKS]
            if row[R_TYPE] != FILE or not blob or row[R_EXTENTS] is not None:
                continue
            mine = {blob[i:i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE)} & (bad - fixed)
            if not mine:
                continue
            root = os.fsencode(info.sources[row[R_SOURCE]]).rstrip(b"/")
            path = root + b"/" + row[R_PATH]
            try:
                st = os.lstat(path)
                if st.st_size != row[R_SIZE] or st.st_mtime_ns != row[R_MTIME]:
                    continue  # the source has moved on: its content may differ
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            pieces, _ = pipe.cut(data, True) if data else ([], 0)
            for piece in pieces:
                digest = blake3.blake3(piece).digest()
                if digest in mine and digest not in fixed:
                    stored, flags = compress(piece)
                    session.add(digest, stored, flags, len(piece))
                    fixed.add(digest)
        session.flush()
    finally:
        session.close()
        pipe.close()
    if fixed:
        store.set_damaged_chunks(set(), fixed)
    return fixed


def _mark(store: Store, bad: set[bytes]) -> tuple[list[str], list[Alert]]:
    damaged, alerts = [], []
    for info in store.snapshots():
        try:
            hits = []
            for row in store.rows(info.id):
                blob = row[R_CHUNKS]
                if blob and any(blob[i:i + DIGEST_SIZE] in bad for i in range(0, len(blob), DIGEST_SIZE)):
                    hits.append(os.fsdecode(row[R_PATH]))
        except ManifestDamaged:
            continue
        if hits:
            note = (f"{plural(len(hits), 'file')} cannot be restored whole (damaged chunks), e.g. {hits[0]}")
            store.mark_damaged(info.id, [note])
            damaged.append(info.id)
            alerts.append(Alert(info.id, note,
                                f"put the files back in the source and run `tapeline sync {info.group}`, then "
                                f"`tapeline check {info.group} --full` to clear this; or restore them from another "
                                f"recovery point"))
    return damaged, alerts


def _why(text: str) -> str:
    """The cause inside a ManifestDamaged message (which may wrap another one), without its fix."""
    marker = "has a damaged manifest ("
    while marker in text:
        text = text.split(marker, 1)[1].rsplit("): ", 1)[0]
    return text


def _manifest_alert(store: Store, sid: str, text: str) -> Alert:
    cause = f"damaged manifest ({_why(text)})"
    store.mark_damaged(sid, [cause])
    group = store.snapshot(sid).group
    return Alert(sid, cause, f"restore from another recovery point; put the manifest back from a copy and run "
                             f"`tapeline check {group} --full` to clear this (the next sync writes a new one)")


def _drift(store: Store, sid: str) -> int:
    """Entries whose source metadata differs now from what the snapshot recorded (changed since)."""
    info = store.snapshot(sid)
    roots = [os.fsencode(s).rstrip(b"/") for s in info.sources]
    n = 0
    for row in store.rows(sid):
        path = roots[row[R_SOURCE]] + (b"/" + row[R_PATH] if row[R_PATH] else b"")
        try:
            st = os.lstat(path)
        except OSError:
            n += 1
            continue
        if row[R_TYPE] == FILE and (st.st_size != row[R_SIZE] or st.st_mtime_ns != row[R_MTIME]):
            n += 1
    return n


def drift_of(changes) -> int:
    """The files a sync read whose size or mtime differ now from what it recorded (or that are gone)."""
    return count_drift(drift_files(changes))


def drift_files(changes) -> Iterator[tuple[bytes, int, int]]:
    """(path, size, mtime_ns) of each file a sync read, as it recorded them."""
    roots: dict[str, bytes] = {}
    for source, path, _what, kind, size, mtime_ns in changes.brief():
        if kind != "file":
            continue
        root = roots.get(source)
        if root is None:
            root = roots[source] = os.fsencode(source).rstrip(b"/")
        yield (root + b"/" + path if path else root), size, mtime_ns


def _settle(store: Store, readable: list[str], bad: set[bytes]) -> tuple[set[bytes], list[str], list[Alert]]:
    """Repair bad chunks from the sources of `readable` snapshots (newest first); mark what stays bad."""
    repaired: set[bytes] = set()
    damaged: list[str] = []
    alerts: list[Alert] = []
    if bad:
        for sid in reversed(readable):
            repaired |= _repair(store, sid, bad - repaired)
        remaining = bad - repaired
        if remaining:
            store.set_damaged_chunks(remaining, set())
            damaged, alerts = _mark(store, remaining)
    return repaired, damaged, alerts


def check(store: Store, group: GroupSpec, snapshot_id: str | None = None, *, full: bool = False,
          progress: Progress = NO_PROGRESS, cancel: threading.Event | None = None,
          after: SyncResult | None = None) -> CheckResult:
    if after is not None and after.snapshot is not None and after.verified is not None and not full:
        sid = after.snapshot.id
        repaired, damaged, alerts = _settle(store, [sid], set(after.verified.bad))
        state = "damaged" if damaged else "repaired" if repaired else "ok"
        return CheckResult(state, (sid,), after.verified.chunks_checked, len(repaired), tuple(damaged),
                           tuple(alerts), drift_of(after.changes) if after.drift is None else after.drift)
    snaps = store.snapshots(group.name)
    if not snaps:
        return CheckResult("ok", (), 0, 0, (), (), 0, "no snapshot to check yet")
    if snapshot_id is None:
        snapshot_id = snaps[-1].id
    alerts: list[Alert] = []
    damaged: list[str] = []
    targets = [s.id for s in snaps] if full else [snapshot_id]
    wanted: set[bytes] = set()
    to_hash: set[bytes] = set()
    readable = []
    for sid in targets:
        problem = store.verify_manifest(sid) if full else None
        try:
            if problem:
                raise ManifestDamaged(sid, _why(problem))
            chunks = _chunks(store, sid)
        except ManifestDamaged as exc:
            damaged.append(sid)
            alerts.append(_manifest_alert(store, sid, str(exc)))
            continue
        readable.append(sid)
        wanted |= chunks
    if not full and readable:
        earlier = [s.id for s in snaps if s.id < snapshot_id]
        known: set[bytes] = set()
        if earlier:
            try:
                known = _chunks(store, earlier[-1])
            except ManifestDamaged:
                known = set()
        to_hash = wanted - known
        missing = {d for d in wanted - to_hash if not store.has_chunk(d)}
    else:
        to_hash, missing = wanted, set()
    bad = missing | _verify(store, sorted(to_hash), progress, cancel)
    if cancel is not None and cancel.is_set():
        return CheckResult("failed", tuple(readable), len(to_hash), 0, tuple(damaged), tuple(alerts), 0,
                           "cancelled")
    repaired, more, more_alerts = _settle(store, readable, bad)
    damaged += [d for d in more if d not in damaged]
    alerts += more_alerts
    if full:
        for sid in readable:
            if sid not in damaged and store.snapshot(sid).state == "damaged":
                store.clear_damaged(sid)
    drift = _drift(store, snapshot_id) if snapshot_id in readable else 0
    state = "damaged" if damaged else "repaired" if repaired else "ok"
    return CheckResult(state, tuple(readable), len(to_hash) + len(wanted - to_hash), len(repaired),
                       tuple(damaged), tuple(alerts), drift)
