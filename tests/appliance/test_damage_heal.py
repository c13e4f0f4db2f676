"""Damage that is repaired: a chunk whose content comes back into the source (then a sync stores it anew) and a
manifest put back from a copy. The next full check finds the points whole: they are "ok" again in `tapeline points`,
their alerts are acknowledged and `tapeline status` exits 0. Against a real daemon."""

from __future__ import annotations

from pathlib import Path

from appliance.store import Store

CONTENT = b"quarterly figures\n" * 5000


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))


def test_a_damaged_chunk_stored_again_clears_the_damaged_points_and_their_alerts(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    (src / "report.txt").write_bytes(CONTENT)
    d.run("group", "create", "g", "--source", str(src))
    first = d.json("point", "g", "--wait")["result"]["point"]
    (src / "report.txt").write_bytes(b"rewritten since\n")  # nothing in the source to repair from
    d.run("point", "g", "--wait")
    assert d.stop() == 0
    with Store.open(d.data / "store") as store:
        digest = next(e for e in store.entries(first["snapshot_id"]) if e.path == b"report.txt").chunks[0]
        offset = (store._index[digest] >> 32) & 0xFFFFFFFF
        pack = next(store.root.glob(f"packs/*/{store.pack_of(digest).split()[-1]}.pack"))
    _flip(pack, offset + 5)
    d.start()
    d.run("check", "g", "--full", "--wait", check=3)
    assert {p["id"]: p["state"] for p in d.json("points", "g")}[first["id"]] == "damaged"
    [alert] = d.json("alerts")
    assert alert["message"].startswith(f"recovery point {first['id']} of group 'g': ")  # the ID `points` shows
    assert first["snapshot_id"] not in alert["message"]
    d.run("status", check=1)

    (src / "report.txt").write_bytes(CONTENT)  # the file is put back; a sync stores its chunk again
    d.run("sync", "g", "--wait")
    healed = d.json("check", "g", "--full", "--wait")
    assert healed["state"] == "completed" and healed["result"]["check"]["healed_point_ids"] == [first["id"]]
    assert {p["state"] for p in d.json("points", "g")} == {"ok"}
    assert d.json("alerts") == []
    d.run("status")  # exit 0: nobody is needed any more
    out = tmp_path / "out"
    d.run("restore", "g", "--point", str(first["id"]), "--to", str(out), "--wait")
    assert (out / str(src).lstrip("/") / "report.txt").read_bytes() == CONTENT


def test_a_manifest_put_back_clears_the_damaged_point_and_its_one_alert(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a\n")
    d.run("group", "create", "g", "--source", str(src))
    first = d.json("point", "g", "--wait")["result"]["point"]
    [manifest] = (d.data / "store").glob(f"snapshots/*/{first['snapshot_id']}.snap")
    copy = manifest.read_bytes()
    _flip(manifest, len(copy) // 2)
    d.run("check", "g", "--full", "--wait", check=3)
    [alert] = d.json("alerts")
    text = f"{alert['message']}: {alert['fix']}"
    assert text.count("damaged manifest") == 1 and text.count("checksum") == 1, text  # said once, not nested
    assert "GROUP" not in text and "\n" not in text
    assert d.json("points", "g")[0]["state"] == "damaged"

    manifest.write_bytes(copy)  # put back from a copy
    d.run("check", "g", "--full", "--wait")
    assert d.json("points", "g")[0]["state"] == "ok"
    assert d.json("alerts") == []
    d.run("status")
