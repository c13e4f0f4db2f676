"""Every file the store relies on reaches the disk before it is in place: written to a temporary name, fsynced,
renamed, and its directory fsynced (a power cut leaves the old file or the whole new one)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from appliance.protect.files import GroupSpec, SourceSpec, sync
from appliance.store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """The path behind every descriptor fsynced from now on; the real fsync still runs."""
    seen: list[str] = []
    real = os.fsync

    def observed(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", observed)
    return seen


def _synced_before_rename(seen: list[str], tmp_name: str, final: Path) -> None:
    """The temporary file was fsynced while it still had its temporary name, and the final directory afterwards."""
    tmp_at = [i for i, p in enumerate(seen) if p.endswith(tmp_name)]
    assert tmp_at, f"{tmp_name} was never fsynced: {seen}"
    assert str(final.parent) in seen[tmp_at[-1] + 1:], f"{final.parent} not fsynced after the rename: {seen}"
    assert final.exists()


def test_store_config_damage_notes_and_damaged_list_are_written_durably(tmp_path, fsynced):
    store = Store.open(tmp_path / "s", create=True)
    _synced_before_rename(fsynced, "config.tmp", tmp_path / "s" / "config")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    snap = sync(store, GroupSpec("g", (SourceSpec(str(src)),))).snapshot
    fsynced.clear()

    info = store.mark_damaged(snap.id, ["chunk X is damaged: restore from tape"])
    assert info.state == "damaged"
    notes = next((tmp_path / "s" / "snapshots").glob(f"*/{snap.id}.damaged"))
    _synced_before_rename(fsynced, f"{snap.id}.damaged.tmp", notes)

    fsynced.clear()
    store.set_damaged_chunks({b"\1" * 32}, set())
    _synced_before_rename(fsynced, "damaged-chunks.tmp", tmp_path / "s" / "damaged-chunks")
    store.close()
    with Store.open(tmp_path / "s") as again:
        assert again.damaged_chunks() == {b"\1" * 32}
        assert again.snapshot(snap.id).state == "damaged"


def test_packs_and_manifests_are_fsynced_before_they_are_named(tmp_path, fsynced):
    store = Store.open(tmp_path / "s", create=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(1000))
    fsynced.clear()
    snap = sync(store, GroupSpec("g", (SourceSpec(str(src)),))).snapshot
    pack = next((tmp_path / "s" / "packs").glob("*/*.pack"))
    _synced_before_rename(fsynced, f"{pack.name}.tmp", pack)
    manifest = next((tmp_path / "s" / "snapshots").glob(f"*/{snap.id}.snap"))
    _synced_before_rename(fsynced, f"{snap.id}.snap.tmp", manifest)
    store.close()


def test_no_file_is_put_in_place_but_through_the_durable_helper():
    """A rename or a direct write elsewhere in the store or the protect engine would skip the fsyncs; the restores'
    own renames (of restored files, in destination.py) are made durable by their syncfs before they report."""
    allowed = {"appliance/store/durable.py", "appliance/protect/destination.py"}
    pattern = re.compile(r"os\.(rename|replace)\(|\.(rename|replace|write_bytes|write_text)\((?!tzinfo)")
    offenders = []
    for folder in ("appliance/store", "appliance/protect"):
        for path in sorted((ROOT / folder).glob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for n, text in enumerate(path.read_text().splitlines(), 1):
                if rel not in allowed and pattern.search(text) and "str.replace" not in text:
                    offenders.append(f"{rel}:{n}: {text.strip()}")
    assert offenders == []
