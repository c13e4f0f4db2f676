"""What an operator sees in `tapeline status` while notifications cannot leave: the outbox (what waits, since
when, the last delivery error), the mail server's alert, and a non-zero exit once the outbox has been stuck longer
than an hour even with every alert acknowledged. A real daemon, a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import os
import re
import shutil
import time

from mail_harness import MailServer, free_port, wait_until
from test_notify_daemon import daemon_with_mail

from appliance.config import load
from appliance.daemon import Appliance
from appliance.ops.outbox import Outbox
from appliance.text import text_time


def test_status_shows_the_outbox_and_says_a_person_is_needed_while_it_is_stuck(tmp_path):
    port = free_port()  # nothing listens there yet: the mail server is down
    d = daemon_with_mail(tmp_path, port)
    server, started = MailServer(port=port), set()
    try:
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.txt").write_text("a\n")
        d.run("group", "create", "docs", "--source", str(src), "--sync", "7d", "--points", "")
        d.run("sync", "docs", "--wait")
        shutil.rmtree(src)
        d.run("sync", "docs", "--wait", check=1)  # an alert, whose mail cannot leave
        st = wait_until(lambda: (s := d.json("status", check=1))["outbox"]["last_error"] and s, what="a failed try")
        box = st["outbox"]
        assert (box["mail"], box["webhook"], box["last_error"]["channel"], box["stuck"]) == (1, 0, "mail", False)
        assert "refused the connection" in box["last_error"]["message"]
        [mail_alert] = [a for a in st["alerts"] if a["object_kind"] == "mail server"]
        assert mail_alert["object_name"] == f"127.0.0.1:{port}" and mail_alert["severity"] == "error"
        shown = d.run("status", check=1).stdout
        [line] = [x for x in shown.splitlines() if x.startswith("outbox")]
        # (the mail server's own alert may have joined the sync's meanwhile: one mail or two)
        assert re.match(rf"outbox  [12] mails? waiting since {text_time(box['oldest'])} \(\d+ s\)", line), line
        assert "; last delivery error at " in line and "refused the connection" in line
        assert "notification mail cannot be sent" in shown and "needs attention" in shown

        # The mail server's alert is news too: its mail waits beside the sync's.
        wait_until(lambda: d.json("status", check=1)["outbox"]["mail"] == 2, what="the mail alert's own mail")
        # Every alert acknowledged: a short outage is no longer a person's business...
        for alert in d.json("alerts"):
            d.run("alerts", "ack", str(alert["id"]))
        assert d.run("status", check=0).stdout.splitlines()[-1] == "all good"
        # ... but a notification waiting for over an hour is: nobody hears of new alerts.
        outbox = d.data / "outbox"
        waiting = sorted(p.name for p in outbox.glob("*.mail"))
        old = f"{time.time_ns() - 2 * 3600 * 10**9:020d}-999999.mail"
        shutil.copy(outbox / waiting[0], outbox / "tmp" / old)
        os.replace(outbox / "tmp" / old, outbox / old)
        st = d.json("status", check=1)
        # (the stuck outbox's alert is news as well: its mail may have joined them)
        assert st["outbox"]["mail"] >= len(waiting) + 1 and st["outbox"]["stuck"] and st["needs_attention"]
        [stuck] = st["alerts"]
        assert stuck["message"] == (f"notifications have waited in the outbox {outbox} since "
                                    f"{text_time(Outbox(outbox).made(old))}: nobody is told of new alerts")
        assert stuck["fix"].startswith("the last delivery failed: the mail server 127.0.0.1:") and stuck["id"] is None
        assert f" mails waiting since {text_time(Outbox(outbox).made(old))} (2 h 0 min)" in d.run("status", check=1).stdout

        # The server back: `tapeline mail test` retries the outbox at once, and everything leaves.
        server.start()
        started.add(port)
        d.run("mail", "test")
        wait_until(lambda: d.json("status")["outbox"]["mail"] == 0, what="the outbox emptied")
        subjects = [m["Subject"] for _, _, m, _ in server.wait(len(waiting) + 2)]
        # The test mail, the sync's alert (twice: the old copy), the mail server's own alert; and maybe the alert of
        # the stuck outbox itself, when the notifier read it before the server came back.
        assert sum("test mail" in x for x in subjects) == 1 and sum("sync of group 'docs'" in x for x in subjects) == 2
        assert any("notification mail cannot be sent" in m.get_body(("plain",)).get_content()
                   for _, _, m, _ in server.received), subjects
        assert d.run("status").stdout.splitlines()[-1] == "all good"
    finally:
        if server.port in started:
            server.stop()
        assert d.stop() == 0


def test_status_reads_the_outbox_once(tmp_path, monkeypatch):
    """`tapeline status` shows the outbox and its alert from one look at the directory (each look is two globs)."""
    data = tmp_path / "data"
    config = tmp_path / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\n[defaults]\npoints = []\n')
    appliance = Appliance(load(config, read_default_file=False))
    appliance.open()
    try:
        box = appliance.notifier.outbox
        looked: list[str] = []
        real = box.names
        monkeypatch.setattr(box, "names", lambda kind: looked.append(kind) or real(kind))
        status = appliance.status()
        assert status["outbox"]["mail"] == 0 and sorted(looked) == ["mail", "webhook"]
    finally:
        appliance.stop()
