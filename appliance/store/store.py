"""The replica store: packs of chunks plus one manifest per snapshot, in one directory.

Layout (docs/store-format.md): config, lock, packs/XX/<name>.pack, snapshots/<group>/<id>.snap (+ <id>.damaged),
damaged-chunks, tmp/. Invariants and locking:
- One process opens a store (flock on `lock`, StoreLocked otherwise). Inside it, threads share the Store:
  `_mutex` guards the index, the pack list and the GC protocol.
- Packs are the truth; the in-memory index (digest -> pack, offset, length, flags) is rebuilt from the packs'
  own indexes at every open. Where two packs hold a digest, the newer pack (names sort by time) wins.
- Anything under tmp/ is an unfinished write: open() deletes it (a kill -9 leaves nothing else half written).
- Garbage collection never takes a chunk that a running write session may still name (see WriteSession, gc()).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import blake3
import msgpack
import zstandard

from appliance.store import manifest
from appliance.store.errors import (ChunkDamaged, ChunkMissing, ManifestDamaged, SnapshotNotFound, StoreError,
                                    StoreLocked, StoreNotFound)
from appliance.store.model import R_CHUNKS, DIGEST_SIZE, Entry, SnapshotInfo, entry_from_row
from appliance.store.durable import fsync_dir, write_file
from appliance.store.packs import (FLAG_ZSTD, PackFormatError, PackWriter, decompressor, pack_digest,
                                   read_pack_index, verified)

CONFIG_MAGIC = b"TLSTORE\x01"  # "Tapeline store", format 1
NOTES_MAGIC = b"TLDMGN\x00\x01"  # "Tapeline damage notes" (<id>.damaged), format 1
BAD_MAGIC = b"TLDMGC\x00\x01"  # "Tapeline damaged chunks" (damaged-chunks), format 1


def _read_list(path: Path, magic: bytes) -> list:
    """A msgpack list behind its magic; a missing or unreadable file reads as empty (it is advisory)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if not data.startswith(magic):
        return []
    try:
        value = msgpack.unpackb(data[len(magic):])
    except (ValueError, msgpack.UnpackException):
        return []
    return list(value) if isinstance(value, list) else []


def _write_list(tmp: Path, final: Path, magic: bytes, items: list) -> None:
    write_file(final, magic + msgpack.packb(items), tmp)

PACK_TARGET = 32 << 20  # tens of MiB: few files and fsyncs, cheap to rewrite in GC
PACK_MAX_BLOBS = 32768  # and a bounded index per pack (a pack of a million tiny files would hold it all in memory)
_local = threading.local()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _now_name() -> str:
    return f"{time.time_ns():016x}{secrets.token_hex(4)}"


def _pack_value(packno: int, offset: int, length: int, flags: int) -> int:
    return (packno << 64) | (offset << 32) | (length << 1) | (flags & 1)


