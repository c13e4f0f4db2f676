"""A user who follows the README: protect a directory, edit and delete files over several syncs and recovery points,
and restore earlier versions byte-identical with their metadata, from the CLI and from the API, on SQLite and
PostgreSQL, against a real daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path


def write(path: Path, data: bytes, mode: int = 0o640, mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def same_file(a: Path, b: Path) -> None:
    sa, sb = a.lstat(), b.lstat()
    assert a.read_bytes() == b.read_bytes(), f"{b} differs from {a}"
    assert (sa.st_mode, sa.st_mtime_ns, sa.st_uid, sa.st_gid) == (sb.st_mode, sb.st_mtime_ns, sb.st_uid, sb.st_gid)


def test_protect_edit_delete_and_restore_from_the_cli(daemon, tmp_path):
    src = tmp_path / "projects"
    write(src / "report.txt", b"first draft\n", 0o640, 1_700_000_000_123_456_789)
    write(src / "data" / "blob.bin", os.urandom(300_000), 0o600)
    os.symlink("report.txt", src / "latest")
    keep = tmp_path / "v1"
    write(keep / "report.txt", b"first draft\n", 0o640, 1_700_000_000_123_456_789)
    (keep / "blob.bin").write_bytes((src / "data" / "blob.bin").read_bytes())

    out = daemon.run("group", "create", "projects", "--source", str(src), "--points", "08:00,20:00", "--keep", "12d")
    assert "created group projects" in out.stdout
    daemon.run("group", "pause", "projects")  # a scheduled point at 08:00 or 20:00 would take this test's changes
    first = daemon.json("point", "projects", "--wait")
    assert first["state"] == "completed" and first["result"]["point"]["files"] == 2  # regular files

    # Edit one file, delete another; a sync, then a recovery point, then another edit and point.
    write(src / "report.txt", b"second draft, longer\n", 0o644)
    os.unlink(src / "data" / "blob.bin")
    synced = daemon.run("sync", "projects", "--wait")
    # the same result line a terminal gets: what the sync made, counts and sizes
    assert synced.stdout == "job 2 sync projects: completed: sync point 2: 1 file (21 B), 1 changed, 21 B new\n"
    assert "\x1b" not in synced.stderr + synced.stdout  # not a terminal: plain lines, no progress bar
    daemon.run("point", "projects", "--wait")
    write(src / "report.txt", b"final\n", 0o600)
    daemon.run("point", "projects", "--wait")

    points = daemon.json("points", "projects")
    assert [p["kind"] for p in points] == ["point", "point", "point"]
    versions = daemon.json("versions", str(src / "report.txt"))
    assert [v["size"] for v in versions] == [12, 21, 6]
    assert [v["current"] for v in versions] == [False, False, True]
    assert [v["path"] for v in daemon.json("versions", str(src / "data" / "blob.bin"))] == [str(src / "data/blob.bin")]

    # The first version of the edited file, by point id; the deleted file, by time.
    dest = tmp_path / "restored"
    one = daemon.run("restore", "projects", "--point", str(versions[0]["first_point"]["id"]),
                     str(src / "report.txt"), "--to", str(dest), "--wait")
    under = dest / str(src).lstrip("/")
    assert one.stdout.endswith(f"restore projects: completed: restored 1 file (12 B) to {under / 'report.txt'}\n")
    same_file(keep / "report.txt", under / "report.txt")
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() + 1))  # newest point: blob is gone there
    gone = daemon.run("restore", "projects", "--at", at, str(src / "data" / "blob.bin"), "--to", str(dest), "--wait",
                      check=1)
    assert gone.stderr.startswith(f"tapeline: {src / 'data' / 'blob.bin'} is not in recovery point ")
    data = daemon.run("restore", "projects", "--point", str(points[0]["id"]), str(src / "data"), "--to", str(dest),
                      "--wait")
    assert data.stdout.endswith(f": completed: restored 1 file (293.0 KiB) to {under / 'data'}\n"), data.stdout
    assert (under / "data" / "blob.bin").read_bytes() == (keep / "blob.bin").read_bytes()
    assert oct((under / "data" / "blob.bin").stat().st_mode & 0o777) == oct(0o600)

    # Restoring over an existing file is refused unless --overwrite: the job succeeds with a warning (exit 3).
    second = daemon.run("restore", "projects", "--point", str(points[1]["id"]), str(src / "report.txt"),
                        "--to", str(dest), "--wait", check=3)
    assert "report.txt: exists, not replaced" in second.stdout
    assert second.stderr.endswith(": read them with `tapeline job " + second.stdout.split()[1] + "`\n")
    assert (under / "report.txt").read_bytes() == b"first draft\n"
    daemon.run("restore", "projects", "--point", str(points[1]["id"]), str(src / "report.txt"), "--to", str(dest),
               "--overwrite", "--wait")
    assert (under / "report.txt").read_bytes() == b"second draft, longer\n"

    # The whole newest point, in place of a lost tree.
    whole = tmp_path / "whole"
    assert daemon.run("restore", "projects", "--to", str(whole), "--wait").stdout.endswith(
        f": completed: restored 2 files (6 B) to {whole} (under their original paths)\n")  # a file and a link
    w = whole / str(src).lstrip("/")
    same_file(src / "report.txt", w / "report.txt")
    assert os.readlink(w / "latest") == "report.txt"
    assert not (w / "data" / "blob.bin").exists()

    status = daemon.json("status")
    assert [g["name"] for g in status["groups"]] == ["projects"] and not status["needs_attention"]
    jobs = daemon.json("jobs")
    assert {j["kind"] for j in jobs} == {"sync", "point", "restore"}


def test_the_same_from_the_api(daemon, tmp_path):
    src = tmp_path / "share"
    write(src / "a.txt", b"v1\n", 0o644, 1_600_000_000_000_000_000)
    write(src / "sub" / "b.txt", b"keep me\n")
    odd = os.fsdecode(bytes(src) + b"/caf\xe9.txt")  # a name that is not UTF-8
    write(Path(odd), b"latin-1 name\n")
    with daemon.client() as api:
        group = api.create_group("share", [str(src)], sync="5m", points=["12:00"], keep="3d")
        assert (group["sync_seconds"], group["point_times"], group["keep_seconds"]) == (300, ["12:00"], 3 * 86400)

        def run(answer):
            deadline = time.monotonic() + 60
            while (job := api.job(answer["job"]))["state"] in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            return job

        assert run(api.point("share"))["state"] == "completed"
        write(src / "a.txt", b"v2 changed\n", 0o600)
        os.unlink(src / "sub" / "b.txt")
        assert run(api.point("share"))["state"] == "completed"
        v = api.versions(str(src / "a.txt"))
        assert [x["size"] for x in v] == [3, 11]
        restored = tmp_path / "out"
        answer = api.restore("share", str(restored), point=str(v[0]["first_point"]["id"]))
        assert answer["point"]["id"] == v[0]["first_point"]["id"]
        assert run(answer)["state"] == "completed"
        base = restored / str(src).lstrip("/")
        assert (base / "a.txt").read_bytes() == b"v1\n"
        assert (base / "a.txt").stat().st_mtime_ns == 1_600_000_000_000_000_000
        assert (base / "sub" / "b.txt").read_bytes() == b"keep me\n"
        assert oct((base / "a.txt").stat().st_mode & 0o777) == oct(0o644)
        assert run(api.check("share", full=True))["state"] == "completed"
        [odd_version] = api.versions(odd)
        assert os.fsencode(odd_version["path"]) == os.fsencode(odd) and odd_version["size"] == 13
        assert Path(os.fsdecode(bytes(base) + b"/caf\xe9.txt")).read_bytes() == b"latin-1 name\n"


def test_damage_found_by_a_full_check_marks_the_point_and_raises_an_alert(sqlite_daemon, tmp_path):
    from appliance.store import Store

    d = sqlite_daemon
    src = tmp_path / "src"
    write(src / "report.txt", b"quarterly figures\n" * 5000)
    d.run("group", "create", "g", "--source", str(src))
    first = d.json("point", "g", "--wait")["result"]["point"]
    write(src / "report.txt", b"rewritten since\n")  # the source no longer has the old content to repair from
    d.run("point", "g", "--wait")
    assert d.stop() == 0
    with Store.open(d.data / "store") as store:  # flip one byte inside the old version's chunk
        digest = next(e for e in store.entries(first["snapshot_id"]) if e.path == b"report.txt").chunks[0]
        offset = (store._index[digest] >> 32) & 0xFFFFFFFF
        pack = next(store.root.glob(f"packs/*/{store.pack_of(digest).split()[-1]}.pack"))
    with open(pack, "r+b") as f:
        f.seek(offset + 5)
        byte = f.read(1)[0]
        f.seek(offset + 5)
        f.write(bytes([byte ^ 0xFF]))
    d.start()
    checked = d.run("check", "g", "--full", "--wait", check=3)
    assert "completed with warnings" in checked.stdout
    points = {p["snapshot_id"]: p["state"] for p in d.json("points", "g")}
    assert points[first["snapshot_id"]] == "damaged" and list(points.values()).count("ok") == 1
    [alert] = d.json("alerts")
    assert alert["severity"] == "error" and "report.txt" in alert["message"] and alert["fix"]
    assert d.run("status", check=1).stdout.count("error") == 1
