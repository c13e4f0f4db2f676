"""A set's frames restore with GNU tar and zstd alone, and with Tapeline's own reader: content, owners, modes,
times, xattrs, ACLs, hardlinks, sparse files and names that are not UTF-8 identical."""

from __future__ import annotations

import os
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard

from appliance.media.archive import (ArchiveError, ArchiveWriter, Member, member_from_entry, members_from_tree, prepare,
                                     read_frames, read_members)
from appliance.errors import TapelineError
from appliance.media import members, snapshot_frames
from appliance.media.pax import acl_text, acl_xattr, tar_header
from appliance.protect.files import sync
from appliance.store import Store
from appliance.store.model import entry_from_row
from appliance.store.errors import ChunkDamaged
from tests.protect.conftest import assert_same_tree, group_of, restored_root, tree_state
from tests.protect.test_fidelity import build_rich_tree

GNU_TAR_X = ["tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", "-"]


def write_all(members, frame_size: int = 1 << 20, workers: int = 2) -> list:
    writer = ArchiveWriter(frame_size=frame_size, workers=workers)
    frames = []
    for member in members:
        frames += writer.add(member)
    frames += writer.close(end=True)
    return frames


def gnu_tar_extract(stream: bytes, target: Path) -> None:
    target.mkdir()
    plain = subprocess.run(["zstd", "-dc"], input=stream, capture_output=True, check=True).stdout
    run = subprocess.run(GNU_TAR_X, input=plain, cwd=target, capture_output=True)
    assert run.returncode == 0 and not run.stderr, run.stderr.decode()


