"""A sync reports progress as it walks, with a percentage once there is a previous snapshot to estimate from."""

from __future__ import annotations

from appliance.protect.files import sync
from tests.protect.conftest import group_of


def test_a_second_sync_of_many_small_files_reports_a_percentage(store, src, monkeypatch):
    for d in range(20):
        (src / f"d{d}").mkdir()
        for f in range(250):
            (src / f"d{d}" / f"f{f}").write_text(f"{d}/{f}")
    first = sync(store, group_of(src))
    assert first.state == "completed"
    # Every report gets through (the walk throttles reports to four a second).
    monkeypatch.setattr("appliance.protect.scan.time.monotonic", iter(range(0, 10**9, 10)).__next__)
    seen: list[tuple[int, int | None, str]] = []
    second = sync(store, group_of(src), progress=lambda done, total, msg: seen.append((done, total, msg)))
    assert second.state == "completed"
    during = seen[:-1]
    assert during, "no progress while walking 5,000 small files"
    assert all(total == first.snapshot.files + 21 for _, total, _ in during)  # files + 20 dirs + the root
    assert all(0 < done <= total for done, total, _ in during)
    assert "items scanned" in during[0][2]
    done, total, msg = seen[-1]
    assert done == total and "completed" in msg
