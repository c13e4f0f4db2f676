"""What an operator reads: one line, the cause and one fix, the real group name, no repeats, a capped warning list
with the right count. Against a real daemon, plus the counting rules on their own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from appliance.ops.messages import capped, count_warnings, split_fix
from appliance.text import plural
from appliance.text import text_time


def test_plurals_and_the_one_text_time():
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "entry", "entries") + ", " + plural(3, "entry", "entries") == "1 entry, 3 entries"
    t = datetime(2026, 11, 30, 14, 5, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    local = t.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # the reader's zone, to the second
    assert text_time(t) == text_time(t.isoformat()) == text_time("2026-11-30T12:05:09.123456Z") == local
    assert text_time(None) == "-"


def test_warnings_are_counted_with_the_ones_not_kept_and_printed_capped():
    kept = [f"f{i}: unreadable" for i in range(1000)] + ["... and 2001 more warnings", "consistency check: x"]
    assert count_warnings(kept) == 3002
    shown = capped(kept, 7)
    assert shown[:20] == kept[:20] and shown[20:] == ["2982 more: see `tapeline job 7 --json`"]
    assert capped(["a", "b"], 7) == ["a", "b"]


def test_a_reason_that_names_its_fix_is_split_there():
    assert split_fix("source /m is empty where the last sync had 20 files: check that it is mounted; if they were "
                     "deleted, run `tapeline sync mnt --accept-deletions`") == (
        "source /m is empty where the last sync had 20 files",
        "check that it is mounted; if they were deleted, run `tapeline sync mnt --accept-deletions`")
    assert split_fix("disk full") == ("disk full", None)


def test_a_refused_sync_names_one_fix_and_no_warning_repeats_it(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "mnt"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_text(str(i))
    d.run("group", "create", "mnt", "--source", str(src))
    d.run("sync", "mnt", "--wait")
    for f in src.iterdir():
        f.unlink()
    failed = d.run("sync", "mnt", "--wait", check=1)
    last = failed.stderr.splitlines()[-1]
    assert last.count("`tapeline sync mnt --accept-deletions`") == 1 and "fix the cause" not in last, last
    assert "warning:" not in failed.stdout, failed.stdout
    [alert] = d.json("alerts")
    assert alert["fix"].count("tapeline sync mnt --accept-deletions") == 1
    assert "accept-deletions" not in alert["message"]


def test_restore_messages_name_the_group_and_the_option(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i:02}.txt").write_text(f"file {i}\n")
    d.run("group", "create", "qa", "--source", str(src))
    point = d.json("point", "qa", "--wait")["result"]["point"]
    out = tmp_path / "out"
    d.run("restore", "qa", "--to", str(out), "--wait")
    again = d.run("restore", "qa", "--to", str(out), "--wait", check=3)
    job_id = again.stdout.split()[1]
    warnings = [line for line in again.stdout.splitlines() if line.startswith("  warning: ")]
    assert len(warnings) == 21 and warnings[-1] == f"  warning: 10 more: see `tapeline job {job_id} --json`"
    assert "(restore with `--overwrite` to replace it)" in warnings[0]
    shown = d.run("job", job_id).stdout
    assert shown.count("  warning ") == 21 and f"10 more: see `tapeline job {job_id} --json`" in shown
    assert len(d.json("job", job_id)["warnings"]) == 30

    # A damaged manifest: the restore fails on one line naming the real group, with the fix once.
    [manifest] = (d.data / "store").glob(f"snapshots/*/{point['snapshot_id']}.snap")
    manifest.write_bytes(manifest.read_bytes()[:40])
    failed = d.run("restore", "qa", "--to", str(tmp_path / "out2"), "--wait", check=1)
    last = failed.stderr.splitlines()[-1]
    assert "GROUP" not in failed.stderr + failed.stdout and "`tapeline check qa --full`" in last, last
    assert last.count("damaged manifest") == 1 and last.count("restore from another recovery point") == 1, last
    assert "warning:" not in failed.stdout, failed.stdout
