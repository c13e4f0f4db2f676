"""Browsing recovery points through a real daemon (SQLite and PostgreSQL): one directory of any point with each
entry's size, time and type; files found by name across the points with every version; `tapeline ls` and
`tapeline find` print the same, and their errors name the fix."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _wait(api, job_id: int) -> dict:
    deadline = time.monotonic() + 60
    while (job := api.job(job_id))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job["state"] == "completed", job
    return job


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "docs" / "report.txt").write_bytes(b"first\n")
    (src / "docs" / "deep" / "notes.txt").write_bytes(b"deep\n")
    (src / "docs0").mkdir()  # sorts right after "docs/" bytewise: must not show inside docs
    (src / "docs0" / "x").write_bytes(b"x")
    (src / "top.conf").write_bytes(b"top\n")
    os.symlink("top.conf", src / "link")
    return src


def test_a_directory_of_any_point_lists_its_entries_with_size_time_and_type(daemon, tmp_path):
    src = _tree(tmp_path)
    with daemon.client() as api:
        api.create_group("qa", [str(src)])
        first = _wait(api, api.point("qa")["job"])["result"]["point"]["id"]
        (src / "docs" / "report.txt").write_bytes(b"second, longer\n")
        (src / "docs" / "added.txt").write_bytes(b"new\n")
        os.remove(src / "top.conf")
        second = _wait(api, api.point("qa")["job"])["result"]["point"]["id"]

        roots = api.tree("qa")
        assert [(e["path"], e["kind"]) for e in roots["entries"]] == [(str(src), "dir")]
        assert roots["point"]["id"] == second

        old = api.tree("qa", str(src / "docs"), point=first)
        assert [(e["name"], e["kind"]) for e in old["entries"]] == [("deep", "dir"), ("report.txt", "file")]
        assert old["entries"][1]["size"] == 6
        report = old["entries"][1]
        assert report["path"] == str(src / "docs" / "report.txt")
        assert report["mtime_ns"] > 0
        new = api.tree("qa", str(src / "docs"))
        assert [(e["name"], e["size"]) for e in new["entries"] if e["kind"] == "file"] == [
            ("added.txt", 4), ("report.txt", 15)]

        top_then = {e["name"]: e["kind"] for e in api.tree("qa", str(src), point=first)["entries"]}
        assert top_then == {"docs": "dir", "docs0": "dir", "link": "symlink", "top.conf": "file"}
        assert "top.conf" not in {e["name"] for e in api.tree("qa", str(src))["entries"]}


def test_a_file_name_is_found_across_points_with_every_version(daemon, tmp_path):
    src = _tree(tmp_path)
    with daemon.client() as api:
        api.create_group("qa", [str(src)])
        first = _wait(api, api.point("qa")["job"])["result"]["point"]["id"]
        (src / "docs" / "report.txt").write_bytes(b"second, longer\n")
        second = _wait(api, api.point("qa")["job"])["result"]["point"]["id"]
        os.remove(src / "docs" / "report.txt")
        _wait(api, api.point("qa")["job"])

        found = api.find("qa", "REPORT")  # part of the name, any case
        versions = [(v["path"], v["size"], v["first_point"]["id"], v["last_point"]["id"], v["current"])
                    for v in found["versions"]]
        assert versions == [(str(src / "docs" / "report.txt"), 6, first, first, False),
                            (str(src / "docs" / "report.txt"), 15, second, second, False)]
        assert found["truncated"] is False
        assert {v["path"] for v in api.find("qa", "*.txt")["versions"]} == {
            str(src / "docs" / "report.txt"), str(src / "docs" / "deep" / "notes.txt")}
        limited = api.find("qa", "*.txt", limit=1)
        assert len(limited["versions"]) == 1 and limited["truncated"] is True
        assert api.find("qa", "nothing-like-this")["versions"] == []


def test_browse_errors_name_the_cause_and_the_fix(sqlite_daemon, tmp_path):
    src = _tree(tmp_path)
    d = sqlite_daemon
    d.run("group", "create", "qa", "--source", str(src))
    err = d.json("ls", "qa", check=1)
    assert err["type"] == "NotFound" and "sync qa" in err["fix"]
    d.run("point", "qa", "--wait")
    for args, kind, words in ((["ls", "qa", "/elsewhere"], "NotFound", "not under a source"),
                              (["ls", "qa", str(src / "top.conf")], "UsageError", "not a directory"),
                              (["ls", "qa", str(src / "gone")], "NotFound", "not in recovery point"),
                              (["ls", "qa", str(src), "--point", "999"], "NotFound", "no recovery point 999"),
                              (["find", "qa", " "], "UsageError", "pattern is empty"),
                              (["ls", "ghost"], "NotFound", "ghost")):
        err = d.json(*args, check=2 if kind == "UsageError" else 1)
        assert err["type"] == kind and words in err["error"] and err["fix"], (args, err)


def test_ls_and_find_print_what_a_person_reads(sqlite_daemon, tmp_path):
    src = _tree(tmp_path)
    d = sqlite_daemon
    d.run("group", "create", "qa", "--source", str(src))
    d.run("point", "qa", "--wait")
    out = d.run("ls", "qa", str(src / "docs")).stdout
    assert "report.txt" in out and "deep/" in out and "6 B" in out
    assert d.run("ls", "qa", str(src / "docs"), "--point", "latest").stdout == out
    out = d.run("find", "qa", "notes").stdout
    assert str(src / "docs" / "deep" / "notes.txt") in out and "current" in out
    assert d.json("find", "qa", "notes")["versions"][0]["kind"] == "file"


def test_names_that_are_not_utf8_are_listed_and_browsed(sqlite_daemon, tmp_path):
    src = tmp_path / "src"
    odd_dir = os.fsdecode(bytes(src) + b"/d\xff")
    os.makedirs(odd_dir)
    Path(odd_dir, "in.txt").write_bytes(b"in\n")
    with sqlite_daemon.client() as api:
        api.create_group("qa", [str(src)])
        _wait(api, api.point("qa")["job"])
        assert [e["path"] for e in api.tree("qa", str(src))["entries"]] == [odd_dir]
        assert [e["name"] for e in api.tree("qa", odd_dir)["entries"]] == ["in.txt"]
        assert api.find("qa", "in.txt")["versions"][0]["path"] == odd_dir + "/in.txt"


def test_a_path_under_a_source_as_the_index_holds_it():
    """One rule for browsing and `versions`: the root itself is b"", a sibling that shares the prefix is not under it,
    and a path under nested sources belongs to the deepest."""
    from appliance.catalog.browse import _locate
    from appliance.catalog.points import relative_path
    assert relative_path("/", "/") == b"" and relative_path("/", "/etc/hosts") == b"etc/hosts"
    assert relative_path("/srv/a", "/srv/a") == b"" and relative_path("/srv/a", "/srv/a/b/c") == b"b/c"
    assert relative_path("/srv/a", "/srv/ab") is None and relative_path("/srv/a", "/srv") is None
    assert _locate([(1, "/srv"), (2, "/srv/a"), (3, "/var")], "/srv/a/b") == (2, "/srv/a", b"b")
    assert _locate([(1, "/srv")], "/var/x") is None
