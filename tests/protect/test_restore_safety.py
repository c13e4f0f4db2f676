"""A restore never writes outside its destination, whatever the manifest or the destination holds."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from appliance.protect.files import restore, sync
from appliance.store.model import FILE, DIR
from tests.protect.conftest import group_of, restored_root


def _row(path: bytes, kind: int = FILE, chunks: bytes = b"") -> list:
    mode = 0o100644 if kind == FILE else 0o40755
    return [0, path, kind, mode, 0, 0, "root", "root", 0, 1, 1, 1, 1, 1, 1, 0, None, None, None, chunks, None, None]


def test_names_that_would_escape_are_skipped(store, tmp_path):
    rows = [_row(b"", DIR), _row(b"../escaped"), _row(b"/etc/evil"), _row(b"ok/../../x"), _row(b"fine")]
    session = store.session()
    info = session.commit("g", "sync", datetime.now(UTC), [str(tmp_path / "src")], rows,
                          lambda: {"files": 4, "bytes": 0, "warnings": []})
    session.close()
    target = tmp_path / "deep" / "target"
    result = restore(store, info.id, None, target)
    assert result.state == "completed with warnings"
    assert len([w for w in result.warnings if "unsafe name" in w]) == 3
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "deep" / "x").exists()
    assert not list(tmp_path.rglob("escaped")) and not list(tmp_path.rglob("evil"))
    assert (restored_root(target, tmp_path / "src") / "fine").exists()


def test_symlinked_parent_in_destination_is_not_followed(store, src, tmp_path):
    (src / "sub").mkdir()
    (src / "sub" / "file").write_text("payload")
    sid = sync(store, group_of(src)).snapshot.id
    target = tmp_path / "target"
    outside = tmp_path / "outside"
    outside.mkdir()
    root = restored_root(target, src)
    root.mkdir(parents=True)
    os.symlink(outside, root / "sub")  # an attacker's link where a directory will be restored
    result = restore(store, sid, None, target)
    assert result.state == "completed with warnings"
    assert list(outside.iterdir()) == []
    assert any("symlink" in w for w in result.warnings)


def test_path_not_in_point_fails_clearly(store, src, tmp_path):
    (src / "a").write_text("a")
    sid = sync(store, group_of(src)).snapshot.id
    result = restore(store, sid, ["/elsewhere/file"], tmp_path / "t")
    assert result.state == "failed" and "not under any source" in result.reason
    result = restore(store, sid, [str(src / "missing")], tmp_path / "t")
    assert result.state == "failed" and "missing" in result.reason


def _point_with_report(store, src):
    (src / "report.txt").write_text("quarterly")
    (src / "sub").mkdir()
    (src / "sub" / "notes").write_text("notes")
    return sync(store, group_of(src)).snapshot.id


def _everything_under(path):
    return sorted(p.relative_to(path) for p in path.rglob("*"))


def test_symlink_in_source_prefix_below_target_is_not_followed(store, src, tmp_path):
    sid = _point_with_report(store, src)
    target, outside = tmp_path / "target", tmp_path / "elsewhere"
    outside.mkdir()
    first = src.parts[1]  # target/<first component of the source path> -> outside, as in target/tmp -> /elsewhere
    target.mkdir()
    os.symlink(outside, target / first)
    for paths in ([str(src / "report.txt")], None):
        result = restore(store, sid, paths, target)
        assert result.state == "failed" and result.files == 0
        assert str(target / first) in result.reason and "symlink" in result.reason and "--to" in result.reason
        assert _everything_under(outside) == []
        assert os.readlink(target / first) == str(outside)


def test_source_root_below_target_being_a_symlink_sends_nothing_outside(store, src, tmp_path):
    sid = _point_with_report(store, src)
    target, outside = tmp_path / "target", tmp_path / "elsewhere"
    outside.mkdir()
    root = restored_root(target, src)
    root.parent.mkdir(parents=True)
    os.symlink(outside, root)
    for overwrite in (False, True):  # the source root and what is above it are never replaced, even with overwrite
        result = restore(store, sid, None, target, overwrite=overwrite)
        assert result.state == "failed" and str(root) in result.reason and "remove the link" in result.reason
        assert _everything_under(outside) == [] and root.is_symlink()


def test_one_blocked_source_does_not_stop_the_others(store, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "f").write_text(d.name)
    sid = sync(store, group_of(a, b)).snapshot.id
    target, outside = tmp_path / "target", tmp_path / "elsewhere"
    outside.mkdir()
    restored_root(target, a).parent.mkdir(parents=True)
    os.symlink(outside, restored_root(target, a))
    result = restore(store, sid, None, target)
    assert result.state == "completed with warnings"
    assert [w for w in result.warnings if str(restored_root(target, a)) in w]
    assert (restored_root(target, b) / "f").read_text() == "b"
    assert _everything_under(outside) == []


def test_target_itself_a_symlink_is_where_the_restore_goes(store, src, tmp_path):
    sid = _point_with_report(store, src)
    big = tmp_path / "big"
    big.mkdir()
    os.symlink(big, tmp_path / "restore")  # the operator's --to /restore -> /mnt/big
    result = restore(store, sid, None, tmp_path / "restore")
    assert result.state == "completed", result.warnings
    assert (restored_root(big, src) / "sub" / "notes").read_text() == "notes"


def test_in_place_restore_puts_files_back(store, src, tmp_path):
    sid = _point_with_report(store, src)
    (src / "report.txt").unlink()
    (src / "sub" / "notes").write_text("edited")
    result = restore(store, sid, None, Path("/"))
    assert result.state == "completed with warnings"  # sub/notes exists: kept without overwrite
    assert (src / "report.txt").read_text() == "quarterly" and (src / "sub" / "notes").read_text() == "edited"
    assert restore(store, sid, [str(src / "sub")], None, overwrite=True).state == "completed"
    assert (src / "sub" / "notes").read_text() == "notes"


def test_in_place_restore_of_a_source_given_through_a_symlink_and_deleted(store, tmp_path):
    real = tmp_path / "volume" / "data"
    real.mkdir(parents=True)
    (real / "f").write_text("content")
    link = tmp_path / "data"
    os.symlink(real, link)  # the group names /…/data, a link to the volume, as the sync read it
    sid = sync(store, group_of(link)).snapshot.id
    shutil.rmtree(real)
    assert restore(store, sid, None, Path("/")).state == "completed"
    assert (real / "f").read_text() == "content" and link.is_symlink()


def test_in_place_restore_creates_nothing_above_the_source_root(store, tmp_path):
    src = tmp_path / "home" / "src"
    src.mkdir(parents=True)
    sid = _point_with_report(store, src)
    shutil.rmtree(tmp_path / "home")
    result = restore(store, sid, None, None)
    assert result.state == "failed" and str(tmp_path / "home") in result.reason and "--to" in result.reason
    assert not (tmp_path / "home").exists()
