"""kill -9 at random moments of syncs, prunes and restores: the store reopens, repairs itself, and every
recovery point it still lists restores byte for byte as the source was when that point was taken."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.protect.files import check, restore
from appliance.store import Store
from tests.protect.conftest import assert_same_tree, group_of, restored_root, tree_state

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys
from datetime import timedelta
from pathlib import Path
from appliance.store import Store
from appliance.protect.files import GroupSpec, SourceSpec, sync, prune, restore
op, store_dir, src, target, kind = sys.argv[1:6]
store = Store.open(Path(store_dir))
group = GroupSpec("g", (SourceSpec(src),))
print("start", flush=True)
if op == "sync":
    r = sync(store, group, kind=kind)
    assert r.state == "completed", r.reason
elif op == "prune":
    r = prune(store, "g", keep=timedelta(seconds=float(kind)))
    assert r.state == "completed", r.reason
elif store.snapshots("g"):  # every sync before may have been killed: then there is nothing to restore
    r = restore(store, store.snapshots("g")[-1].id, None, Path(target), overwrite=True)
    assert r.state == "completed", r.warnings
print("done")
"""


def _mutate(src: Path, rng: random.Random, step: int) -> None:
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("big"))
    for p in rng.sample(files, k=max(1, len(files) // 20)):
        p.write_bytes(rng.randbytes(rng.randint(0, 8000)))
    for p in rng.sample(files, k=max(1, len(files) // 50)):
        p.unlink()
    for i in range(20):
        d = src / f"d{rng.randint(0, 9)}"
        d.mkdir(exist_ok=True)
        (d / f"new-{step}-{i}").write_bytes(rng.randbytes(rng.randint(0, 5000)))
    with open(src / "big0", "r+b") as f:
        f.seek(rng.randint(0, 6 << 20))
        f.write(rng.randbytes(100_000))


@pytest.mark.slow
def test_kill_at_random_moments_then_every_point_restores_exactly(tmp_path):
    rng = random.Random(3)
    src = tmp_path / "src"
    for i in range(1500):
        d = src / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(rng.randbytes(rng.randint(0, 8000)))
    (src / "big0").write_bytes(rng.randbytes(8 << 20))
    (src / "big1").write_bytes(rng.randbytes(8 << 20))
    store_dir = tmp_path / "store"
    Store.open(store_dir, create=True).close()
    expected: dict[str, dict] = {}
    kills = 0
    duration = {"sync": 1.0, "prune": 0.3, "restore": 1.0}  # refined from the runs that were not killed
    for step in range(48):
        op = ["sync", "sync", "sync", "prune", "restore"][step % 5]
        if op == "sync":
            _mutate(src, rng, step)
        state = tree_state(src)
        target = tmp_path / "restored"
        args = [sys.executable, "-c", CHILD, op, str(store_dir), str(src), str(target),
                "point" if step % 2 else "sync"]
        if op == "prune":
            args[-1] = str(rng.choice([0.5, 3.0, 30.0]))
        child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"start\n"
        started = time.monotonic()
        if step % 8 != 7:  # most runs are killed at a random moment of the operation; a few run through
            time.sleep(rng.uniform(0, 0.9 * duration[op]))
        if child.poll() is None and step % 8 != 7:
            child.send_signal(signal.SIGKILL)
            kills += 1
        out, err = child.communicate()
        if child.returncode == 0:
            duration[op] = time.monotonic() - started
        assert child.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
        store = Store.open(store_dir)  # must open and repair whatever the kill left
        try:
            assert list((store_dir / "tmp").iterdir()) == []
            listed = {s.id for s in store.snapshots("g")}
            for sid in listed - set(expected):
                expected[sid] = state  # the source did not change while that op ran
            for sid in set(expected) - listed:
                del expected[sid]
            for sid in sorted(listed):
                out_dir = tmp_path / "verify"
                shutil.rmtree(out_dir, ignore_errors=True)
                result = restore(store, sid, None, out_dir)
                assert result.state == "completed", (step, op, result.warnings[:3])
                assert_same_tree(expected[sid], restored_root(out_dir, src))
            if op == "restore" and child.returncode != 0 and listed:
                again = restore(store, sorted(listed)[-1], None, target, overwrite=True)
                assert again.state == "completed", again.warnings[:3]
                assert not list(target.rglob(".tapeline-partial-*"))
        finally:
            store.close()
    assert kills >= 30
    store = Store.open(store_dir)
    assert check(store, group_of(src), full=True).state == "ok"
    store.close()
