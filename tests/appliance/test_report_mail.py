"""Reports by mail, received by a real SMTP server on loopback (aiosmtpd): `tapeline report NAME --mail` through a
real daemon, and a scheduled report-mail job run by an in-process Appliance as the schedule runs it."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from appliance.config import load
from appliance.daemon import Appliance
from appliance.ops import scheduler as scheduler_mod
from appliance.ops.jobs import list_jobs
from daemon_harness import make_daemon
from mail_harness import MailServer


@pytest.fixture
def smtp():
    server = MailServer().start()
    yield server
    server.stop()


def mail_config(port: int, reports: str = "") -> str:
    return (f'[mail]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nsender = "tapeline@example.com"\n'
            f'recipients = ["ops@example.com"]\nsummary = ""\n[jobs]\nretries = 0\n{reports}')


def parts(msg):
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    attached = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    return text, html, attached


def test_a_mailed_report_has_the_text_the_html_with_its_chart_and_the_csv(tmp_path, smtp):
    d = make_daemon(tmp_path, None)
    d.config_file.write_text(d.config_file.read_text() + mail_config(smtp.port))
    d.start()
    try:
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.bin").write_bytes(b"z" * 150_000)
        d.run("group", "create", "files", "--source", str(src))
        d.run("sync", "files", "--wait")
        out = d.run("report", "storage", "--mail", "--days", "3").stdout
        assert "queued for ops@example.com" in out
        [(_, rcpts, msg, _)] = smtp.wait(1)
    finally:
        assert d.stop() == 0
    day = datetime.now().date().isoformat()
    assert rcpts == ["ops@example.com"] and msg["Subject"].endswith(f"] Storage use and growth {day}")
    text, html, attached = parts(msg)
    assert "Growth by day" in text and "files" in text
    assert "<svg" in html and "<script" not in html
    growth = list(csv.DictReader(io.StringIO(attached[f"tapeline-storage-{day}.csv"])))
    assert growth[-1]["day"] == day and growth[-1]["files"] == "150000"


def test_a_scheduled_report_mail_is_a_job_that_sends_it(tmp_path, smtp):
    data = tmp_path / "data"
    config = tmp_path / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\n[defaults]\npoints = []\n'
                      + mail_config(smtp.port, '[reports]\nmail = ["protection"]\n'))
    appliance = Appliance(load(config, read_default_file=False))
    appliance.open()
    appliance.start()
    try:
        assert "report:protection" in {e["id"] for e in appliance.scheduler.entries()}
        scheduler_mod.run_scheduled_report("protection")  # what the entry runs at mail_at
        [job] = list_jobs(appliance.catalog)
        job = appliance.engine.wait(job.id, 30)
        assert (job.kind, job.state, job.requested_by) == ("report-mail", "completed", "schedule")
        [(_, _, msg, _)] = smtp.wait(1)
    finally:
        appliance.stop()
    text, html, attached = parts(msg)
    assert "Protection status" in msg["Subject"] and "no group yet" in text and "<h1>Protection status" in html
    assert list(attached) == [f"tapeline-protection-{datetime.now().date().isoformat()}.csv"]
