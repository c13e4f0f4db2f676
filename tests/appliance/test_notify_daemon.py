"""Notifications through a real daemon (`tapeline serve`): `tapeline mail test`, and a failed job's alert mailed and
posted to the webhook with its fix."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest

from daemon_harness import make_daemon
from mail_harness import MailServer, WebhookReceiver, free_port, wait_until
from test_daemon_faults import _fill


@pytest.fixture
def receivers():
    server, hook = MailServer().start(), WebhookReceiver().start()
    yield server, hook
    server.stop()
    hook.stop()


def daemon_with_mail(tmp_path, port: int, webhook: str = "", catalog_url: str | None = None):
    d = make_daemon(tmp_path, catalog_url)
    with open(d.config_file, "a") as f:
        f.write(f'[mail]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nsender = "tapeline@example.com"\n'
                f'recipients = ["ops@example.com"]\nsummary = ""\n[webhook]\nurl = "{webhook}"\n'
                # a missing source is worth retries (it may be mounted again): here it fails at once
                "[jobs]\nretries = 0\n")
    return d.start()


def test_a_failed_sync_is_mailed_and_posted_with_its_fix(tmp_path, receivers):
    server, hook = receivers
    d = daemon_with_mail(tmp_path, server.port, hook.url)
    try:
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.txt").write_text("a\n")
        d.run("group", "create", "docs", "--source", str(src))
        d.run("sync", "docs", "--wait")
        shutil.rmtree(src)
        d.run("sync", "docs", "--wait", check=1)
        (_, rcpts, msg, _), = server.wait(1)
        post, = hook.wait(1)
        alert, = d.json("alerts")
    finally:
        assert d.stop() == 0
    assert rcpts == ["ops@example.com"]
    assert msg["Subject"].startswith("[Tapeline ") and "sync of group 'docs' failed" in msg["Subject"]
    body = msg.get_content().replace("\r\n", "\n")
    # The alert `tapeline alerts` shows, with its fix, as the operator reads it there.
    assert f"source {src}" in alert["message"] and alert["fix"]
    assert f"  {alert['message']}\n  Fix: {alert['fix']}\n" in body and "tapeline alerts ack ID" in body
    posted, = post["alerts"]
    assert (posted["id"], posted["group"], posted["severity"], posted["message"], posted["fix"]) == (
        alert["id"], "docs", "error", alert["message"], alert["fix"])


def test_a_report_mailed_through_the_daemon_arrives_with_its_html_and_csv(tmp_path, receivers):
    server, _ = receivers
    d = daemon_with_mail(tmp_path, server.port)
    try:
        d.run("report", "protection", "--mail")
        (_, _, msg, _), = server.wait(1)
    finally:
        assert d.stop() == 0
    assert "] " in msg["Subject"] and msg.get_body(("plain",)) and msg.get_body(("html",))
    csv, = [p for p in msg.iter_attachments() if p.get_filename().endswith(".csv")]
    assert csv.get_content_type() == "text/csv"


def test_mail_test_through_the_daemon(tmp_path, receivers):
    server, _ = receivers
    d = daemon_with_mail(tmp_path, server.port)
    try:
        out = d.run("mail", "test").stdout
        assert out == f"test mail sent through 127.0.0.1:{server.port} (none) to ops@example.com\n"
        assert server.wait(1)[0][2]["Subject"].endswith("] test mail")
        assert d.json("mail", "test")["recipients"] == ["ops@example.com"]
    finally:
        assert d.stop() == 0


def test_mail_test_with_the_server_down_or_no_mail_configured_is_one_line_with_the_fix(tmp_path):
    port = free_port()
    (tmp_path / "down").mkdir()
    d = daemon_with_mail(tmp_path / "down", port)
    try:
        proc = d.run("mail", "test", check=1)
        assert proc.stderr == (f"tapeline: the mail server 127.0.0.1:{port} refused the connection: check mail.host "
                               "and mail.port, and that the mail server runs\n")
        err = d.json("mail", "test", check=1)
        assert (err["exit_code"], err["fix"]) == (1, "check mail.host and mail.port, and that the mail server runs")
    finally:
        assert d.stop() == 0
    (tmp_path / "off").mkdir()
    d = make_daemon(tmp_path / "off", None).start()
    try:
        proc = d.run("mail", "test", check=2)
        assert proc.stderr.startswith("tapeline: mail is not configured (mail.host is empty): set [mail] host")
    finally:
        assert d.stop() == 0


def test_a_full_disk_under_the_catalog_is_mailed_though_no_alert_can_be_stored(tmp_path, receivers):
    server, _ = receivers
    cat_dir = tmp_path / "catalog"
    cat_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(cat_dir)], capture_output=True,
                             text=True)
    assert mounted.returncode == 0, f"this test needs a tmpfs of its own (run as root): {mounted.stderr}"
    d = None
    try:
        d = daemon_with_mail(tmp_path, server.port, catalog_url=f"sqlite:///{cat_dir}/catalog.sqlite")
        probe = sqlite3.connect(cat_dir / "catalog.sqlite", isolation_level=None, timeout=30)
        assert probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # every write needs new space
        probe.close()
        (tmp_path / "src").mkdir()
        _fill(cat_dir)
        d.run("group", "create", "x", "--source", str(tmp_path / "src"), check=1)
        (_, _, msg, _), = server.wait(1)
        assert "the catalog cannot be written" in msg["Subject"]
        assert f"Fix: free space under {cat_dir}" in msg.get_content().replace("\r\n", "\n")
        (cat_dir / "filler").unlink()
        wait_until(lambda: not any(a["message"].startswith("the catalog cannot be written")
                                   for a in d.json("alerts")), what="the catalog writable again")
    finally:
        try:
            if d is not None:
                assert d.stop() == 0
        finally:
            subprocess.run(["umount", "-l", str(cat_dir)])
