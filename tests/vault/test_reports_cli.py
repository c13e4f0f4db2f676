"""The offsite rotation reports through a real daemon and the `tapeline report` command, as an operator runs them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.catalog.engine import open_catalog
from tests.appliance.daemon_harness import make_daemon
from tests.vault.report_site import make_site


@pytest.fixture
def daemon(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    cat = open_catalog(url)
    make_site(cat, datetime.now(timezone.utc))
    cat.close()
    d = make_daemon(tmp_path, url).start()
    yield d
    assert d.stop() == 0


def test_restore_needs_and_the_vault_lists_through_the_command(daemon, tmp_path):
    names = [r["name"] for r in daemon.json("report", "list")]
    assert {"pick-list-library", "pick-list-vault", "distribution", "vault-inventory", "discrepancies",
            "media-status", "restore-needs"} <= set(names)
    at = (datetime.now().astimezone() - timedelta(days=20)).strftime("%Y-%m-%d %H:%M")
    answer = daemon.json("report", "restore-needs", "files", "--at", at, "--format", "csv")
    assert answer["needs_attention"] and "B00002L9" in answer["content"] and "vault iron" in answer["content"]
    out = tmp_path / "iron_V.IM"
    daemon.run("report", "vault-inventory", "--format", "im", "--out", str(out))
    lines = out.read_text().splitlines()
    assert lines[0] == "StartHeaderText~D~iron~tapeline-vtl~EndHeaderText" and lines[-1].endswith("-4~EndFooterText")
    assert "C7" in daemon.run("report", "pick-list-vault").stdout


def test_bad_report_requests_say_what_to_give(daemon):
    err = daemon.json("report", "restore-needs", check=2)
    assert "needs a group" in err["error"] and "GROUP --at TIME" in err["fix"] and err["exit_code"] == 2
    err = daemon.json("report", "media-status", "--format", "im", check=2)
    assert "not a vault list" in err["error"] and err["type"]
    proc = daemon.run("report", "restore-needs", "files", "--at", "yesterday-ish", check=2)
    assert "is not a time" in proc.stderr
    assert "has no tape set" in daemon.run("report", "restore-needs", "nosuch", check=1).stderr


def test_a_mailed_vault_list_carries_its_im_file_for_the_vault_company(tmp_path):
    from tests.appliance.mail_harness import MailServer
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    cat = open_catalog(url)
    make_site(cat, datetime.now(timezone.utc))
    cat.close()
    smtp = MailServer().start()
    d = make_daemon(tmp_path, url)
    d.config_file.write_text(d.config_file.read_text() + f'[mail]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                             'security = "none"\nsender = "tapeline@example.com"\nrecipients = ["ops@example.com"]\n'
                             'summary = ""\n')
    d.start()
    try:
        d.run("report", "pick-list-library", "--mail")
        [(_, _, msg, _)] = smtp.wait(1)
    finally:
        assert d.stop() == 0
        smtp.stop()
    day = datetime.now().date().isoformat()
    text = msg.get_body(("plain",)).get_content()
    attached = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    assert "A00001L9" in text and "slot 1" in text
    assert attached[f"tapeline-pick-list-library-{day}_V.IM"].splitlines()[1].startswith("A00001L9\t")


def test_the_daemon_refuses_to_mail_restore_needs_every_day():
    from appliance.errors import ConfigError
    from appliance.ops.reports.mailing import check_names
    with pytest.raises(ConfigError, match="needs a group and a time") as err:
        check_names(("media-status", "restore-needs"))
    assert "remove it from reports.mail" in err.value.fix
