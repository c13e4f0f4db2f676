"""A restore gives back every byte and every bit of metadata a sync recorded, across several syncs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.protect.files import restore, sync, versions
from tests.protect.conftest import assert_same_tree, group_of, restored_root, tree_state


def acl_tool(name: str) -> str:
    """Without the ACL tools the tree would carry no ACL and the test would check nothing about them."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run `./dev test` (it installs the acl package) or `apt-get install acl`",
                    pytrace=False)
    return path


def build_rich_tree(src: Path) -> None:
    (src / "docs").mkdir()
    (src / "docs" / "a.txt").write_bytes(b"alpha\n" * 100)
    (src / "empty").write_bytes(b"")
    (src / "big.bin").write_bytes(os.urandom(3 << 20) + b"x" * (2 << 20))  # several content-defined chunks
    os.chmod(src / "docs" / "a.txt", 0o640)
    os.chmod(src / "docs", 0o750)
    (src / "setuid").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "setuid", 0o4755)
    os.symlink("docs/a.txt", src / "link")
    os.symlink("/nonexistent/target", src / "dangling")
    os.link(src / "docs" / "a.txt", src / "hard")
    os.mkfifo(src / "fifo")
    os.mknod(src / "null", 0o600 | 0o020000, os.makedev(1, 3))
    bad = os.fsencode(src) + b"/caf\xe9-\xff.txt"  # not UTF-8
    with open(bad, "wb") as f:
        f.write(b"latin-1 name")
    with open(src / "sparse.img", "wb") as f:
        f.truncate(64 << 20)
        f.seek(10 << 20)
        f.write(b"island" * 1000)
        f.seek((64 << 20) - 5)
        f.write(b"tail!")
    os.setxattr(src / "docs" / "a.txt", "user.comment", b"kept")
    os.setxattr(src / "docs", "user.dir", b"\x00\x01binary")
    subprocess.run([acl_tool("setfacl"), "-m", "u:nobody:rw", str(src / "empty")], check=True)
    subprocess.run([acl_tool("setfacl"), "-d", "-m", "g:nogroup:rx", str(src / "docs")], check=True)
    os.chown(src / "empty", 65534, 65534, follow_symlinks=False)
    os.chown(src / "link", 65534, 100, follow_symlinks=False)
    os.utime(src / "docs" / "a.txt", ns=(1_000_000_123, 1_500_000_000_987654321))
    os.utime(src / "link", ns=(5, 7_000_000_001), follow_symlinks=False)


def test_restore_is_byte_and_metadata_identical(store, src, tmp_path):
    build_rich_tree(src)
    expected = tree_state(src)
    result = sync(store, group_of(src))
    assert result.state == "completed", result.warnings
    out = tmp_path / "out"
    restored = restore(store, result.snapshot.id, None, out)
    assert restored.state == "completed", restored.warnings
    assert_same_tree(expected, restored_root(out, src))
    assert os.stat(restored_root(out, src) / "sparse.img").st_blocks * 512 < (1 << 20)  # holes kept
    acl = subprocess.run([acl_tool("getfacl"), "-p", str(restored_root(out, src) / "empty")], capture_output=True,
                         text=True).stdout
    assert "user:nobody:rw-" in acl


def test_edits_and_deletes_over_syncs_restore_each_version(store, src, tmp_path):
    group = group_of(src)
    (src / "keep.txt").write_text("v1")
    (src / "gone.txt").write_text("soon deleted")
    (src / "d").mkdir()
    (src / "d" / "f").write_bytes(os.urandom(600_000))
    states, ids = [], []
    for step in range(4):
        if step == 1:
            (src / "keep.txt").write_text("v2, longer")
            (src / "gone.txt").unlink()
        if step == 2:
            with open(src / "d" / "f", "r+b") as f:
                f.seek(300_000)
                f.write(b"edited in the middle")
            (src / "new.txt").write_text("new")
        if step == 3:
            shutil.rmtree(src / "d")
            (src / "keep.txt").write_text("v3")
        states.append(tree_state(src))
        result = sync(store, group, kind="point")
        assert result.state == "completed", result.warnings
        ids.append(result.snapshot.id)
    for n, (sid, expected) in enumerate(zip(ids, states)):
        out = tmp_path / f"out{n}"
        assert restore(store, sid, None, out).state == "completed"
        assert_same_tree(expected, restored_root(out, src))
    history = versions(store, "g", str(src / "keep.txt"))
    assert [v.snapshot_id for v in history] == [ids[0], ids[1], ids[3]]
    assert [v.size for v in history] == [2, 10, 2]


