"""Tape as a new user meets it: `tapeline up` with its embedded library, a protected tree, recovery points to tape
(full and incremental) by hand, every file back from tape with Tapeline, then with the disk store and the catalog
gone: `media rebuild` from the tapes and a restore again; and the same set with `tapeline-vtl cat | zstd -dc |
tar -x` alone. Content, owners, modes, times, xattrs, ACLs, hardlinks, sparse files and non-UTF-8 names identical."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.appliance.daemon_harness import Daemon, start_up

from tests.protect.conftest import assert_same_tree, restored_root, tree_state
from tests.protect.test_fidelity import build_rich_tree

pytestmark = pytest.mark.slow  # each starts `tapeline up` (a daemon and its library) and writes real sets

VTL = str(Path(sys.executable).with_name("tapeline-vtl"))
GNU_TAR_X = ["tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", "-"]


def up(tmp_path: Path, env: dict[str, str] | None = None) -> Daemon:
    return start_up(tmp_path, env)


def held_at(hold: Path, job: int, step: str = "tape-writing") -> Path:
    """The FIFO job `job` waits on at `step` (TAPELINE_TEST_HOLD), once it is there."""
    fifo = hold / f"job-{job}-{step}"
    deadline = time.monotonic() + 60
    while not fifo.exists():
        assert time.monotonic() < deadline, f"job {job} never reached {step}"
        time.sleep(0.05)
    return fifo


@pytest.fixture
def appliance(tmp_path):
    d = up(tmp_path)
    yield d
    d.stop(signal.SIGINT)


def holding(tmp_path: Path) -> tuple[Daemon, Path]:
    """`tapeline up` whose tape backups stop after their first frame (TAPELINE_TEST_HOLD), and the hold directory."""
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "tape-writing").touch()
    return up(tmp_path, {"TAPELINE_TEST_HOLD": str(hold)}), hold


def restores_identically(d: Daemon, group: str, src: Path, out: Path, *args: str, expected=None) -> None:
    """`tapeline tape restore GROUP [ARGS] --to OUT --wait` brings the tree back as it is (or as `expected`)."""
    d.run("tape", "restore", group, *args, "--to", str(out), "--wait")
    assert_same_tree(tree_state(src) if expected is None else expected, restored_root(out, src))


def protected(d: Daemon, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    d.run("group", "create", "files", "--source", str(src))
    d.run("point", "files", "--wait")
    d.run("pool", "create", "weekly", "--library", "vtl", "--retention", "30d")
    return src


def test_a_point_goes_to_tape_and_every_file_comes_back(appliance, tmp_path):
    d = appliance
    src = protected(d, tmp_path)
    expected = tree_state(src)
    job = d.json("tape", "backup", "files", "--pool", "weekly", "--wait")
    tape = job["result"]["tape"]
    assert job["state"] == "completed" and tape["kind"] == "full" and tape["files"] >= len(expected)
    assert job["result"]["verify"]["bad_frames"] == 0
    sets = d.json("tape", "sets", "files")
    assert [(s["kind"], s["state"], s["pool"]) for s in sets] == [("full", "ok", "weekly")]
    barcode, tape_file = sets[0]["cartridges"][0]["barcode"], sets[0]["cartridges"][0]["tape_file"]
    assert tape_file == 2  # after the volume label (0) and the media-set label (1)

    out = tmp_path / "out"
    job = d.json("tape", "restore", "files", "--to", str(out), "--wait")
    assert job["state"] == "completed", job
    assert job["result"]["restore"]["cartridges_loaded"] in ([], [barcode])
    assert_same_tree(expected, restored_root(out, src))

    # The same set with standard tools alone, as the set's header block tells a person to.
    plain = subprocess.run(f"{VTL} cat {d.data / 'vtl'} {barcode} {tape_file} | zstd -dc", shell=True,
                           capture_output=True, check=True).stdout
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    run = subprocess.run(GNU_TAR_X, input=plain, cwd=by_tar, capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
    assert_same_tree(expected, restored_root(by_tar, src))

    job = d.json("media", "verify", barcode, "--wait")
    verify = job["result"]["verify"]
    assert job["state"] == "completed" and verify["sets"] == 1 and verify["frames_checked"] > 0
    assert verify["problems"] == []
    # the appliance's index copy gone (not the cartridge): the verify says how to read it back, the cartridge is
    # not judged
    copies = d.data / "tape-index"
    copies.rename(tmp_path / "index-aside")
    lost = d.run("--json", "media", "verify", barcode, "--wait", check=1)
    assert "no index copy" in lost.stderr and "tapeline media rebuild --library vtl" in lost.stderr, lost.stderr
    assert d.json("media", "show", barcode)["state"] != "damaged"
    (tmp_path / "index-aside").rename(copies)
    # a block of the set gone bad: verify names it and fails
    subprocess.run([VTL, "fault", str(d.data / "vtl"), "media-error", barcode, "--at", "6", "--persistent"],
                   check=True, capture_output=True)
    bad = d.run("--json", "media", "verify", barcode, "--wait", check=1)
    assert "problem" in bad.stderr and barcode in bad.stderr
    assert d.json("media", "show", barcode)["state"] == "damaged"  # never written again; still read


def test_an_incremental_holds_only_what_changed_and_restores_the_whole_point(appliance, tmp_path):
    d = appliance
    src = protected(d, tmp_path)
    d.run("group", "set", "files", "--tape-pool", "weekly", "--tape-full", "Sat 22:00", "--tape-incremental",
          "Mon..Fri 22:00")
    assert "tape            full on Sat 22:00, incremental on Mon..Fri 22:00, to pool weekly" in \
        d.run("group", "show", "files").stdout
    d.run("tape", "backup", "files", "--pool", "weekly", "--wait")
    (src / "docs" / "a.txt").write_bytes(b"changed\n")
    (src / "new.txt").write_bytes(b"new file\n")
    d.run("point", "files", "--wait")
    expected = tree_state(src)
    job = d.json("tape", "backup", "files", "--pool", "weekly", "--incremental", "--wait")
    tape = job["result"]["tape"]
    assert tape["kind"] == "incremental" and tape["carried"] > 0
    assert tape["files"] <= 4  # the two changed files and the directories whose times moved
    restores_identically(d, "files", src, tmp_path / "out", expected=expected)


def test_the_catalog_and_store_lost_a_rebuild_from_tapes_restores_everything(tmp_path):
    d = up(tmp_path)
    try:
        src = protected(d, tmp_path)
        expected = tree_state(src)
        d.run("tape", "backup", "files", "--pool", "weekly", "--wait")
    finally:
        d.stop(signal.SIGINT)
    for lost in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "store", "tape-index"):
        path = d.data / lost
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    d.start()
    try:
        job = d.json("media", "rebuild", "--library", "vtl", "--wait")
        rebuilt = job["result"]["rebuild"]
        assert rebuilt["sets"] == 1 and rebuilt["bytes_read"] < rebuilt["bytes_on_tape"]
        sets = d.json("tape", "sets")
        assert [(s["group"], s["state"]) for s in sets] == [("files", "ok")]
        restores_identically(d, "files", src, tmp_path / "out", expected=expected)
    finally:
        d.stop(signal.SIGINT)


def test_one_file_from_tape_and_bad_requests(appliance, tmp_path):
    d = appliance
    src = protected(d, tmp_path)
    d.run("tape", "backup", "files", "--pool", "weekly", "--wait")
    out = tmp_path / "out"
    one = str(src / "docs" / "a.txt")
    job = d.json("tape", "restore", "files", one, "--to", str(out), "--wait")
    assert job["result"]["restore"]["files"] == 1
    ran = datetime.fromisoformat(job["finished"]) - datetime.fromisoformat(job["started"])
    assert 0 < job["result"]["restore"]["first_byte_seconds"] <= ran.total_seconds()  # time to first byte, reported
    assert (out / one.lstrip("/")).read_bytes() == (src / "docs" / "a.txt").read_bytes()
    # a hardlink alone brings the name holding its data with it
    hard = d.json("tape", "restore", "files", str(src / "hard"), "--to", str(tmp_path / "hard"), "--wait")
    assert hard["state"] == "completed" and hard["result"]["restore"]["files"] == 2
    linked = restored_root(tmp_path / "hard", src)
    assert os.stat(linked / "hard").st_ino == os.stat(linked / "docs" / "a.txt").st_ino
    assert (linked / "hard").read_bytes() == (src / "hard").read_bytes()
    # restoring again without --overwrite refuses to replace it, naming the fix
    again = d.run("tape", "restore", "files", one, "--to", str(out), "--wait", check=None)
    assert again.returncode in (1, 3) and "--overwrite" in again.stdout + again.stderr
    bad = d.run("tape", "backup", "files", "--pool", "nosuch", check=None)
    assert bad.returncode != 0 and "pool" in bad.stderr and "tapeline pool" in bad.stderr
    missing = d.run("tape", "restore", "files", str(src / "nosuch"), "--to", str(out), check=None)
    assert missing.returncode != 0 and "not in tape set" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_a_daemon_killed_mid_write_leaves_a_set_that_does_not_count_and_the_tape_reused(tmp_path):
    d, hold = holding(tmp_path)
    try:
        src = protected(d, tmp_path)
        held_at(hold, d.json("tape", "backup", "files", "--pool", "weekly")["job"])
        d.kill()  # kill -9, its first frame on tape
    finally:
        d.stop()
    (hold / "tape-writing").unlink()
    d.env = {}
    d.start()
    try:
        assert [s["state"] for s in d.json("tape", "sets")] == ["failed"]
        job = d.json("tape", "backup", "files", "--pool", "weekly", "--wait")
        assert job["state"] == "completed"
        ok = [s for s in d.json("tape", "sets") if s["state"] == "ok"]
        assert [c["tape_file"] for c in ok[0]["cartridges"]] == [2]  # written where the dead one began
        restores_identically(d, "files", src, tmp_path / "out")
    finally:
        d.stop(signal.SIGINT)


def test_a_restore_asks_for_a_cartridge_outside_the_library_and_goes_on_once_it_is_back(appliance, tmp_path):
    d = appliance
    src = protected(d, tmp_path)
    d.run("tape", "backup", "files", "--pool", "weekly", "--wait")
    barcode = d.json("tape", "sets")[0]["cartridges"][0]["barcode"]
    library = d.json("library", "show", "vtl")
    vtl, changer = str(d.data / "vtl"), library["changer_url"]
    mtx = str(Path(sys.executable).with_name("tapeline-mtx"))
    where = d.json("media", "show", barcode)
    if where["location"] == "drive":  # the job left it loaded, as backup software does: put it back
        subprocess.run([mtx, "-f", changer, "unload"], check=True, capture_output=True)
        d.run("library", "inventory", "vtl")
        where = d.json("media", "show", barcode)
    slot = where["location_number"]
    mail = 1 + len([line for line in subprocess.run([mtx, "-f", changer, "status"], capture_output=True, text=True,
                                                    check=True).stdout.splitlines() if "Storage Element" in line
                    and "IMPORT/EXPORT" not in line])
    subprocess.run([mtx, "-f", changer, "transfer", str(slot), str(mail)], check=True, capture_output=True)
    for step in (["open"], ["remove", "1"], ["close"]):
        subprocess.run([VTL, "mailslot", vtl, *step], check=True, capture_output=True)
    d.run("library", "inventory", "vtl")

    out = tmp_path / "out"
    job = d.json("tape", "restore", "files", "--to", str(out))["job"]
    deadline = time.monotonic() + 60
    while not any(barcode in a["message"] and "outside" in a["message"] for a in d.json("alerts")):
        assert time.monotonic() < deadline, d.json("job", str(job))
        time.sleep(0.2)
    assert d.json("job", str(job))["state"] == "running"
    for step in (["open"], ["insert", barcode], ["close"]):
        subprocess.run([VTL, "mailslot", vtl, *step], check=True, capture_output=True)
    subprocess.run([mtx, "-f", changer, "transfer", str(mail), str(slot)], check=True, capture_output=True)
    done = d.json("job", str(job))
    deadline = time.monotonic() + 60
    while done["state"] == "running":
        assert time.monotonic() < deadline, done
        time.sleep(0.2)
        done = d.json("job", str(job))
    assert done["state"] == "completed", done
    assert_same_tree(tree_state(src), restored_root(out, src))
    assert not any(barcode in a["message"] for a in d.json("alerts"))  # the alert resolved itself


def test_an_encrypted_direct_set_restores_with_tapeline_and_with_the_decrypt_step(appliance, tmp_path):
    d = appliance
    src = protected(d, tmp_path)
    expected = tree_state(src)
    key = tmp_path / "secret.key"
    d.run("media", "new-key", str(key))
    assert oct(key.stat().st_mode & 0o777) == "0o600" and key.stat().st_size == 32
    d.run("pool", "create", "secret", "--library", "vtl", "--encrypt", str(key))
    job = d.json("tape", "backup", "files", "--pool", "secret", "--direct", "--wait")
    assert job["result"]["tape"]["kind"] == "direct" and job["result"]["verify"]["bad_frames"] == 0
    [s] = d.json("tape", "sets")
    barcode, tape_file = s["cartridges"][0]["barcode"], s["cartridges"][0]["tape_file"]
    restores_identically(d, "files", src, tmp_path / "out", expected=expected)

    tapeline = str(Path(sys.executable).with_name("tapeline"))
    cat = f"{VTL} cat {d.data / 'vtl'} {barcode} {tape_file}"
    sealed = subprocess.run(f"{cat} | zstd -dc | wc -c", shell=True, capture_output=True, text=True).stdout
    assert sealed.strip() in ("", "0")  # without the key, zstd sees only skippable frames: nothing readable
    plain = subprocess.run(f"{cat} | {tapeline} media decrypt --key {key} | zstd -dc", shell=True,
                           capture_output=True, check=True).stdout
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    run = subprocess.run(GNU_TAR_X, input=plain, cwd=by_tar, capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
    assert_same_tree(expected, restored_root(by_tar, src))


def test_two_groups_write_at_once_on_the_two_drives(tmp_path):
    d, hold = holding(tmp_path)
    try:
        protected(d, tmp_path)
        other = tmp_path / "other"
        other.mkdir()
        (other / "big.bin").write_bytes(os.urandom(24 << 20))
        d.run("group", "create", "other", "--source", str(other))
        d.run("point", "other", "--wait")
        first = d.json("tape", "backup", "files", "--pool", "weekly")["job"]
        first_fifo = held_at(hold, first)  # writing, its cartridge in a drive
        second = d.json("tape", "backup", "other", "--pool", "weekly")["job"]
        open(held_at(hold, second), "wb").close()
        assert d.json("job", str(second), "--wait")["state"] == "completed"  # the other drive, meanwhile
        assert d.json("job", str(first))["state"] == "running"
        open(first_fifo, "wb").close()
        assert d.json("job", str(first), "--wait")["state"] == "completed"
        sets = d.json("tape", "sets")
        assert {s["group"] for s in sets} == {"files", "other"} and all(s["state"] == "ok" for s in sets)
        assert len({s["cartridges"][0]["barcode"] for s in sets}) == 2
        out = tmp_path / "out"
        d.run("tape", "restore", "other", "--to", str(out), "--wait")
        assert (restored_root(out, other) / "big.bin").read_bytes() == (other / "big.bin").read_bytes()
    finally:
        d.stop(signal.SIGINT)


def fault(d: Daemon, *args: str) -> None:
    subprocess.run([VTL, "fault", str(d.data / "vtl"), *args], check=True, capture_output=True)


def test_end_of_medium_and_a_media_error_while_writing_through_the_daemon(appliance, tmp_path):
    d = appliance
    src = protected(d, tmp_path)
    expected = tree_state(src)
    # The first cartridge written ends after ~9 MiB (early warning before it): the set continues on the next one.
    fault(d, "early-eom", "A00000L8", "--at", str(9 << 20))
    job = d.json("tape", "backup", "files", "--pool", "weekly", "--wait")
    assert job["result"]["tape"]["cartridges"][:1] == ["A00000L8"] and len(job["result"]["tape"]["cartridges"]) == 2
    [spanned] = d.json("tape", "sets")
    assert [c["tape_file"] for c in spanned["cartridges"]] == [2, 2]
    assert d.json("media", "show", "A00000L8")["state"] == "full"
    # A media error on the cartridge the next set would go on: it is marked damaged and the set written elsewhere.
    current = spanned["cartridges"][1]["barcode"]
    fault(d, "media-error", current, "--at", "12", "--persistent")
    job = d.json("tape", "backup", "files", "--pool", "weekly", "--wait")
    assert job["state"] == "completed" and current not in job["result"]["tape"]["cartridges"]
    assert d.json("media", "show", current)["state"] == "damaged"
    assert any(current in a["message"] and "damaged" in a["message"] for a in d.json("alerts"))
    fault(d, "--clear", "media-error")
    restores_identically(d, "files", src, tmp_path / "out", "--set", str(spanned["id"]), expected=expected)


def test_no_cartridge_to_write_waits_with_an_alert_naming_the_pool(appliance, tmp_path):
    d = appliance
    protected(d, tmp_path)
    for cart in d.json("media", "list"):
        if cart["state"] != "cleaning":
            fault(d, "write-protect", cart["barcode"])
    job = d.json("tape", "backup", "files", "--pool", "weekly")["job"]
    deadline = time.monotonic() + 90
    while not any("pool 'weekly' has no cartridge" in a["message"] for a in d.json("alerts")):
        assert time.monotonic() < deadline, d.json("job", str(job))
        time.sleep(0.3)
    shown = d.json("job", str(job))
    assert shown["state"] == "running"
    # The job's history says what it waits for (`tapeline job ID`), beside the alert.
    assert [e["message"] for e in shown["events"] if e["event"] == "waited"] == [
        "for a cartridge: pool 'weekly' has no cartridge to write to in library 'vtl'"]
    d.run("cancel", str(job))
    assert d.json("job", str(job), "--wait", check=None)["state"] == "cancelled"
    assert [e["event"] for e in d.json("job", str(job))["events"]] == ["queued", "started", "waited", "cancelled"]


def test_a_drive_going_offline_mid_write_moves_the_set_to_the_other_drive(tmp_path):
    d, hold = holding(tmp_path)
    try:
        src = protected(d, tmp_path)
        job = d.json("tape", "backup", "files", "--pool", "weekly")["job"]
        fifo = held_at(hold, job)
        (hold / "tape-writing").unlink()  # the second attempt goes through
        fault(d, "drive-offline", "drive0")
        open(fifo, "wb").close()
        done = d.json("job", str(job), "--wait", check=None)
        assert done["state"] == "completed with warnings", done
        assert any("went offline" in w for w in done["warnings"])
        restores_identically(d, "files", src, tmp_path / "out")
    finally:
        d.stop(signal.SIGINT)


def test_a_direct_set_names_what_it_could_not_read(appliance, tmp_path):
    d = appliance
    src = protected(d, tmp_path)
    shutil.rmtree(src)  # gone between the protection and the direct read
    run = d.run("--json", "tape", "backup", "files", "--pool", "weekly", "--direct", "--wait", check=3)
    job = json.loads(run.stdout)
    assert job["state"] == "completed with warnings"
    assert any(str(src) in w and "not archived" in w for w in job["warnings"]), job["warnings"]


def test_a_tape_job_waiting_for_a_cartridge_holds_no_sync_and_writes_the_point_it_was_asked_for(appliance, tmp_path):
    d = appliance
    src = tmp_path / "src"
    src.mkdir()
    (src / "old.txt").write_bytes(b"as it was when the tape job was asked for\n")
    d.run("group", "create", "files", "--source", str(src))
    d.run("sync", "files", "--wait")  # a "sync" snapshot: the next sync's prune removes it unless it is pinned
    d.run("pool", "create", "weekly", "--library", "vtl", "--retention", "30d")
    expected = tree_state(src)
    for cart in d.json("media", "list"):
        if cart["state"] != "cleaning":
            fault(d, "write-protect", cart["barcode"])
    asked = d.json("tape", "backup", "files", "--pool", "weekly")
    job, point = asked["job"], asked["point"]
    deadline = time.monotonic() + 90
    while not any("pool 'weekly' has no cartridge" in a["message"] for a in d.json("alerts")):
        assert time.monotonic() < deadline, d.json("job", str(job))
        time.sleep(0.3)

    # The group's syncs go on meanwhile, and their prune keeps the point the tape job is to write.
    (src / "new.txt").write_bytes(b"after the tape job was asked for\n")
    synced = d.json("sync", "files", "--wait")
    assert synced["state"] == "completed", synced
    assert d.json("job", str(job))["state"] == "running"
    assert point["snapshot_id"] in [p["snapshot_id"] for p in d.json("points", "files")]

    # A cartridge comes back: the job goes on by itself and writes the point it was asked for, not the newer one.
    fault(d, "--clear", "write-protect")
    inventory = d.json("library", "inventory", "vtl", "--detailed", "--wait", check=None)
    assert inventory["state"] in ("completed", "completed with warnings"), inventory
    done = d.json("job", str(job), "--wait")
    assert done["state"] == "completed", done
    [written] = d.json("tape", "sets", "files")
    assert written["point"] == point["id"] and written["state"] == "ok"
    restores_identically(d, "files", src, tmp_path / "out", expected=expected)
    assert not (tmp_path / "out" / str(src).lstrip("/") / "new.txt").exists()
    # The pin ends with the job: the next sync's prune removes the old point.
    d.run("sync", "files", "--wait")
    assert point["snapshot_id"] not in [p["snapshot_id"] for p in d.json("points", "files")]


def library_server(d: Daemon) -> int:
    """The PID of the daemon's `tapeline-vtl serve` child (the embedded library)."""
    for task in Path(f"/proc/{d.proc.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"serve" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                return int(child)
    raise AssertionError("the daemon runs no library server")


def test_the_library_killed_mid_write_fails_the_set_and_the_next_run_appends_after_the_last_good_set(tmp_path):
    d, hold = holding(tmp_path)
    server = None
    try:
        src = protected(d, tmp_path)
        expected = tree_state(src)
        good = d.json("tape", "backup", "files", "--pool", "weekly")["job"]
        open(held_at(hold, good), "wb").close()
        assert d.json("job", str(good), "--wait")["state"] == "completed"
        [first] = d.json("tape", "sets")
        barcode = first["cartridges"][0]["barcode"]
        next_file = d.json("media", "show", barcode)["next_file"]

        doomed = d.json("tape", "backup", "files", "--pool", "weekly")["job"]
        fifo = held_at(hold, doomed)  # its first frame on tape
        os.kill(library_server(d), signal.SIGKILL)
        open(fifo, "wb").close()
        failed = d.json("job", str(doomed), "--wait", check=None)
        assert failed["state"] == "failed", failed
        assert "library 'vtl'" in failed["reason"] and "tapeline-vtl serve" in failed["result"]["fix"], failed
        assert any("library 'vtl'" in a["message"] for a in d.json("alerts"))
        sets = d.json("tape", "sets")
        assert [s["state"] for s in sets] == ["ok", "failed"] and sets[1]["cartridges"] == []  # no part claimed
        assert d.json("media", "show", barcode)["next_file"] == next_file

        # The library comes back (as tapeline-vtl.service restarts it): the next run writes after the good set.
        listen = next(line.split('"')[1] for line in d.config_file.read_text().splitlines() if "listen" in line)
        server = subprocess.Popen([VTL, "serve", str(d.data / "vtl"), "--listen", listen],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (hold / "tape-writing").unlink()
        deadline = time.monotonic() + 30
        while d.run("library", "inventory", "vtl", check=None).returncode != 0:
            assert time.monotonic() < deadline, "the library did not come back"
            time.sleep(0.5)
        again = d.json("tape", "backup", "files", "--pool", "weekly", "--wait")
        assert again["state"] == "completed", again
        ok = [s for s in d.json("tape", "sets") if s["state"] == "ok"]
        assert [(c["barcode"], c["tape_file"]) for c in ok[1]["cartridges"]] == [(barcode, next_file)]
        restores_identically(d, "files", src, tmp_path / "first", "--set", str(first["id"]), expected=expected)
        restores_identically(d, "files", src, tmp_path / "again", "--set", str(ok[1]["id"]), expected=expected)
    finally:
        d.stop(signal.SIGINT)
        if server is not None:
            server.terminate()
            server.wait(10)


def test_a_library_down_before_the_job_fails_it_at_once_naming_the_library_and_how_to_start_it(tmp_path):
    d = up(tmp_path)
    server = None
    try:
        protected(d, tmp_path)
        listen = next(line.split('"')[1] for line in d.config_file.read_text().splitlines() if "listen" in line)
        os.kill(library_server(d), signal.SIGKILL)
        said = f"library 'vtl' does not answer at stream+socket://{listen}/changer (connection refused at {listen})"
        start = "start its server: `systemctl start tapeline-vtl` (or `tapeline up`"

        backup = d.run("tape", "backup", "files", "--pool", "weekly", "--wait", check=1)
        [line] = backup.stderr.strip().splitlines()
        assert said in line and start in line and "token" not in line
        [failed] = d.json("tape", "sets")
        assert failed["state"] == "failed"  # not left `writing` until the next start
        inventory = d.run("--json", "library", "inventory", "vtl", check=1)
        error = json.loads(inventory.stdout)
        assert (error["error"], error["exit_code"]) == (said, 1) and error["fix"].startswith(start)
        [alert] = [a for a in d.json("alerts", check=None) if a["object_kind"] == "library"]
        assert (alert["object_name"], alert["message"], alert["severity"]) == ("vtl", said, "error")

        # Started again: the next inventory finds it, and the library's alert is resolved.
        server = subprocess.Popen([VTL, "serve", str(d.data / "vtl"), "--listen", listen],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while d.run("library", "inventory", "vtl", check=None).returncode != 0:
            assert time.monotonic() < deadline, "the library did not come back"
            time.sleep(0.5)
        assert not [a for a in d.json("alerts", check=None) if a["object_kind"] == "library"]
    finally:
        d.stop(signal.SIGINT)
        if server is not None:
            server.terminate()
            server.wait(10)
