"""With overwrite, a restore replaces what stands where the recovery point has something else, without ever
following a link or deleting a directory that holds anything; without it, nothing existing is touched."""

from __future__ import annotations

import os
import shutil

from appliance.protect.files import restore, sync
from tests.protect.conftest import group_of, restored_root


def _two_points(store, src, first, second):
    """Point A with `first(src)` applied, point B after `second(src)`: their ids."""
    first(src)
    a = sync(store, group_of(src)).snapshot.id
    second(src)
    return a, sync(store, group_of(src)).snapshot.id


def _clear(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _dir_with_file(path):
    if os.path.lexists(path):
        _clear(path)
    path.mkdir()
    (path / "f").write_text("inside")


def _file_instead(path):
    _clear(path)
    path.write_text("file")


def test_overwrite_replaces_a_restored_symlink_by_the_directory_of_a_later_point(store, src, tmp_path):
    outside = tmp_path / "outside3"
    outside.mkdir()
    a, b = _two_points(store, src, lambda s: os.symlink(outside, s / "esc"), lambda s: _dir_with_file(s / "esc"))
    target = tmp_path / "t"
    esc = restored_root(target, src) / "esc"
    assert restore(store, a, None, target).state == "completed" and esc.is_symlink()
    kept = restore(store, b, None, target)
    assert kept.state == "completed with warnings" and any("esc" in w and "symlink" in w for w in kept.warnings)
    assert esc.is_symlink() and list(outside.iterdir()) == []
    replaced = restore(store, b, None, target, overwrite=True)
    assert replaced.state == "completed", replaced.warnings
    assert not esc.is_symlink() and (esc / "f").read_text() == "inside"
    assert list(outside.iterdir()) == []


def test_overwrite_replaces_a_file_by_a_directory_also_for_a_single_file_restore(store, src, tmp_path):
    a, b = _two_points(store, src, lambda s: (s / "x").write_text("was a file"), lambda s: _dir_with_file(s / "x"))
    target = tmp_path / "t"
    x = restored_root(target, src) / "x"
    restore(store, a, None, target)
    assert restore(store, b, [str(src / "x" / "f")], target).state == "completed with warnings"
    assert x.read_text() == "was a file"
    assert restore(store, b, [str(src / "x" / "f")], target, overwrite=True).state == "completed"
    assert (x / "f").read_text() == "inside"


def test_overwrite_replaces_an_empty_directory_by_a_file(store, src, tmp_path):
    a, b = _two_points(store, src, lambda s: (s / "x").mkdir(), lambda s: _file_instead(s / "x"))
    target = tmp_path / "t"
    x = restored_root(target, src) / "x"
    restore(store, a, None, target)
    assert restore(store, b, None, target).state == "completed with warnings" and x.is_dir()
    assert restore(store, b, None, target, overwrite=True).state == "completed"
    assert x.read_text() == "file"


def test_overwrite_never_deletes_a_directory_with_content(store, src, tmp_path):
    a, b = _two_points(store, src, lambda s: _dir_with_file(s / "x"),
                       lambda s: _file_instead(s / "x"))
    target = tmp_path / "t"
    x = restored_root(target, src) / "x"
    restore(store, a, None, target)
    (x / "operator-notes").write_text("mine")
    result = restore(store, b, None, target, overwrite=True)
    assert result.state == "completed with warnings"
    assert any(w.startswith("x:") and "directory with content" in w and "remove" in w for w in result.warnings)
    assert (x / "operator-notes").read_text() == "mine" and (x / "f").read_text() == "inside"


def test_overwrite_replaces_a_symlink_where_the_point_has_a_file_without_writing_through_it(store, src, tmp_path):
    (src / "doc").write_text("recorded")
    sid = sync(store, group_of(src)).snapshot.id
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    target = tmp_path / "t"
    root = restored_root(target, src)
    root.mkdir(parents=True)
    os.symlink(victim, root / "doc")
    assert restore(store, sid, None, target, overwrite=True).state == "completed"
    assert not (root / "doc").is_symlink() and (root / "doc").read_text() == "recorded"
    assert victim.read_text() == "untouched"