def test_second_sync_reads_nothing_unchanged_and_reports_changes(store, src):
    (src / "a").write_text("a")
    (src / "b").write_text("b")
    group = group_of(src)
    first = sync(store, group)
    assert {(c.path, c.what) for c in first.changes} == {(b"", "added"), (b"a", "added"), (b"b", "added")}
    second = sync(store, group)
    assert second.stats.files_changed == 0 and second.stats.bytes_read == 0
    assert list(second.changes) == []
    (src / "a").write_text("changed")
    (src / "b").unlink()
    third = sync(store, group)
    got = {(c.path, c.what) for c in third.changes}
    assert (b"a", "changed") in got and (b"b", "deleted") in got
    assert third.stats.files_changed == 1


def test_restore_single_file_to_original_place_needs_overwrite(store, src, tmp_path):
    (src / "doc.txt").write_text("original")
    sid = sync(store, group_of(src)).snapshot.id
    (src / "doc.txt").write_text("ruined")
    refused = restore(store, sid, [str(src / "doc.txt")], None)
    assert refused.state == "completed with warnings" and "exists" in refused.warnings[0]
    assert (src / "doc.txt").read_text() == "ruined"
    done = restore(store, sid, [str(src / "doc.txt")], None, overwrite=True)
    assert done.state == "completed" and (src / "doc.txt").read_text() == "original"


def test_include_and_exclude_patterns(store, src):
    from appliance.protect.files import GroupSpec, SourceSpec
    (src / "a.log").write_text("x")
    (src / "cache").mkdir()
    (src / "cache" / "big").write_text("x")
    (src / "keep.txt").write_text("x")
    (src / "sub").mkdir()
    (src / "sub" / "b.txt").write_text("x")
    group = GroupSpec("g", (SourceSpec(str(src), include=("*.txt",), exclude=("cache", "sub/*.tmp")),))
    sid = sync(store, group).snapshot.id
    paths = {e.path for e in store.entries(sid)}
    assert paths == {b"", b"keep.txt", b"sub", b"sub/b.txt"}


@pytest.mark.parametrize("count", [100_000])
def test_manifest_of_100k_files_loads_whole(store, tmp_path, count):
    from datetime import UTC, datetime
    rows = ([0, b"d%04d/f%05d" % (i // 1000, i), 0, 0o100644, 0, 0, "root", "root", 1234, 10**18 + i, 10**18,
             10**18, i, 1, 1, 0, None, None, os.urandom(32), os.urandom(32), None, None] for i in range(count))
    session = store.session()
    info = session.commit("g", "sync", datetime.now(UTC), ["/src"], rows, lambda: {"files": count})
    session.close()
    entries = list(store.entries(info.id))
    assert len(entries) == count and entries[-1].path == b"d%04d/f%05d" % ((count - 1) // 1000, count - 1)


def test_identical_content_is_stored_once(store, src, tmp_path):
    blob = os.urandom(100_000)
    big = os.urandom(3 << 20)
    (src / "one").write_bytes(blob)
    (src / "two").write_bytes(blob)
    (src / "big-a").write_bytes(big)
    (src / "big-b").write_bytes(big)
    expected = tree_state(src)
    result = sync(store, group_of(src))
    entries = {e.path: e for e in store.entries(result.snapshot.id)}
    assert entries[b"one"].digest == entries[b"two"].digest
    assert entries[b"big-a"].chunks == entries[b"big-b"].chunks
    assert store.chunk_count() == 1 + len(entries[b"big-a"].chunks)
    assert result.stats.new_bytes == len(blob) + len(big)
    assert restore(store, result.snapshot.id, None, tmp_path / "out").state == "completed"
    assert_same_tree(expected, restored_root(tmp_path / "out", src))


def test_source_given_through_a_symlink_and_directory_versions(store, src, tmp_path):
    (src / "d").mkdir()
    (src / "d" / "x").write_text("1")
    link = tmp_path / "via-link"
    os.symlink(src, link)
    group = group_of(link)
    first = sync(store, group).snapshot.id
    root = next(e for e in store.entries(first) if e.path == b"")
    assert root.type == "dir"
    (src / "d" / "x").write_text("22")
    second = sync(store, group).snapshot.id
    third = sync(store, group).snapshot.id
    history = versions(store, "g", str(link / "d"))
    assert [v.snapshot_id for v in history] == [first, second] and history[0].type == "dir"
    assert third not in [v.snapshot_id for v in history]