def test_a_tree_read_directly_restores_identically_with_gnu_tar(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    expected = tree_state(src)
    warnings: list[str] = []
    frames = write_all(members_from_tree(src, warnings.append))
    assert warnings == [] and len(frames) > 3  # big.bin spans frames
    assert all(len(zstandard.ZstdDecompressor().decompress(f.data)) == f.raw_length <= 1 << 20 for f in frames)
    out = tmp_path / "out"
    gnu_tar_extract(b"".join(f.data for f in frames), out)
    assert_same_tree(expected, restored_root(out, src))
    assert os.stat(restored_root(out, src) / "sparse.img").st_blocks * 512 < (1 << 20)


@pytest.fixture
def frame_workers(monkeypatch) -> list:
    """A D2D2T set's batches go to worker processes from the first (a set this small is otherwise archived on the
    job's thread), a few members a batch, big.bin cut into pieces; the list holds each worker started."""
    started: list = []

    class Counted(snapshot_frames._Worker):
        def __init__(self, sources):
            super().__init__(sources)
            started.append(self)

    monkeypatch.setattr(snapshot_frames, "INLINE_BYTES", 0)
    monkeypatch.setattr(snapshot_frames, "BATCH_MEMBERS", 5)
    monkeypatch.setattr(snapshot_frames, "PIECE_CHUNKS", 2)
    monkeypatch.setattr(snapshot_frames, "_Worker", Counted)
    return started


@pytest.mark.parametrize("through_workers", [False, True])
def test_a_recovery_point_restores_identically_with_gnu_tar(tmp_path, request, through_workers):
    started = request.getfixturevalue("frame_workers") if through_workers else []
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    expected = tree_state(src)
    store = Store.open(tmp_path / "store", create=True)
    try:
        result = sync(store, group_of(src))
        assert result.state == "completed", result.warnings
        frames = list(snapshot_frames.frames_from_snapshot(store, result.snapshot.id, None, [], None)())
    finally:
        store.close()
    assert [f.number for f in frames] == list(range(len(frames)))
    if through_workers:
        assert len(started) == snapshot_frames.WORKERS and all(w.proc.poll() == 0 for w in started)
    out = tmp_path / "out"
    gnu_tar_extract(b"".join(f.data for f in frames), out)
    assert_same_tree(expected, restored_root(out, src))
    assert os.stat(restored_root(out, src) / "sparse.img").st_blocks * 512 < (1 << 20)
    by_number = {f.number: f for f in frames}
    for entry in (e for f in frames for e in f.entries):  # every member is found from its index entry alone
        raw = read_frames(iter([by_number[n].data for n in range(entry.frame, len(frames))]), 0)
        info, content = next(read_members(raw, entry.offset))
        assert info.name.rstrip("/").encode("utf-8", "surrogateescape") == entry.path
        if entry.type == "file" and entry.size < (1 << 20):
            with open(b"/" + entry.path, "rb") as f:
                assert content.read() == f.read()


def test_members_built_straight_from_the_manifest_are_the_bytes_the_general_encoder_gives(tmp_path):
    """The D2D2T path builds each member's headers from its manifest entry directly; every kind of member (long and
    non-UTF-8 names, xattrs, ACLs, sparse, links, devices, times before 2001 and before 1970) encodes exactly as
    through a TarInfo and `tar_header`."""
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    deep = src / ("d" * 90) / ("long-name-" * 12)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_bytes(b"deep")
    os.symlink("t" * 150, deep / "long-target")
    os.link(deep / "f.txt", src / "hard-to-deep")
    (src / "old").write_bytes(b"1969")
    os.utime(src / "old", ns=(-1_500_000_000, -86_400_000_000_001))
    store = Store.open(tmp_path / "store", create=True)
    try:
        result = sync(store, group_of(src))
        assert result.state == "completed", result.warnings
        sources = list(store.snapshot(result.snapshot.id).sources)
        rows = list(store.rows(result.snapshot.id))
    finally:
        store.close()
    roots: dict[str, bytes] = {}
    for row in rows:
        entry = entry_from_row(row, sources)
        fast = members.prepared_from_row(row, sources, roots)
        general = prepare(member_from_entry(entry, None))
        assert (fast.path, fast.headers, fast.data_size, fast.key, fast.link) == \
            (general.path, general.headers, general.data_size, general.key, general.link), entry.path
        assert members.member_key(row, sources, roots) == (general.path, general.key)
    assert len(rows) == len(tree_state(src))


@pytest.mark.parametrize("through_workers", [False, True])
def test_a_damaged_chunk_stops_the_set_at_the_member_that_holds_it(tmp_path, request, through_workers):
    """Members are archived in batches, side by side, but a chunk on the damaged-chunks list is reported by the
    member that needs it, once the members before it are archived whole, as a read on the job's thread would."""
    started = request.getfixturevalue("frame_workers") if through_workers else []
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    store = Store.open(tmp_path / "store", create=True)
    archived = []
    try:
        result = sync(store, group_of(src))
        entries = [e for e in store.entries(result.snapshot.id)]
        damaged = next(e for e in entries if e.type == "file" and e.path == b"docs/a.txt")
        store.set_damaged_chunks({damaged.chunks[0]}, set())
        with pytest.raises(ChunkDamaged):
            for frame in snapshot_frames.frames_from_snapshot(store, result.snapshot.id, None, [], None)():
                archived += [e.path for e in frame.entries]
    finally:
        store.close()
    before = [e.full_path.lstrip(b"/") for e in entries[:entries.index(damaged)]]
    assert archived == before
    assert all(w.proc.poll() is not None for w in started)


def test_a_chunk_damaged_in_its_pack_fails_the_set_from_a_worker_naming_the_pack(tmp_path, frame_workers):
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    store = Store.open(tmp_path / "store", create=True)
    try:
        result = sync(store, group_of(src))
        entry = next(e for e in store.entries(result.snapshot.id) if e.path == b"docs/a.txt")
        fd, offset, length, _ = store.locate_chunk(entry.chunks[0])
        pack = store.pack_of(entry.chunks[0])
        with open(f"/proc/self/fd/{fd}", "r+b") as f:  # the bytes on disk go bad, unknown to the store
            flipped = bytes(b ^ 0xFF for b in os.pread(f.fileno(), length, offset))
            os.pwrite(f.fileno(), flipped, offset)
        with pytest.raises(TapelineError) as raised:
            list(snapshot_frames.frames_from_snapshot(store, result.snapshot.id, None, [], None)())
    finally:
        store.close()
    assert str(raised.value) == f"chunk {entry.chunks[0].hex()[:16]} in {pack} is damaged: run 'tapeline check " \
                                "GROUP --full'"
    assert frame_workers and all(w.proc.poll() is not None for w in frame_workers)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_member_is_found_from_its_index_entry_alone(tmp_path, workers):
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    frames = write_all(members_from_tree(src), frame_size=256 << 10, workers=workers)
    assert [f.number for f in frames] == list(range(len(frames)))
    by_number = {f.number: f for f in frames}
    entries = [e for f in frames for e in f.entries]
    assert len({e.path for e in entries}) == len(entries) == len(tree_state(src))
    for entry in entries:
        raw = read_frames(iter([by_number[n].data for n in range(entry.frame, len(frames))]), 0)
        info, content = next(read_members(raw, entry.offset))
        assert info.name.rstrip("/").encode("utf-8", "surrogateescape") == entry.path
        if entry.type in ("symlink", "hardlink"):
            assert info.linkname.encode("utf-8", "surrogateescape") == entry.link
        if entry.type == "file":
            with open(b"/" + entry.path, "rb") as f:
                assert content.read() == f.read()


def test_a_small_member_is_never_split_across_frames(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(40):
        (src / f"f{n:02}").write_bytes(os.urandom(100_000))
    frames = write_all(members_from_tree(src), frame_size=256 << 10)
    for f in frames:
        for e in f.entries:
            assert e.offset + 512 * 3 + 100_000 <= f.raw_length or e.type == "dir"


def test_acl_text_round_trips_the_kernel_form():
    text = "user::rw-,user:65534:r--,group::r-x,group:100:rwx,mask::rwx,other::---"
    assert acl_text(acl_xattr(text)) == text
    assert acl_text(acl_xattr("u::rwx,g::r-x,o::r-x")) == "user::rwx,group::r-x,other::r-x"


def test_long_names_long_links_and_ids_past_ustar_fields_restore_with_gnu_tar(tmp_path):
    src = tmp_path / "src"
    deep = src / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    (deep / ("f" * 150)).write_bytes(b"long name")
    os.symlink("t" * 300, deep / "link")
    os.chown(deep / ("f" * 150), 3_000_000, 3_000_001)
    expected = tree_state(src)
    out = tmp_path / "out"
    gnu_tar_extract(b"".join(f.data for f in write_all(members_from_tree(src))), out)
    assert_same_tree(expected, restored_root(out, src))


def test_content_that_does_not_match_its_header_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"12345")
    member = next(m for m in members_from_tree(src) if m.info.isreg())
    short = replace(member, content=iter([b"123"]))
    with pytest.raises(ArchiveError, match="gave 3 bytes where 5 were announced"):
        list(ArchiveWriter().add(short))


def test_a_file_that_shrinks_while_archived_is_padded_and_named(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"x" * 10_000)
    warnings: list[str] = []
    members = members_from_tree(src, warnings.append)
    writer = ArchiveWriter()
    frames = list(writer.add(next(members)))
    member = next(members)
    (src / "a").write_bytes(b"y" * 10)
    frames += writer.add(member)
    frames += writer.close(end=True)
    raw = read_frames(iter([f.data for f in frames]), 0)
    got = {info.name: content.read() for info, content in read_members(raw, 0)}
    assert got[member.info.name] == b"y" * 10 + bytes(9_990)
    assert len(warnings) == 1 and "/a: shrank while archived" in warnings[0]


@pytest.mark.parametrize("name", ["docs/a.txt", "docs/caf\u00e9 \u20ac.txt", "d/" + "x" * 150, "\udcff-not-utf8"])
def test_every_ustar_header_carries_the_checksum_tar_computes(name):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = 5, 1_700_000_000, 8 ** 7, 0, "j\u00fcrgen", "g"
    data = tar_header(info, name.encode("utf-8", "surrogateescape"), 5, {"mtime": "1700000000.5"})
    for block in (data[:512], data[-512:]):  # the pax header's and the member's (the records between them)
        stored = int(block[148:154], 8)
        assert stored == sum(block[:148]) + 8 * 32 + sum(block[156:])  # the field counted as spaces
    read = tarfile.TarInfo.frombuf(data[-512:], "utf-8", "surrogateescape")  # checks the checksum too
    assert read.size == 5


@pytest.mark.timeout(120)  # the old way hung here for ever
def test_batches_and_answers_bigger_than_a_socket_holds_go_through_the_workers(tmp_path, frame_workers,
                                                                              monkeypatch):
    """A worker's answer (a batch of frames) waits for the job to read it while the job sends the next batch's
    members: neither may wait on the other for ever."""
    monkeypatch.setattr(snapshot_frames, "BATCH_MEMBERS", 600)
    src = tmp_path / "src"
    names = src / ("n" * 200)
    names.mkdir(parents=True)
    for n in range(3000):  # long names: a batch's message is several times what a socket buffers, and so is its answer
        (names / f"{n:05}-{'x' * 200}").write_bytes(os.urandom(2048))
    expected = tree_state(src)
    store = Store.open(tmp_path / "store", create=True)
    try:
        result = sync(store, group_of(src))
        frames = list(snapshot_frames.frames_from_snapshot(store, result.snapshot.id, None, [], None)())
    finally:
        store.close()
    out = tmp_path / "out"
    gnu_tar_extract(b"".join(f.data for f in frames), out)
    assert_same_tree(expected, restored_root(out, src))


def test_a_frame_worker_that_dies_fails_the_set_with_its_fix_and_none_is_left_running(tmp_path, frame_workers,
                                                                                     monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    real = snapshot_frames._Worker.send

    def killed_first(self, *args):
        if self is frame_workers[0] and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        real(self, *args)

    monkeypatch.setattr(snapshot_frames._Worker, "send", killed_first)
    store = Store.open(tmp_path / "store", create=True)
    try:
        result = sync(store, group_of(src))
        with pytest.raises(TapelineError) as raised:
            list(snapshot_frames.frames_from_snapshot(store, result.snapshot.id, None, [], None)())
    finally:
        store.close()
    assert raised.value.message.startswith("a tape backup worker process ended unexpectedly (")
    assert raised.value.fix == "see the daemon's log, then run the tape backup again"
    assert all(w.proc.poll() is not None for w in frame_workers)


def test_a_frame_is_compressed_fast_only_when_most_of_it_is_content_known_incompressible(monkeypatch):
    """A frame 3/4 text and 1/4 of a big member the store kept raw: level 3; the next frames, all raw: fast."""
    seen: list[bool] = []
    real = ArchiveWriter._store

    def spied(self, pieces, length, number, fast):
        seen.append(fast)
        return real(self, pieces, length, number, fast)

    monkeypatch.setattr(ArchiveWriter, "_store", spied)
    writer = ArchiveWriter(frame_size=1 << 20, workers=0)

    def member(name: str, data: bytes):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        prepared = prepare(Member(info))
        prepared.content = iter([data])
        return prepared

    frames = list(writer.add(member("text", b"the same line of text again\n" * ((3 << 18) // 28))))
    frames += writer.add(member("random", os.urandom(3 << 20)), incompressible=True)
    frames += writer.close(end=True)
    assert seen[:4] == [False, True, True, True]
