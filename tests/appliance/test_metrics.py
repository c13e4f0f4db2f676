"""Prometheus metrics of a real daemon (`[metrics] listen`), scraped over HTTP as Prometheus would."""

from __future__ import annotations

import socket
import time
from datetime import datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.config import load
from appliance.errors import ConfigError
from daemon_harness import make_daemon
from tests.vtl_harness import free_port


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from GET /metrics."""
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(answer.text) for s in fam.samples}


def with_metrics(tmp_path, port: int, catalog_url: str | None = None):
    d = make_daemon(tmp_path, catalog_url)
    # No retry: a sync of an unmounted source fails at once (its retries are the job engine's tests).
    d.config_file.write_text(d.config_file.read_text() + f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
                             "[jobs]\nretries = 0\n")
    return d.start()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metered(request, tmp_path):
    """A daemon serving metrics, its catalog on SQLite and on PostgreSQL (the figures are SQL aggregates)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    port = free_port()
    d = with_metrics(tmp_path, port, url)
    yield d, port
    assert d.stop() == 0
    assert "Traceback" not in d.log.read_text()


def test_a_sync_shows_in_the_metrics_with_its_point_age_bytes_and_job(metered, tmp_path):
    d, port = metered
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 300_000)
    (src / "b.txt").write_text("hello\n" * 1000)
    d.run("group", "create", "files", "--source", str(src), "--sync", "1h")
    d.run("sync", "files", "--wait")
    point = d.json("points", "files")[-1]
    made = datetime.fromisoformat(point["time"]).timestamp()

    before = time.time()
    m = scrape(port)
    after = time.time()
    age = m[("tapeline_recovery_point_age_seconds", (("group", "files"),))]
    assert before - made <= age + 0.001 and age <= after - made + 0.001
    assert m[("tapeline_protected_bytes", (("group", "files"),))] == point["bytes"] == 306_000
    assert m[("tapeline_recovery_points", (("group", "files"),))] == 1
    assert m[("tapeline_jobs_finished_total", (("kind", "sync"), ("state", "completed")))] == 1
    assert m[("tapeline_job_duration_seconds_count", (("kind", "sync"),))] == 1
    assert m[("tapeline_changed_bytes_total", (("group", "files"),))] == 306_000
    size = m[("tapeline_store_size_bytes", ())]
    assert size > 0 and m[("tapeline_store_dedup_ratio", ())] == pytest.approx(306_000 / size)
    assert m[("tapeline_alerts_open", (("severity", "error"),))] == 0

    # The next scrape adds the jobs that ended since (each job is added up once, not read again).
    (src / "c.bin").write_bytes(b"c" * 5000)
    d.run("sync", "files", "--wait")
    m = scrape(port)
    assert m[("tapeline_jobs_finished_total", (("kind", "sync"), ("state", "completed")))] == 2
    assert m[("tapeline_job_duration_seconds_count", (("kind", "sync"),))] == 2
    assert m[("tapeline_changed_bytes_total", (("group", "files"),))] == 306_000 + 5000
    assert m[("tapeline_protected_bytes", (("group", "files"),))] == 311_000


def test_a_failed_sync_counts_as_failed_and_its_alert_is_open(metered, tmp_path):
    d, port = metered
    src = tmp_path / "gone"
    src.mkdir()
    d.run("group", "create", "lost", "--source", str(src))
    src.rmdir()  # the source unmounted
    d.run("sync", "lost", "--wait", check=None)
    m = scrape(port)
    assert m[("tapeline_jobs_finished_total", (("kind", "sync"), ("state", "failed")))] == 1
    open_alerts = d.json("alerts")
    for severity in ("error", "warning", "info"):
        assert m[("tapeline_alerts_open", (("severity", severity),))] == sum(
            a["severity"] == severity for a in open_alerts)
    assert m[("tapeline_alerts_open", (("severity", "error"),))] >= 1
    assert ("tapeline_recovery_point_age_seconds", (("group", "lost"),)) not in m  # no point: no age at all
    assert m[("tapeline_recovery_points", (("group", "lost"),))] == 0


def test_an_address_in_use_is_an_alert_and_the_daemon_serves_on(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        d = with_metrics(tmp_path, taken.getsockname()[1])
        try:
            found = [a for a in d.json("alerts") if a["message"].startswith("metrics are not served")]
            assert len(found) == 1 and "[metrics] listen" in found[0]["fix"]
            assert d.json("status", check=3)["daemon"]["pid"] > 0  # served, and saying a warning is open
        finally:
            assert d.stop() == 0


@pytest.mark.parametrize("value", ["9464", "localhost:", "127.0.0.1:99999", 9464])
def test_a_bad_listen_address_is_one_line_naming_the_key(tmp_path, value):
    config = tmp_path / "t.toml"
    config.write_text(f"[metrics]\nlisten = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError) as err:
        load(config, read_default_file=False)
    assert "metrics.listen" in err.value.message and "127.0.0.1:9464" in err.value.fix


def test_metrics_are_off_unless_configured(tmp_path):
    config = tmp_path / "t.toml"
    config.write_text("")
    assert load(config, read_default_file=False).metrics_listen == ""
