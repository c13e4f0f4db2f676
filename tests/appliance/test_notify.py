"""Notifications against real receivers: aiosmtpd on loopback (plain, STARTTLS, implicit TLS, AUTH) and an HTTP
receiver; alerts raised in a real SQLite catalog reach them once, a burst as one mail, and nothing is lost while the
mail server is down."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

import pytest

from appliance import config
from appliance.catalog.engine import open_catalog
from appliance.errors import ConfigError, UsageError
from appliance.ops import alerts, notify
from appliance.ops.mail import MailFailure
from appliance.ops.notify import Notifier
from mail_harness import PASSWORD, USER, MailServer, WebhookReceiver, free_port, make_certificate, wait_until


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(notify, "POLL", 0.05)
    monkeypatch.setattr(notify, "QUIET", 0.3)
    monkeypatch.setattr(notify, "BACKOFF_FIRST", 0.2)


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(f"sqlite:///{tmp_path}/catalog.sqlite")
    yield cat
    cat.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_catalog(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/c.sqlite"
    cat = open_catalog(url)
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("cert"))


def mail_settings(tmp_path, port, security="none", user="", ca=None, **extra) -> config.MailSettings:
    lines = ["[mail]", 'host = "127.0.0.1"', f"port = {port}", f'security = "{security}"',
             'sender = "Tapeline <tapeline@example.com>"', 'recipients = ["ops@example.com", "boss@example.com"]']
    if user:
        (tmp_path / "mail-password").write_text(PASSWORD + "\n")
        lines += [f'user = "{user}"', f'password_file = "{tmp_path}/mail-password"']
    if ca:
        lines.append(f'ca_file = "{ca}"')
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in extra.items()]
    (tmp_path / "t.toml").write_text("\n".join(lines) + "\n")
    return config.load(tmp_path / "t.toml").mail


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the server's, on plain + AUTH
@pytest.mark.parametrize("security,auth", [("none", False), ("none", True), ("starttls", True), ("tls", True),
                                           ("tls", False)])
def test_mail_test_reaches_the_server_in_each_security_mode(tmp_path, catalog, cert, security, auth):
    server = MailServer(security, cert, auth=auth).start()
    try:
        m = mail_settings(tmp_path, server.port, security, USER if auth else "", ca=cert[0] if security != "none"
                          else None)
        result = Notifier(catalog, m, "", tmp_path, name="tl1").test_mail()
        (sender, rcpts, msg, authenticated), = server.wait(1)
        assert result["recipients"] == ["ops@example.com", "boss@example.com"] and not result["refused"]
        assert sender == "tapeline@example.com" and rcpts == ["ops@example.com", "boss@example.com"]
        assert msg["Subject"] == "[Tapeline tl1] test mail" and "tapeline mail test" in msg.get_content()
        assert authenticated == auth
    finally:
        server.stop()


@pytest.mark.parametrize("case,match", [
    ("untrusted", "has a certificate this appliance does not trust.*mail.ca_file"),
    ("password", "refused the login of user 'tapeline'.*mail.password_file"),
    ("no starttls", "does not offer STARTTLS: set mail.security"),
    ("tls to plain", "check mail.security"),
    ("down", "refused the connection: check mail.host and mail.port"),
    ("auth without tls", "offers no login.*starttls"),
])
def test_a_misconfigured_mail_server_is_one_line_naming_the_key_to_fix(tmp_path, catalog, cert, case, match):
    security, server_security, user, ca, auth = {
        "untrusted": ("starttls", "starttls", "", None, False),
        "password": ("starttls", "starttls", USER, cert[0], True),
        "no starttls": ("starttls", "none", "", None, False),
        "tls to plain": ("tls", "none", "", None, False),
        "down": ("none", None, "", None, False),
        "auth without tls": ("none", "starttls", USER, None, True),
    }[case]
    server = MailServer(server_security, cert, auth=auth).start() if server_security else None
    try:
        m = mail_settings(tmp_path, server.port if server else free_port(), security, user, ca)
        if case == "password":
            m.password_file.write_text("wrong\n")
        with pytest.raises(MailFailure, match=match) as err:
            Notifier(catalog, m, "", tmp_path).test_mail()
        assert "\n" not in str(err.value)
        assert not (server and server.received)
    finally:
        if server:
            server.stop()


def test_a_burst_of_alerts_is_one_mail_and_one_webhook_post(tmp_path, any_catalog):
    catalog = any_catalog
    server, hook = MailServer().start(), WebhookReceiver().start()
    n = Notifier(catalog, mail_settings(tmp_path, server.port, summary=""), hook.url, tmp_path, name="tl1")
    n.start()
    try:
        for i in range(5):
            alerts.raise_alert(catalog, "error", f"sync of group 'g{i}' failed", f"fix g{i}", f"g{i}")
        (_, _, msg, _), = server.wait(1)
        post, = hook.wait(1)
        assert msg["Subject"] == "[Tapeline tl1] 5 new alerts (5 errors)"
        body = msg.get_content()
        assert all(f"sync of group 'g{i}' failed" in body and f"Fix: fix g{i}" in body for i in range(5))
        assert [a["message"] for a in post["alerts"]] == [f"sync of group 'g{i}' failed" for i in range(5)]
        assert post["text"].startswith("Tapeline on tl1: 5 new alerts") and post["alerts"][0]["open"]
        alerts.raise_alert(catalog, "warning", "one more", "fix it")
        assert server.wait(2)[1][2]["Subject"] == "[Tapeline tl1] warning: one more"
        assert len(hook.wait(2)) == 2
    finally:
        n.stop()
        server.stop()
        hook.stop()
    assert not n.outbox.names("mail") and not n.outbox.names("webhook")


def test_a_mail_server_that_is_down_is_an_alert_and_the_mail_follows_when_it_is_back(tmp_path, catalog):
    port = free_port()
    hook = WebhookReceiver().start()
    n = Notifier(catalog, mail_settings(tmp_path, port, summary=""), hook.url, tmp_path)
    n.start()
    server = MailServer(port=port)
    try:
        alerts.raise_alert(catalog, "error", "sync of group 'docs' failed", "mount it", "docs")
        down = wait_until(lambda: [a for a in alerts.list_alerts(catalog) if a.message.startswith(notify.MAIL_PREFIX)],
                          what="the mail alert")
        assert down[0].message == (f"{notify.MAIL_PREFIX}: the mail server 127.0.0.1:{port} refused the connection")
        assert "check mail.host and mail.port" in down[0].fix and "tapeline mail test" in down[0].fix
        # The webhook still works and tells of both; the mail waits in the outbox.
        assert any(notify.MAIL_PREFIX in a["message"] for post in hook.wait(2) for a in post["alerts"])
        assert len(n.outbox.names("mail")) == 2
        server.start()
        received = server.wait(2)
        subjects = [m["Subject"] for _, _, m, _ in received]
        assert "sync of group 'docs' failed" in subjects[0] and notify.MAIL_PREFIX in subjects[1]
        wait_until(lambda: not [a for a in alerts.list_alerts(catalog) if a.message.startswith(notify.MAIL_PREFIX)],
                   what="the mail alert resolved")
        wait_until(lambda: not n.outbox.names("mail"), what="the outbox emptied")  # (removed once the server took it)
    finally:
        n.stop()
        server.stop()
        hook.stop()


def test_alerts_raised_while_the_daemon_was_stopped_are_mailed_on_start_and_none_twice(tmp_path, catalog):
    server = MailServer().start()
    m = mail_settings(tmp_path, server.port, summary="")
    try:
        alerts.raise_alert(catalog, "error", "history before mail was set up", "")
        first = Notifier(catalog, m, "", tmp_path)
        first.start()
        alerts.raise_alert(catalog, "error", "first", "")
        server.wait(1)
        first.stop()
        alerts.raise_alert(catalog, "error", "while stopped", "")
        second = Notifier(catalog, m, "", tmp_path)
        second.start()
        received = server.wait(2)
        second.stop()
        assert ["first" in received[0][2]["Subject"], "while stopped" in received[1][2]["Subject"]] == [True, True]
        assert len(server.received) == 2  # history is not news; nothing was mailed twice
    finally:
        server.stop()


def test_the_daily_summary_is_sent_once_a_day_at_its_time_whatever_the_clock_does(tmp_path, catalog):
    server = MailServer().start()
    now = [datetime(2026, 11, 30, 6, 0).astimezone()]
    n = Notifier(catalog, mail_settings(tmp_path, server.port, summary="07:00"), "", tmp_path,
                 clock=lambda: now[0])
    try:
        alerts.raise_alert(catalog, "error", "sync of group 'docs' failed", "mount /srv/docs", "docs")
        n.step()
        now[0] += timedelta(minutes=59)
        n.step()
        assert not any("daily summary" in m[2]["Subject"] for m in server.received)
        now[0] += timedelta(minutes=1)  # 07:00
        n.step()
        summaries = lambda: [m for _, _, m, _ in server.received if "daily summary" in m["Subject"]]  # noqa: E731
        wait_until(lambda: summaries(), what="the summary")
        text = summaries()[0].get_content()
        assert "Alerts open: 1" in text and "sync of group 'docs' failed" in text and "Fix: mount /srv/docs" in text
        now[0] -= timedelta(hours=2)  # the clock steps back before 07:00, then passes it again
        n.step()
        now[0] += timedelta(hours=3)
        n.step()
        assert len(summaries()) == 1
        now[0] += timedelta(days=3)  # days without the daemon: one summary, not three
        n.step()
        n.step()
        assert len(summaries()) == 2 and summaries()[1]["Subject"].endswith("2026-12-03")
    finally:
        server.stop()


def test_send_mail_sends_text_html_and_attachments(tmp_path, catalog):
    server = MailServer().start()
    n = Notifier(catalog, mail_settings(tmp_path, server.port, summary=""), "", tmp_path, name="tl1")
    n.start()
    try:
        n.send_mail("report protection", "All 3 groups protected.\n", html="<p>All 3 groups <b>protected</b>.</p>",
                    attachments=[("protection.csv", "group,lag\ndocs,0\n"), ("growth.svg", b"<svg/>"),
                                 ("raw.bin", b"\x00\x01", "application/x-tapeline")])
        (_, _, msg, _), = server.wait(1)
    finally:
        n.stop()
        server.stop()
    assert msg["Subject"] == "[Tapeline tl1] report protection"
    lines = lambda part: part.get_content().replace("\r\n", "\n")  # noqa: E731 (SMTP carries CRLF line ends)
    assert lines(msg.get_body(("plain",))) == "All 3 groups protected.\n"
    assert "<b>protected</b>" in msg.get_body(("html",)).get_content()
    parts = {p.get_filename(): p for p in msg.iter_attachments()}
    assert lines(parts["protection.csv"]) == "group,lag\ndocs,0\n"
    assert parts["growth.svg"].get_content_type() == "image/svg+xml" and parts["growth.svg"].get_content() == b"<svg/>"
    assert parts["raw.bin"].get_content_type() == "application/x-tapeline"


def test_send_mail_without_mail_configured_says_which_keys_to_set(tmp_path, catalog):
    with pytest.raises(UsageError, match=r"mail is not configured \(mail.host is empty\): set \[mail\] host"):
        Notifier(catalog, None, "", tmp_path).send_mail("x", "y")


@pytest.mark.parametrize("text,match", [
    ('[mail]\nhost = "smtp"\nsecurity = "ssl"\n', "mail.security 'ssl' is not a mail security: use one of none, "
                                                   "starttls, tls"),
    ('[mail]\nhost = "smtp"\nrecipients = ["a@b"]\n', "mail.sender '' is not a mail address"),
    ('[mail]\nhost = "smtp"\nsender = "t@b"\n', "mail.recipients is empty"),
    ('[mail]\nhost = "smtp"\nsender = "t@b"\nrecipients = ["ops"]\n', "mail.recipients has 'ops', not a mail"),
    ('[mail]\nhost = "smtp"\nsender = "t@b"\nrecipients = ["a@b"]\nuser = "u"\n',
     "mail.user is set but mail.password_file is empty"),
    ('[mail]\nport = 99999\n', "mail.port 99999 is not a port"),
    ('[mail]\nhost = "smtp"\nsender = "t@b"\nrecipients = ["a@b"]\nsummary = "7 am"\n',
     "mail.summary '7 am' is not a time of day"),
    ('[webhook]\nurl = "chat.example.com/hook"\n', "webhook.url 'chat.example.com/hook' is not an http"),
    ('[mail]\nhots = "smtp"\n', r"unknown key mail.hots: .*did you mean host\?"),
])
def test_bad_mail_config_is_one_line_naming_the_key_and_the_fix(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        config.load(f)
    assert "\n" not in str(err.value)


def test_mail_settings_default_to_the_standard_port_of_their_security(tmp_path):
    f = tmp_path / "t.toml"
    base = '[mail]\nhost = "smtp.example.com"\nsender = "t@example.com"\nrecipients = "ops@example.com"\n'
    for security, port in (("none", 25), ("starttls", 587), ("tls", 465)):
        f.write_text(base + f'security = "{security}"\n')
        m = config.load(f).mail
        assert (m.port, m.recipients, m.summary, m.password_file) == (port, ("ops@example.com",), "07:00", None)


def test_a_message_the_server_refuses_waits_alone_and_the_others_go(tmp_path, catalog):
    server = MailServer().start()
    n = Notifier(catalog, mail_settings(tmp_path, server.port, summary=""), "", tmp_path)
    n.start()
    try:
        server.refuse_data = "552 5.3.4 Message too big for this system"
        big = n.send_mail("report storage", "x" * 1000)
        refusals = lambda: [a for a in alerts.list_alerts(catalog)  # noqa: E731
                            if a.message.startswith(notify.REFUSED_PREFIX)]
        refused = wait_until(refusals, what="the refusal alert")
        assert refused[0].message == (f"{notify.REFUSED_PREFIX} {n.outbox.root / big}: the mail server 127.0.0.1:"
                                      f"{server.port} refused a message (552 5.3.4 Message too big for this system)")
        assert "delete the file to give it up" in refused[0].fix
        server.refuse_data = None
        n.send_mail("report protection", "all good")  # not held up behind the refused one
        # Both reports (the refused one after its backoff) and the refusal alert's own mail.
        subjects = sorted(m["Subject"].split("] ", 1)[1][:15] for _, _, m, _ in server.wait(3))
        assert subjects == ["error: the mail", "report protecti", "report storage"]
        wait_until(lambda: not n.outbox.names("mail"), what="the outbox emptied")
        wait_until(lambda: not refusals(), what="the refusal alert resolved once its mail went")
    finally:
        n.stop()
        server.stop()


def test_a_recipient_the_server_refuses_is_a_warning_and_the_others_get_the_mail(tmp_path, catalog):
    server = MailServer().start()
    server.refuse_rcpt = {"boss@example.com"}
    n = Notifier(catalog, mail_settings(tmp_path, server.port, summary=""), "", tmp_path)
    n.start()
    try:
        n.send_mail("report jobs", "3 jobs")
        n.send_mail("report tape", "2 cartridges")
        received = server.wait(2)
        assert [r[1] for r in received] == [["ops@example.com"], ["ops@example.com"]]
        warn, = wait_until(lambda: [a for a in alerts.list_alerts(catalog)
                                    if a.message.startswith(notify.PARTLY_PREFIX)], what="the warning")
        assert warn.severity == "warning" and "boss@example.com (the server answered 550 5.1.1 No such user here)" \
            in warn.message and warn.fix.startswith("check mail.recipients")
        wait_until(lambda: not n.outbox.names("mail"), what="the outbox emptied")
        assert [a.id for a in alerts.list_alerts(catalog) if a.message.startswith(notify.PARTLY_PREFIX)] == [warn.id]
    finally:
        n.stop()
        server.stop()


def test_a_webhook_that_fails_is_one_alert_whatever_its_cause_and_resolves_when_it_answers(tmp_path, catalog):
    hook = WebhookReceiver().start()
    n = Notifier(catalog, None, hook.url, tmp_path)
    n.start()
    try:
        hook.status = 503
        alerts.raise_alert(catalog, "error", "sync of group 'docs' failed", "mount it", "docs")
        failing = lambda: [a for a in alerts.list_alerts(catalog)  # noqa: E731
                           if a.message.startswith(notify.WEBHOOK_PREFIX)]
        first, = wait_until(failing, what="the webhook alert")
        assert first.message == f"{notify.WEBHOOK_PREFIX}: {hook.url.split('/hooks')[0]} answered 503 Service " \
                                "Unavailable" and "/hooks/secret-token" not in first.message  # its path is a secret
        hook.status = 404
        wait_until(lambda: [a for a in failing() if "404" in a.message], what="the alert updated")
        assert [a.id for a in failing()] == [first.id]
        hook.status = 200
        posts = hook.wait(2)  # the alert of the docs group, then the webhook's own
        assert posts[0]["alerts"][0]["message"] == "sync of group 'docs' failed"
        assert any(a["message"].startswith(notify.WEBHOOK_PREFIX) for p in posts for a in p["alerts"])
        wait_until(lambda: not failing(), what="the webhook alert resolved")
    finally:
        n.stop()
        hook.stop()


def test_an_outbox_file_named_by_hand_is_dated_by_its_modification_time(catalog, tmp_path):
    """A mail copied into the outbox under another name (to send it again) neither breaks `tapeline status` nor the
    notifier: it waits since its file's time."""
    n = Notifier(catalog, None, "", tmp_path)
    n.outbox.put("mail", b"Subject: new\r\n\r\nnew\r\n")
    copied = n.outbox.root / "copy of alert.mail"
    copied.write_bytes(b"Subject: old\r\n\r\nold\r\n")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(copied, (two_hours_ago, two_hours_ago))
    state = n.outbox_state()
    assert state["mail"] == 2 and state["stuck"]
    assert datetime.fromisoformat(state["oldest"]).timestamp() == pytest.approx(two_hours_ago)
    [stuck] = n.outbox_alerts(state)
    assert "notifications have waited in the outbox" in stuck.message and "mail is not configured" in stuck.fix
