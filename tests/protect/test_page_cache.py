"""A sync and a restore leave the store's packs out of the page cache (docs/store-format.md, "Page cache"): packs
are written once and read rarely, and a backup must not crowd the server's working set out of memory."""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from appliance.protect import restore_files, restore_worker
from appliance.protect.files import restore, sync
from appliance.store import Store
from tests.protect.conftest import assert_same_tree, group_of, restored_root, tree_state

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def cached_pages(path: Path) -> int:
    """How many pages of the file are in the page cache (mincore(2) over a mapping of it)."""
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return sum(v & 1 for v in vec)
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


@pytest.fixture
def disk():
    """A directory on a disk, for the store and the trees: /tmp may be a tmpfs, whose files are their pages."""
    path = Path(tempfile.mkdtemp(prefix="tapeline-page-cache-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def store(disk):
    s = Store.open(disk / "store", create=True)
    yield s
    s.close()


@pytest.fixture
def src(disk):
    (disk / "src").mkdir()
    return disk / "src"


def _packs(store) -> list[Path]:
    return sorted((store.root / "packs").rglob("*.pack"))


@pytest.fixture
def synced(store, src):
    """A tree of small files (read by the sync's readers) and big ones (cut and compressed on its own thread)."""
    for d in range(4):
        (src / f"d{d}").mkdir()
        for f in range(40):
            (src / f"d{d}" / f"f{f}.txt").write_bytes(f"file {d}/{f}\n".encode() * (50 * f + 1))
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    (src / "big.txt").write_bytes(b"".join(b"line %d of a big text\n" % i for i in range(200_000)))
    res = sync(store, group_of(src))
    assert res.state == "completed", res.warnings
    return res


def test_a_sync_leaves_the_packs_it_wrote_out_of_the_page_cache(store, synced):
    packs = _packs(store)
    assert packs and sum(p.stat().st_size for p in packs) > 3 << 20
    assert [cached_pages(p) for p in packs] == [0] * len(packs)


@pytest.mark.parametrize("in_workers", [False, True], ids=["inline", "workers"])
def test_a_restore_reads_the_packs_and_leaves_them_out_of_the_page_cache(store, src, disk, synced, monkeypatch,
                                                                         in_workers):
    if in_workers:
        monkeypatch.setattr(restore_files, "INLINE_FILES", 0)
    for pack in _packs(store):  # as a pack is when a restore starts after others read it: in the page cache
        with open(pack, "rb") as f:
            f.read()
        assert cached_pages(pack) > 0
    res = restore(store, synced.snapshot.id, None, disk / "out")
    assert res.state == "completed", res.warnings
    assert_same_tree(tree_state(src), restored_root(disk / "out", src))
    assert [cached_pages(p) for p in _packs(store)] == [0] * len(_packs(store))


@pytest.mark.parametrize("size", [8 << 20, (9 << 20) + 123], ids=["whole-buffer", "ragged-end"])
@pytest.mark.parametrize("in_workers", [False, True], ids=["inline", "workers"])
def test_a_big_file_is_restored_whole_past_the_page_cache(store, src, disk, monkeypatch, size, in_workers):
    if in_workers:
        monkeypatch.setattr(restore_files, "INLINE_FILES", 0)
    (src / "big.bin").write_bytes(os.urandom(size))
    (src / "small.txt").write_bytes(b"small\n")
    res = sync(store, group_of(src))
    restored = restore(store, res.snapshot.id, None, disk / "out")
    assert restored.state == "completed", restored.warnings
    big = restored_root(disk / "out", src) / "big.bin"
    assert cached_pages(big) <= 1  # the end that fills no block went through the page cache
    assert_same_tree(tree_state(src), restored_root(disk / "out", src))


@pytest.mark.parametrize("in_workers", [False, True], ids=["inline", "workers"])
def test_restored_small_files_are_written_back_in_rounds_and_leave_the_page_cache(store, src, disk, monkeypatch,
                                                                                  in_workers):
    """Each writer keeps the files it wrote open until RECYCLE_FILES of them are written back together and dropped:
    only the last round of each writer, not yet full when the restore ends, stays cached."""
    if in_workers:  # the workers' own rounds, at their default size
        monkeypatch.setattr(restore_files, "INLINE_FILES", 0)
        monkeypatch.setattr(restore_files, "WORKERS", 2)
        files, writers = 2000, 2
    else:  # the inline writer's rounds are made small enough to complete within what it writes
        monkeypatch.setattr(restore_worker, "RECYCLE_FILES", 16)
        files, writers = 200, 1
    for d in range(10):
        (src / f"d{d}").mkdir()
        for f in range(files // 10):
            (src / f"d{d}" / f"f{f}.txt").write_bytes(f"file {d}/{f}\n".encode() * (100 + f))
    res = sync(store, group_of(src))
    restored = restore(store, res.snapshot.id, None, disk / "out")
    assert restored.state == "completed", restored.warnings
    out = restored_root(disk / "out", src)
    cached = [p for p in out.rglob("*.txt") if cached_pages(p)]  # before the comparison reads them back in
    assert len(cached) < writers * restore_worker.RECYCLE_FILES < files
    assert_same_tree(tree_state(src), out)


def test_a_restore_asks_for_pack_ranges_ahead_of_reading_them(store, src, disk, synced, monkeypatch):
    """Packs are not in the page cache when a restore starts: each read must find its range already asked of the
    disk (posix_fadvise WILLNEED) instead of waiting for it, for small files (the window) and big ones (the reader
    threads) alike."""
    monkeypatch.setattr(restore_files, "INLINE_FILES", 10_000)  # the restore's own writer: its calls are seen here
    monkeypatch.setattr(restore_files, "INLINE_BYTES", 1 << 30)
    monkeypatch.setattr(restore_worker, "PREFETCH", 64 << 10)  # a pack is then asked for piece by piece
    asked: dict[int, list[tuple[int, int]]] = {}
    unasked: list[tuple[int, int]] = []
    real_fadvise, real_pread, real_preadv = os.posix_fadvise, os.pread, os.preadv

    def fadvise(fd, offset, length, advice):
        if advice == os.POSIX_FADV_WILLNEED:
            asked.setdefault(fd, []).append((offset, offset + length))
        return real_fadvise(fd, offset, length, advice)

    def seen(fd, offset, size):
        at = offset  # how far the ranges asked so far cover the read, from its start
        for start, end in sorted(asked.get(fd, ())):
            if start <= at < end:
                at = end
        if at < offset + size:
            unasked.append((offset, size))

    def pread(fd, size, offset):
        seen(fd, offset, size)
        return real_pread(fd, size, offset)

    def preadv(fd, buffers, offset):
        seen(fd, offset, min(sum(len(b) for b in buffers), os.fstat(fd).st_size - offset))
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "preadv", preadv)
    res = restore(store, synced.snapshot.id, None, disk / "out")
    monkeypatch.undo()
    assert res.state == "completed", res.warnings
    assert asked and sum(len(ranges) for ranges in asked.values()) > len(asked)  # ahead, piece by piece
    assert unasked == []
    assert_same_tree(tree_state(src), restored_root(disk / "out", src))
