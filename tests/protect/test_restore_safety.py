"""A restore never writes outside its destination, whatever the manifest or the destination holds."""

from __future__ import annotations

import os
from datetime import UTC, datetime

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
