"""What a person reads from the real `tapeline` command against a real daemon: result lines with counts and sizes
(the same on a terminal and off it), where a restore put the files, plurals, `--point latest-N`, the forms `--at`
takes, one time format in text and one in JSON."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import time

from daemon_harness import TAPELINE, Daemon

from appliance.commands.output import progress_line

JSON_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
TEXT_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def json_times(doc, key=""):
    """Every value of a key that names a time, anywhere in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from json_times(v, k)
    elif isinstance(doc, list):
        for v in doc:
            yield from json_times(v, key)
    elif key in ("time", "created", "started", "finished", "latest_point", "acknowledged_at", "resolved", "next_run") and doc:
        yield doc


def on_a_terminal(d: Daemon, *args: str) -> str:
    """stdout of `tapeline ARGS` whose stderr is a terminal (the progress bar's side)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([TAPELINE, "--data", str(d.data), *args], stdout=subprocess.PIPE, stderr=follower,
                              text=True, timeout=120, env={**os.environ, "TAPELINE_DATA": "", "COLUMNS": "100"})
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    return proc.stdout


def test_the_readme_walkthrough_reads_right(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = tmp_path / "docs"
    src.mkdir()
    (src / "report.txt").write_text("first draft\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    quiet = ("--sync", "7d", "--points", "")  # no scheduled job may come between these (IDs and counts are exact)
    d.run("group", "create", "other", "--source", str(other), *quiet)
    d.run("point", "other", "--wait")  # point IDs count across groups: docs' first point is not 1
    d.run("group", "create", "docs", "--source", str(src), *quiet)

    first = d.run("point", "docs", "--wait")  # not a terminal: the result line a terminal gets too
    assert first.stdout == "job 2 point docs: completed: recovery point 2: 1 file (12 B), 1 changed, 12 B new\n"
    (src / "report.txt").write_text("second draft!\n")
    assert on_a_terminal(d, "point", "docs", "--wait") == (
        "job 3 point docs: completed: recovery point 3: 1 file (14 B), 1 changed, 14 B new\n")
    shown = d.run("job", "3").stdout
    assert "\n  scan       2 entries, 1 file read, 14 B new, " in shown and "sync" not in shown  # a point, not a sync
    assert re.search(f"^group   docs: 2 points, newest {TEXT_TIME}, last point completed {TEXT_TIME}$", d.run("status").stdout,
                     re.M)
    assert re.search(f"^group   other: 1 point, newest {TEXT_TIME}, ", d.run("status").stdout, re.M)

    to = tmp_path / "restored"
    before = d.run("restore", "docs", "--point", "latest-1", str(src / "report.txt"), "--to", str(to), "--wait")
    dest = to / str(src).lstrip("/") / "report.txt"
    assert before.stdout == f"job 4 restore docs: completed: restored 1 file (12 B) to {dest}\n"
    assert dest.read_text() == "first draft\n"
    newest = d.run("restore", "docs", "--point", "latest", "--to", str(tmp_path / "all"), "--wait").stdout
    assert newest.endswith(f"restored 1 file (14 B) to {tmp_path / 'all'} (under their original paths)\n")
    one = d.run("restore", "docs", "--point", "1", "--to", str(to), check=1)  # 1 is the other group's
    assert one.stderr == ("tapeline: group 'docs' has no recovery point 1: its points are 2, 3 "
                          "(`tapeline points docs`), or give --point latest\n")
    far = d.run("restore", "docs", "--point", "latest-2", "--to", str(to), check=1)
    assert far.stderr == ("tapeline: group 'docs' has 2 recovery points, so no --point latest-2: "
                          "list them with `tapeline points docs`\n")
    queued = d.run("restore", "docs", "--point", "latest-1", "--to", str(tmp_path / "q")).stdout
    assert re.fullmatch(f"restoring from recovery point 2 \\({TEXT_TIME}\\) into {tmp_path / 'q'}\n"
                        "job 6: restore of docs queued; follow it with `tapeline job 6`\n", queued), queued


def _group_of_one_file(d, tmp_path):
    """Group `g` over a new source holding one file; returns the source."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    d.run("group", "create", "g", "--source", str(src))
    return src


def test_at_takes_the_forms_it_documents(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    _group_of_one_file(d, tmp_path)
    d.run("point", "g", "--wait")
    time.sleep(1.1)  # the forms below are to the second (or minute): the point must be at least a second old
    now = time.localtime()
    for at in (time.strftime("%Y-%m-%d %H:%M:%S", now), time.strftime("%Y-%m-%dT%H:%M:%S%z", now),
               time.strftime("%H:%M:%S", now), "1s ago"):
        answer = d.json("restore", "g", "--at", at, "--to", str(tmp_path / "r"))
        assert answer["point"]["kind"] == "point", at
        d.run("job", str(answer["job"]), "--wait", check=None)
    old = d.run("restore", "g", "--at", "2d ago", "--to", str(tmp_path / "r"), check=1)
    assert re.fullmatch(f"tapeline: group 'g' has no recovery point at or before {TEXT_TIME}: its oldest is "
                        f"{TEXT_TIME}; see `tapeline points g`\n", old.stderr), old.stderr
    bad = d.run("restore", "g", "--at", "yesterday", "--to", str(tmp_path / "r"), check=2)
    assert bad.stderr.startswith("tapeline: --at 'yesterday' is not a time: write it as \"YYYY-MM-DD HH:MM[:SS]\"")
    assert '"HH:MM" (today), or "DURATION ago"' in " ".join(d.run("restore", "--help").stdout.split())


def test_one_time_format_in_json_and_one_in_text(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    src = _group_of_one_file(d, tmp_path)
    d.run("sync", "g", "--wait")
    shutil.rmtree(src)  # the next sync fails: an alert
    d.run("sync", "g", "--wait", check=1)
    docs = [d.json(*args, check=None) for args in (("status",), ("jobs",), ("job", "1"), ("points", "g"),
                                                     ("alerts",), ("group", "show", "g"))]
    docs.append(d.json("versions", str(src / "f")))
    found = [t for doc in docs for t in json_times(doc)]
    assert len(found) >= 12 and all(JSON_TIME.match(t) for t in found), found
    for args in (("status",), ("jobs",), ("job", "1"), ("points", "g"), ("alerts",), ("group", "show", "g"),
                 ("versions", str(src / "f"))):
        text = d.run(*args, check=None).stdout
        assert re.search(TEXT_TIME, text), (args, text)
        assert not re.search(r"\d{4}-\d\d-\d\dT\d|\d\d:\d\d:\d\d\.\d|\+00:00", text), (args, text)


def test_a_progress_line_gives_no_count_without_its_unit():
    """`--wait` off a terminal, and `tapeline job ID`: a count without a total has no unit (items for a sync, bytes
    for a restore from tape), so it shows only where no message says how far the job got."""
    sync = {"state": "running", "progress_done": 10240, "progress_total": None,
            "progress_message": "10240 items scanned, 109 MiB read"}
    assert progress_line(sync) == "10240 items scanned, 109 MiB read"
    from_tape = {"state": "running", "progress_done": 8541379, "progress_total": None,
                 "progress_message": "var/tmp/src/doc/update.sh"}
    assert progress_line(from_tape) == "var/tmp/src/doc/update.sh"
    restore = {"state": "running", "progress_done": 60, "progress_total": 100, "progress_message": "ip6t_opts.h"}
    assert progress_line(restore) == "60% ip6t_opts.h"
    assert progress_line({"state": "running", "progress_done": 7, "progress_total": None}) == "7"
