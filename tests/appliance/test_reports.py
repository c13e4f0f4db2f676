"""Reports through a real daemon and the `tapeline report` command, as an operator reads them."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest

from daemon_harness import make_daemon


@pytest.fixture
def synced(tmp_path):
    """A group synced and one whose source is gone (its sync failed: no retry here, those are the engine's tests)."""
    d = make_daemon(tmp_path, None)
    d.config_file.write_text(d.config_file.read_text() + "[jobs]\nretries = 0\n")
    d.start()
    try:
        yield from _synced(d, tmp_path)
    finally:
        assert d.stop() == 0


def _synced(d, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"x" * 200_000)
    d.run("group", "create", "files", "--source", str(src), "--sync", "1h")
    d.run("sync", "files", "--wait")
    gone = tmp_path / "gone"
    gone.mkdir()
    d.run("group", "create", "lost", "--source", str(gone))
    gone.rmdir()
    d.run("sync", "lost", "--wait", check=None)
    yield d


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_report_list_names_every_report(sqlite_daemon):
    names = [r["name"] for r in sqlite_daemon.json("report", "list")]
    assert names[:4] == ["protection", "jobs", "storage", "tape"] and "restore-needs" in names
    assert "protection" in sqlite_daemon.run("report", "list").stdout


def test_protection_says_which_group_is_fine_and_which_needs_a_person(synced):
    d = synced
    text = d.run("report", "protection").stdout
    assert "Protection status" in text and "1 group needs a person" in text
    table = {r["group"]: r for r in rows(d.run("report", "protection", "--format", "csv").stdout)}
    point = d.json("points", "files")[-1]
    assert table["files"]["status"] == "ok" and table["files"]["points"] == "1"
    assert datetime.fromisoformat(table["files"]["newest good point"]) == datetime.fromisoformat(point["time"])
    assert table["files"]["syncs every"] == "3600" and table["files"]["last sync"] == "completed"
    assert table["lost"]["status"] == "no point" and table["lost"]["newest good point"] == ""
    assert table["lost"]["last sync"].startswith("failed: ") and int(table["lost"]["open alerts"]) >= 1


def test_the_job_history_holds_every_job_of_the_period(synced):
    d = synced
    jobs = d.json("jobs")
    table = rows(d.run("report", "jobs", "--format", "csv", "--days", "1").stdout)
    assert sorted(int(r["id"]) for r in table) == sorted(j["id"] for j in jobs)
    by_id = {int(r["id"]): r for r in table}
    for j in jobs:
        assert by_id[j["id"]]["state"] == j["state"] and by_id[j["id"]]["kind"] == j["kind"]
    text = d.run("report", "jobs").stdout
    assert "Runs by group and kind" in text and "1 failed" in text


def test_storage_growth_ends_with_what_the_groups_hold_and_the_html_has_its_chart(synced, tmp_path):
    d = synced
    growth = rows(d.run("report", "storage", "--format", "csv", "--days", "3").stdout)
    assert len(growth) == 3 and growth[-1]["day"] == datetime.now().date().isoformat()
    assert int(growth[-1]["files"]) == d.json("points", "files")[-1]["bytes"] == 200_000
    assert growth[-1]["lost"] == "" and int(growth[-1]["protected, all groups"]) == 200_000
    assert int(growth[-1]["store (estimated)"]) > 0

    out = tmp_path / "storage.html"
    answer = d.json("report", "storage", "--format", "html", "--out", str(out))
    assert answer["out"] == str(out)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    svg = page[page.index("<svg"):page.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)  # well-formed SVG, inline
    assert root.tag.endswith("svg")
    assert "files" in svg and "protected, all groups" in svg  # the lines, named in the legend
    assert not re.search(r'(href|src)="(https?:)?//|@import|url\((https?:)?//', page)  # nothing loaded from anywhere


def test_tape_report_with_no_library_says_so(synced):
    text = synced.run("report", "tape").stdout
    assert "no tape pool configured" in text and "no cartridge known" in text


def test_bad_report_requests_name_the_fix(sqlite_daemon, tmp_path):
    d = sqlite_daemon
    bad = d.run("report", "weekly", check=1)
    assert "no report named 'weekly'" in bad.stderr and "protection, jobs, storage, tape" in bad.stderr
    assert d.run("report", "jobs", "--format", "pdf", check=2).stderr.startswith("tapeline: ")
    assert d.run("report", "jobs", "--days", "0", check=2).stderr.startswith("tapeline: ")
    missing = tmp_path / "no" / "such" / "dir" / "r.txt"
    err = d.run("report", "jobs", "--out", str(missing), check=1).stderr
    assert "cannot write the report" in err and "--out" in err and not missing.parent.exists()


def test_mail_without_mail_configured_says_how_to_configure_it(sqlite_daemon):
    bad = sqlite_daemon.run("report", "protection", "--mail", check=2)
    assert "mail is not configured" in bad.stderr and "[mail]" in bad.stderr


def test_reports_to_mail_are_on_the_schedule_and_a_bad_name_stops_the_daemon(tmp_path):
    d = make_daemon(tmp_path, None)
    base = d.config_file.read_text()
    d.config_file.write_text(base + '[reports]\nmail = ["protection", "jobs"]\nmail_at = "06:30"\n')
    d.start()
    try:
        entries = {e["id"]: e for e in d.client().schedule()}
        assert {"report:protection", "report:jobs"} <= set(entries)
        when = datetime.fromisoformat(entries["report:jobs"]["next_run"]).astimezone()
        assert (when.hour, when.minute) == (6, 30)
    finally:
        assert d.stop() == 0
    d.config_file.write_text(base + '[reports]\nmail = ["weekly"]\n')
    with pytest.raises(AssertionError, match="reports.mail names no report 'weekly'"):
        d.start(timeout=20)
