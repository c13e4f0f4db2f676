"""Retention and garbage collection, including a prune that runs in the middle of a sync."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

from appliance.protect.files import check, prune, restore, sync
from tests.protect.conftest import assert_same_tree, group_of, restored_root, tree_state

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_prune_keeps_recent_points_and_the_replica_and_frees_space(store, src, tmp_path):
    group = group_of(src)
    ids = {}
    for day in range(5):
        (src / "daily.bin").write_bytes(os.urandom(200_000))
        ids[day] = sync(store, group, kind="point", now=T0 + timedelta(days=day)).snapshot.id
        sync(store, group, kind="sync", now=T0 + timedelta(days=day, hours=1))
    expected = tree_state(src)
    last = sync(store, group, kind="sync", now=T0 + timedelta(days=5)).snapshot.id
    before = store.size()
    result = prune(store, "g", keep=timedelta(days=2), now=T0 + timedelta(days=4, hours=23))
    assert result.state == "completed"
    left = [s.id for s in store.snapshots("g")]
    assert left == [ids[3], ids[4], last]
    assert result.packs_deleted >= 1 and store.size() < before
    assert check(store, group, full=True).state == "ok"
    out = tmp_path / "out"
    assert restore(store, last, None, out).state == "completed"
    assert_same_tree(expected, restored_root(out, src))


class _PruneMidway(threading.Event):
    """Runs a prune (with GC) from inside a sync, right after the walk reached the given entry count."""

    def __init__(self, store, keep, now, after) -> None:
        super().__init__()
        self.store, self.keep, self.now, self.after, self.calls = store, keep, now, after, 0
        self.result = None

    def is_set(self) -> bool:
        self.calls += 1
        if self.calls == self.after:
            self.result = prune(self.store, "g", keep=self.keep, now=self.now)
        return super().is_set()


def test_prune_racing_a_sync_loses_nothing(store, src, tmp_path):
    group = group_of(src)
    content = os.urandom(300_000)
    (src / "a_returning.bin").write_bytes(content)
    old_point = sync(store, group, kind="point", now=T0).snapshot.id
    (src / "a_returning.bin").unlink()
    (src / "b.txt").write_text("b")
    sync(store, group, kind="sync", now=T0 + timedelta(days=1))
    # The file comes back: the next sync finds its chunk already stored (only old_point holds it), and a prune
    # that expires old_point and collects its chunks runs while that sync is still walking.
    (src / "a_returning.bin").write_bytes(content)
    for i in range(5):
        (src / f"z{i}").write_text(str(i))
    expected = tree_state(src)
    racer = _PruneMidway(store, timedelta(hours=1), T0 + timedelta(days=2), after=3)
    result = sync(store, group, kind="sync", now=T0 + timedelta(days=2), cancel=racer)
    assert result.state == "completed"
    assert racer.result is not None and old_point in racer.result.removed
    assert old_point not in [s.id for s in store.snapshots()]
    assert check(store, group, full=True).state == "ok"
    out = tmp_path / "out"
    assert restore(store, result.snapshot.id, None, out).state == "completed"
    assert_same_tree(expected, restored_root(out, src))


def test_mostly_dead_pack_is_rewritten_and_live_chunks_survive(store, src, tmp_path):
    group = group_of(src)
    for i in range(40):
        (src / f"f{i:02d}").write_bytes(os.urandom(20_000))
    sync(store, group, kind="point", now=T0)
    for i in range(30):
        (src / f"f{i:02d}").unlink()
    expected = tree_state(src)
    refused = sync(store, group, kind="sync", now=T0 + timedelta(days=3))
    assert refused.state == "failed" and "lost 30 of its 40 files" in refused.reason  # looks unmounted
    last = sync(store, group, kind="sync", now=T0 + timedelta(days=3), max_vanished=1.0).snapshot.id
    result = prune(store, "g", keep=timedelta(days=1), now=T0 + timedelta(days=3))
    assert result.packs_rewritten == 1 and result.bytes_freed >= 30 * 20_000
    store.close()
    from appliance.store import Store
    reopened = Store.open(store.root)  # the index is rebuilt from the packs left
    try:
        assert check(reopened, group, full=True).state == "ok"
        assert restore(reopened, last, None, tmp_path / "out").state == "completed"
        assert_same_tree(expected, restored_root(tmp_path / "out", src))
    finally:
        reopened.close()


def test_the_prune_after_a_sync_collects_only_once_enough_may_be_garbage(store, src, monkeypatch):
    import appliance.protect.prune as prune_mod
    group = group_of(src)
    (src / "a.bin").write_bytes(os.urandom(300_000))
    sync(store, group, now=T0)
    (src / "a.bin").write_bytes(os.urandom(300_000))  # the first version is garbage once the first sync goes
    sync(store, group, now=T0 + timedelta(hours=1))
    def packs() -> int:
        return sum(p.stat().st_size for p in store.root.glob("packs/*/*.pack"))

    before = packs()
    lazy = prune(store, "g", keep=timedelta(days=1), now=T0 + timedelta(hours=1), collect=None)
    assert len(lazy.removed) == 1 and not lazy.collected and packs() == before  # 300 kB: not worth a pass
    monkeypatch.setattr(prune_mod, "GC_FLOOR", 200_000)  # 300 kB replaced is past this floor (and 10% of the store)
    due = prune(store, "g", keep=timedelta(days=1), now=T0 + timedelta(hours=1), collect=None)
    assert due.collected and due.packs_deleted + due.packs_rewritten >= 1 and packs() < before
    again = prune(store, "g", keep=timedelta(days=1), now=T0 + timedelta(hours=1), collect=None)
    assert not again.collected  # the estimate starts again from zero after a collection
    assert check(store, group, full=True).state == "ok"
