"""The Extractor fed by Tapeline's own tape reader: a tree archived into frames (appliance/media/archive.py), read
back with read_frames and read_members, comes back identical."""

from __future__ import annotations

import os

from appliance.media.archive import ArchiveWriter, members_from_tree, read_frames, read_members
from appliance.media.extract import Extractor
from tests.protect.conftest import assert_same_tree, restored_root, tree_state
from tests.protect.test_fidelity import build_rich_tree


def test_a_tree_archived_into_frames_comes_back_identical(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    expected = tree_state(src)
    writer = ArchiveWriter(frame_size=256 << 10)
    frames = [frame for member in members_from_tree(src) for frame in writer.add(member)]
    frames += writer.close(end=True)

    ex = Extractor(tmp_path / "out", overwrite=False)
    for info, content in read_members(read_frames(iter([f.data for f in frames]), 0), 0):
        ex.write(info, content)
    result = ex.close()

    assert result.warnings == []
    assert_same_tree(expected, restored_root(tmp_path / "out", src))
    assert os.stat(restored_root(tmp_path / "out", src) / "sparse.img").st_blocks * 512 < 1 << 20