class Store:
    def __init__(self, root: Path, lock_fd: int) -> None:
        self.root = root
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()  # not re-entrant: cheaper, taken twice per new chunk by a sync
        self._packs: list[str | None] = []  # packno -> pack name (None once collected)
        self._pack_fds: dict[int, int] = {}
        self._retired_fds: list[int] = []
        self._index: dict[bytes, int] = {}
        self._bad: set[bytes] = set()
        self._stored = 0  # bytes of chunks in the index
        self._garbage = 0  # bytes of file versions replaced or deleted since the last collection (an upper bound)
        self._sessions: set[WriteSession] = set()
        self._gc_late: set[bytes] | None = None
        self._infos: dict[str, SnapshotInfo] = {}
        self._paths: dict[str, Path] = {}
        self.open_warnings: list[str] = []

    # ---- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path, *, create: bool = False) -> Store:
        root = Path(root)
        config = root / "config"
        if not config.exists():
            if not create:
                raise StoreNotFound(root)
            for sub in ("packs", "snapshots", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            write_file(config, CONFIG_MAGIC + msgpack.packb({"format": 1, "created_ns": time.time_ns(),
                                                            "id": secrets.token_hex(16)}), root / "tmp" / "config.tmp")
        elif config.read_bytes()[:8] != CONFIG_MAGIC:
            raise StoreError(f"{root} is not a Tapeline replica store (bad config magic)", "check the path (store.path)")
        fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise StoreLocked(root, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        store = cls(root, fd)
        try:
            store._recover()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def identity(self) -> str:
        """The id the store was given when it was created (its config): what a catalog records as its store."""
        return msgpack.unpackb((self.root / "config").read_bytes()[len(CONFIG_MAGIC):])["id"]

    def _recover(self) -> None:
        """Drop unfinished writes, rebuild the index from the packs, load the snapshot headers."""
        tmp = self.root / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(exist_ok=True)
        for sub in ("packs", "snapshots"):
            (self.root / sub).mkdir(exist_ok=True)
        names = sorted(p for p in (self.root / "packs").glob("*/*.pack"))
        names.sort(key=lambda p: p.stem)
        for path in names:
            try:
                rows = read_pack_index(path)
            except (PackFormatError, OSError, ValueError) as exc:
                self.open_warnings.append(f"pack {path.name} skipped: {exc}")
                continue
            packno = len(self._packs)
            self._packs.append(path.stem)
            for digest, offset, length, _raw, flags in rows:
                self._index[digest] = _pack_value(packno, offset, length, flags)
                self._stored += length
        self._bad = set(_read_list(self.root / "damaged-chunks", BAD_MAGIC))
        for snap in (self.root / "snapshots").glob("*/*.snap"):
            self._load_info(snap)

    def close(self) -> None:
        with self._mutex:
            for fd in [*self._pack_fds.values(), *self._retired_fds]:
                os.close(fd)
            self._pack_fds.clear()
            self._retired_fds.clear()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- snapshots -----------------------------------------------------------------------------------------
    def _load_info(self, path: Path) -> SnapshotInfo:
        group = unquote(path.parent.name)
        sid = path.stem
        damaged = path.with_suffix(".damaged")
        notes: list[str] = _read_list(damaged, NOTES_MAGIC)
        try:
            h = manifest.read_header(path)
            info = SnapshotInfo(
                id=sid, group=h["group"], kind=h["kind"],
                created=EPOCH + timedelta(microseconds=h["created_ns"] // 1000), sources=tuple(h["sources"]),
                state="damaged" if notes else "ok", files=h.get("files", 0), bytes=h.get("bytes", 0),
                warnings=tuple(h.get("warnings", ())) + tuple(notes))
        except (manifest.ManifestFormatError, OSError, KeyError, TypeError) as exc:
            created = datetime.strptime(sid.split("-")[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
            info = SnapshotInfo(id=sid, group=group, kind="sync", created=created, sources=(), state="damaged",
                                files=0, bytes=0, warnings=(str(ManifestDamaged(sid, str(exc))), *notes))
        self._infos[sid] = info
        self._paths[sid] = path
        return info

    def snapshots(self, group: str | None = None) -> list[SnapshotInfo]:
        """Oldest first."""
        with self._mutex:
            infos = [i for i in self._infos.values() if group is None or i.group == group]
        return sorted(infos, key=lambda i: (i.created, i.id))

    def snapshot(self, snapshot_id: str) -> SnapshotInfo:
        try:
            return self._infos[snapshot_id]
        except KeyError:
            raise SnapshotNotFound(snapshot_id) from None

    def header(self, snapshot_id: str) -> dict:
        """The manifest header (group, kind, created_ns, sources, source_files, files, bytes, warnings, rows)."""
        self.snapshot(snapshot_id)
        try:
            return manifest.read_header(self._paths[snapshot_id])
        except (manifest.ManifestFormatError, OSError) as exc:
            raise ManifestDamaged(snapshot_id, str(exc)) from exc

    def rows(self, snapshot_id: str) -> Iterator[list]:
        """Raw manifest rows (model.py layout); ManifestDamaged on damage."""
        self.snapshot(snapshot_id)
        try:
            yield from manifest.read_rows(self._paths[snapshot_id])
        except (manifest.ManifestFormatError, OSError) as exc:
            raise ManifestDamaged(snapshot_id, str(exc)) from exc

    def entries(self, snapshot_id: str) -> Iterator[Entry]:
        """Manifest entries in manifest order (by source, then depth first with names sorted as bytes)."""
        sources = list(self.snapshot(snapshot_id).sources)
        for row in self.rows(snapshot_id):
            yield entry_from_row(row, sources)

    def verify_manifest(self, snapshot_id: str) -> str | None:
        try:
            manifest.verify(self._paths[snapshot_id])
            return None
        except (manifest.ManifestFormatError, OSError) as exc:
            return str(ManifestDamaged(snapshot_id, str(exc)))

    def mark_damaged(self, snapshot_id: str, reasons: list[str]) -> SnapshotInfo:
        path = self._paths[snapshot_id]
        damaged = path.with_suffix(".damaged")
        old = _read_list(damaged, NOTES_MAGIC)
        notes = old + [r for r in reasons if r not in old]
        _write_list(self.root / "tmp" / f"{snapshot_id}.damaged.tmp", damaged, NOTES_MAGIC, notes)
        with self._mutex:
            return self._load_info(path)

    def clear_damaged(self, snapshot_id: str) -> SnapshotInfo:
        """A full check found the snapshot whole again (its chunks stored anew, its manifest put back): drop its
        damage notes. A manifest that still does not read keeps the snapshot damaged all the same."""
        path = self._paths[snapshot_id]
        path.with_suffix(".damaged").unlink(missing_ok=True)
        fsync_dir(path.parent)
        with self._mutex:
            return self._load_info(path)

    def delete_snapshot(self, snapshot_id: str) -> None:
        with self._mutex:
            if any(s.base == snapshot_id for s in self._sessions):
                raise StoreError(f"recovery point {snapshot_id} is the base of a running sync", "retry after it")
            path = self._paths.pop(snapshot_id)
            self._infos.pop(snapshot_id)
        path.unlink()
        path.with_suffix(".damaged").unlink(missing_ok=True)
        fsync_dir(path.parent)

    # ---- chunks --------------------------------------------------------------------------------------------
    def lacks(self, blobs: Iterable[bytes]) -> set[bytes]:
        """The digests of these chunk lists (manifest rows' R_CHUNKS) that the index does not hold. Lock-free (a
        dict lookup is atomic): a sync asks it for its unchanged rows, whose chunks its base keeps from collection."""
        index = self._index
        lost = set()
        for blob in blobs:
            if len(blob) == DIGEST_SIZE:
                if blob not in index:
                    lost.add(blob)
            else:
                lost.update(d for d in (blob[i:i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE))
                            if d not in index)
        return lost

    def verify_pack(self, name: str, rows: list[list], written: bytes | None = None) -> set[bytes]:
        """Read a sealed pack back; the digests of its blobs that did not reach the file intact.

        With `written` (the checksum of the pack as its writer produced it, PackWriter.digest), a file that sums
        to it is whole: every blob is the exact bytes stored for its chunk, whose digest was computed from the
        source (docs/store-format.md, "Check"). Without it, or when it differs, each blob is decompressed and
        hashed, which names the bad ones; a pack whose damage is outside its blobs (magic, index, footer), or
        cannot be placed, counts every blob as bad (they are stored again from the source)."""
        path = self.root / "packs" / name[:2] / f"{name}.pack"
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # Out of the page cache before the read (the sealed pack is fsynced: its pages are clean), so what is read
            # back is the file on the disk, not the pages just written; and after it: a pack is written once and
            # read rarely (docs/store-format.md, "Page cache").
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            buf = getattr(_local, "verify_buffer", None)
            if buf is None or len(buf) < size:  # reused: a fresh 32 MiB buffer per pack costs page faults
                buf = _local.verify_buffer = bytearray(size)
            view = memoryview(buf)[:f.readinto(memoryview(buf)[:size])]
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        if written is not None and pack_digest(view) == written:
            return set()
        bad = self._bad_blobs(view, rows)
        if written is not None and not bad:
            try:
                whole = read_pack_index(path) == rows
            except PackFormatError:
                whole = False
            if not whole:
                bad = {row[0] for row in rows}
        return bad

    @staticmethod
    def _bad_blobs(view: memoryview, rows: list[list]) -> set[bytes]:
        """The blobs of a pack read into `view` that do not decompress and hash to their digest."""
        dctx = decompressor()
        blobs = [(digest, view[offset:offset + length], flags, length) for digest, offset, length, _raw, flags in rows]
        bad = {digest for digest, blob, _, length in blobs if len(blob) != length}  # the file is short
        packed = [(digest, blob) for digest, blob, flags, _ in blobs if flags & FLAG_ZSTD and digest not in bad]
        try:
            # One call for every compressed blob: it holds the GIL once, not once per blob, so the walk this runs
            # beside is not held up (many small blobs per pack).
            chunks = list(zip((d for d, _ in packed), dctx.multi_decompress_to_buffer([b for _, b in packed])
                              if packed else ()))  # (an empty list crashes it)
        except zstandard.ZstdError:  # at least one does not decompress: find which, one by one
            chunks = []
            for digest, blob in packed:
                try:
                    chunks.append((digest, dctx.decompress(blob)))
                except zstandard.ZstdError:
                    bad.add(digest)
        chunks += [(digest, blob) for digest, blob, flags, _ in blobs if not flags & FLAG_ZSTD and digest not in bad]
        hash_of = blake3.blake3
        bad.update(digest for digest, chunk in chunks if hash_of(chunk).digest() != digest)
        return bad

    def note_replaced(self, nbytes: int) -> None:
        """A sync replaced or deleted file versions of this size: garbage once no snapshot holds them."""
        with self._mutex:
            self._garbage += nbytes

    def worth_collecting(self, share: float, floor: int) -> bool:
        """Whether the versions replaced since the last collection may hold `share` of the store (or `floor`
        bytes). Collection reads every manifest: a prune after each sync runs it only when it may pay."""
        with self._mutex:
            return self._garbage >= max(floor, int(self._stored * share))

    def has_chunk(self, digest: bytes) -> bool:
        with self._mutex:
            return digest in self._index and digest not in self._bad

    def chunk_count(self) -> int:
        return len(self._index)

    def _locate(self, digest: bytes) -> tuple[int, int, int, int]:
        value = self._index.get(digest)
        if value is None:
            raise ChunkMissing(digest)
        return value >> 64, (value >> 32) & 0xFFFFFFFF, (value >> 1) & 0x7FFFFFFF, value & 1

    def _pack_fd(self, packno: int) -> int:
        fd = self._pack_fds.get(packno)
        if fd is None:
            name = self._packs[packno]
            fd = self._pack_fds[packno] = os.open(self.root / "packs" / name[:2] / f"{name}.pack",
                                                  os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def read_blob(self, digest: bytes) -> tuple[bytes, int]:
        """The stored (possibly compressed) bytes and flags, unverified."""
        with self._mutex:
            packno, offset, length, flags = self._locate(digest)
            fd = self._pack_fd(packno)
        return os.pread(fd, length, offset), flags

    def read_chunk(self, digest: bytes) -> bytes:
        """The chunk's bytes, verified against its digest (ChunkMissing / ChunkDamaged otherwise)."""
        if digest in self._bad:
            raise ChunkDamaged(digest, "the damaged-chunks list")
        blob, flags = self.read_blob(digest)
        return self.verify_chunk(digest, blob, flags)

    def locate_chunk(self, digest: bytes) -> tuple[int, int, int, int]:
        """(pack descriptor, offset, length, flags) of a chunk's stored bytes, for a reader that maps the packs (a
        restore); the descriptor stays open until the store closes. `verify_chunk` turns the bytes into the chunk."""
        if digest in self._bad:
            raise ChunkDamaged(digest, "the damaged-chunks list")
        # Lock-free while the pack is open already (dict reads are atomic; its writers hold the mutex, and a
        # collected pack's descriptor stays open until close): a restore's walk locates every chunk.
        value = self._index.get(digest)
        fd = self._pack_fds.get(value >> 64) if value is not None else None
        if fd is None:
            with self._mutex:
                packno, offset, length, flags = self._locate(digest)
                return self._pack_fd(packno), offset, length, flags
        return fd, (value >> 32) & 0xFFFFFFFF, (value >> 1) & 0x7FFFFFFF, value & 1

    def chunk_places(self, blob: bytes) -> list[tuple[int, int, int, int, bytes]]:
        """`locate_chunk` for each chunk of a manifest row's chunk list, with its digest: (pack descriptor, offset,
        length, flags, digest). One loop for the lot: a restore's or a tape set's walk locates every chunk."""
        index, fds, bad = self._index, self._pack_fds, self._bad
        out = []
        for at in range(0, len(blob), DIGEST_SIZE):
            digest = blob[at:at + DIGEST_SIZE]
            value = index.get(digest)
            fd = fds.get(value >> 64) if value is not None else None
            if fd is None or digest in bad:
                out.append((*self.locate_chunk(digest), digest))
            else:
                out.append((fd, (value >> 32) & 0xFFFFFFFF, (value >> 1) & 0x7FFFFFFF, value & 1, digest))
        return out

    def verify_chunk(self, digest: bytes, blob: bytes | memoryview, flags: int) -> bytes | memoryview:
        """The chunk from its stored bytes, verified against its digest (ChunkDamaged otherwise)."""
        return verified(digest, blob, flags, lambda: self.pack_of(digest))

    def pack_of(self, digest: bytes) -> str:
        with self._mutex:
            return f"pack {self._packs[self._locate(digest)[0]]}"

    def set_damaged_chunks(self, add: set[bytes], remove: set[bytes]) -> None:
        with self._mutex:
            self._bad = (self._bad | add) - remove
            _write_list(self.root / "tmp" / "damaged-chunks.tmp", self.root / "damaged-chunks", BAD_MAGIC,
                        sorted(self._bad))

    def damaged_chunks(self) -> set[bytes]:
        return set(self._bad)

    def session(self, base: str | None = None) -> WriteSession:
        return WriteSession(self, base)

    def _seal(self, writer: PackWriter, session: WriteSession | None) -> None:
        rows = writer.finish()
        with self._mutex:
            packno = len(self._packs)
            self._packs.append(writer.name)
            if session is not None:
                session.packs.add(packno)
            for digest, offset, length, _raw, flags in rows:
                self._index[digest] = _pack_value(packno, offset, length, flags)
                self._stored += length
            if session is not None:  # in the index now: no longer pending (never absent from both)
                session.pending.difference_update(row[0] for row in rows)
            healed = {row[0] for row in rows} & self._bad
        if healed:  # a fresh copy of a damaged chunk: the newer pack wins from now on
            self.set_damaged_chunks(set(), healed)

    # ---- garbage collection --------------------------------------------------------------------------------
    def gc(self, cancel: threading.Event | None = None,
           progress: Callable[[int, int | None, str], None] | None = None) -> dict:
        """Delete or rewrite packs whose chunks no manifest (and no running session) names.

        Protocol: (1) under the mutex, note the candidate packs (all but those of running sessions) and start
        collecting the chunks sessions use from now on; (2) read every manifest; (3) under the mutex, add what
        running or just-finished sessions used, and drop the rest of the candidates' chunks from the index, so a
        later dedup lookup misses and stores a fresh copy; (4) delete dead packs, rewrite mostly-dead ones.
        """
        with self._mutex:
            self._gc_late = set()
            busy = set().union(*(s.packs for s in self._sessions)) if self._sessions else set()
            candidates = {n for n, name in enumerate(self._packs) if name is not None and n not in busy}
            garbage = self._garbage  # what syncs replace from now on is for the next collection
            snapshot_ids = list(self._infos)
        try:
            referenced: set[bytes] = set()
            for i, sid in enumerate(snapshot_ids):
                if cancel is not None and cancel.is_set():
                    return {"cancelled": True}
                if progress:
                    progress(i, len(snapshot_ids), f"marking chunks of {sid}")
                try:
                    for row in self.rows(sid):
                        blob = row[R_CHUNKS]
                        if blob:
                            referenced.update(blob[j:j + DIGEST_SIZE] for j in range(0, len(blob), DIGEST_SIZE))
                except (ManifestDamaged, SnapshotNotFound):
                    return {"skipped": f"manifest {sid} unreadable: garbage collection skipped to keep its chunks"}
            with self._mutex:
                referenced |= self._gc_late
                for s in self._sessions:
                    referenced |= s.used
                live: dict[int, list[bytes]] = {n: [] for n in candidates}
                dead_bytes: dict[int, int] = dict.fromkeys(candidates, 0)
                total_bytes: dict[int, int] = dict.fromkeys(candidates, 0)
                for digest, value in list(self._index.items()):
                    packno = value >> 64
                    if packno not in candidates:
                        continue
                    length = (value >> 1) & 0x7FFFFFFF
                    total_bytes[packno] += length
                    if digest in referenced:
                        live[packno].append(digest)
                    else:
                        dead_bytes[packno] += length
                        del self._index[digest]
                        self._stored -= length
                self._garbage -= garbage
        finally:
            with self._mutex:
                self._gc_late = None
        return self._sweep(candidates, live, dead_bytes, total_bytes)

    def _sweep(self, candidates: set[int], live: dict[int, list[bytes]], dead_bytes: dict[int, int],
               total_bytes: dict[int, int]) -> dict:
        deleted = rewritten = freed = 0
        for packno in sorted(candidates):
            if not dead_bytes[packno]:
                continue
            if live[packno] and dead_bytes[packno] < total_bytes[packno] // 4:
                continue  # mostly live: rewriting would cost more than the space it frees
            if live[packno]:
                writer = PackWriter(self.root / "tmp", self.root / "packs", _now_name())
                try:
                    for digest in live[packno]:
                        blob, flags = self.read_blob(digest)
                        writer.add(digest, blob, flags, 0)
                    self._seal(writer, None)  # the copy is in place before the original goes
                except BaseException:
                    writer.abort()
                    raise
                rewritten += 1
            with self._mutex:
                name = self._packs[packno]
                self._packs[packno] = None
                fd = self._pack_fds.pop(packno, None)
                if fd is not None:  # a reader may hold it now: close it with the store
                    self._retired_fds.append(fd)
            (self.root / "packs" / name[:2] / f"{name}.pack").unlink()
            deleted += 1
            freed += dead_bytes[packno]
        return {"packs_deleted": deleted, "packs_rewritten": rewritten, "bytes_freed": freed}

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


class WriteSession:
    """One writer's packs and the chunks it relies on, registered with the store until commit or abort.

    `used` holds every digest the session found already stored (a dedup hit) and `packs` the packs it sealed;
    gc() keeps both. `base` (the snapshot whose rows the session copies) cannot be deleted meanwhile.
    """

    def __init__(self, store: Store, base: str | None) -> None:
        self.store = store
        self.base = base
        self.used: set[bytes] = set()
        self.packs: set[int] = set()
        self.pending: set[bytes] = set()  # written to a pack not sealed yet
        self.stored_bytes = 0
        self._writer: PackWriter | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="packs")
        self._sealing: list[Future] = []
        # Each sealed pack is read back and hashed against what its writer produced while the sync goes on: the
        # check after a sync then needs no second pass over what it wrote.
        self._verifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._verifying: list[tuple[Future, list]] = []
        self.verified_chunks = 0
        with store._mutex:
            store._sessions.add(self)

    def has(self, digest: bytes) -> bool:
        if digest in self.pending:
            return True
        store = self.store
        with store._mutex:
            if digest in store._index and digest not in store._bad:
                self.used.add(digest)
                return True
        return False

    def add(self, digest: bytes, blob: bytes | memoryview, flags: int, raw_length: int) -> None:
        if self._writer is None:
            self._writer = PackWriter(self.store.root / "tmp", self.store.root / "packs", _now_name(), self._io)
        self._writer.add(digest, blob, flags, raw_length)
        self.pending.add(digest)
        self.stored_bytes += len(blob)
        if self._writer.offset >= PACK_TARGET or len(self._writer.rows) >= PACK_MAX_BLOBS:
            self._seal_next()
        while self._sealing and self._sealing[0].done():
            self._sealing.pop(0).result()

    def _seal_next(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._sealing.append(self._io.submit(self._seal, writer))

    def _seal(self, writer: PackWriter) -> None:
        try:
            self.store._seal(writer, self)
        except BaseException:
            writer.abort()
            raise
        self.verified_chunks += len(writer.rows)
        check = self._verifier.submit(self.store.verify_pack, writer.name, writer.rows, writer.digest)
        self._verifying.append((check, writer.rows))

    def bad_chunks(self) -> set[bytes]:
        """After flush(): the chunks this session stored that did not read back right."""
        bad: set[bytes] = set()
        for done, rows in self._verifying:
            try:
                bad |= done.result()
            except OSError:  # the pack vanished or does not read: every chunk of it is suspect
                bad |= {row[0] for row in rows}
        return bad

    def flush(self) -> None:
        """Seal the open pack and wait until every pack of the session is in place."""
        self._seal_next()
        sealing, self._sealing = self._sealing, []
        for done in sealing:
            done.result()

    def commit(self, group: str, kind: str, created: datetime, sources: list[str], rows: Iterable[list],
               header_extra: Callable[[], dict]) -> SnapshotInfo:
        """Write the manifest from `rows` (model rows in manifest order, streamed), seal the last pack, then
        rename the manifest into place. `header_extra()` gives files, bytes, warnings once the rows are out."""
        store = self.store
        created = created.astimezone(UTC)
        sid = f"{created:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"
        final = store.root / "snapshots" / quote(group, safe="") / f"{sid}.snap"
        created_ns = (created - EPOCH) // timedelta(microseconds=1) * 1000

        def header() -> dict:
            return {"group": group, "kind": kind, "created_ns": created_ns, "sources": sources, **header_extra()}

        def rows_then_seal() -> Iterator[list]:
            yield from rows
            self._seal_next()  # the last pack is written and fsynced while the manifest's body is

        manifest.write_manifest(store.root / "tmp" / f"{sid}.snap.tmp", final, header, rows_then_seal(), self.flush)
        with store._mutex:
            info = store._load_info(final)
        return info

    def close(self) -> None:
        """End the session (after commit, or to abandon it: the open pack is dropped)."""
        for sealing in self._sealing:
            try:
                sealing.result()
            except Exception:  # noqa: S110 (its error was reported by the commit that failed)
                pass
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._io.shutdown(wait=True)
        self._verifier.shutdown(wait=True)
        store = self.store
        with store._mutex:
            store._sessions.discard(self)
            if store._gc_late is not None:
                store._gc_late |= self.used
