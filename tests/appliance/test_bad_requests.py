"""Bad input to a running daemon gets the JSON error with its fix, never a plain-text 500: ids past 64 bits, NUL bytes
in paths, huge durations, times at the calendar's limits; a restore into the store or the data directory, or with
`..` in a path, is refused at request time. The published schema declares the error answers each route gives, and
no 422 (which never happens). The development data directory and the catalog are their owner's alone."""

from __future__ import annotations

import stat

import httpx
import pytest

from appliance import config
from appliance.api.app import create_app
from appliance.errors import UsageError

BIG = 2**63
SHAPE = {"error", "fix", "exit_code", "type"}


def _http(daemon) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://tapeline")


def _refused(resp: httpx.Response, status: int = 400, kind: str = "UsageError") -> dict:
    assert resp.headers["content-type"] == "application/json", resp.text
    body = resp.json()
    assert (resp.status_code, set(body), body["type"]) == (status, SHAPE, kind), body
    assert body["fix"] and "\n" not in body["error"]
    return body


@pytest.fixture
def group_daemon(sqlite_daemon, tmp_path):
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("a")
    sqlite_daemon.run("group", "create", "g", "--source", str(src))
    sqlite_daemon.run("sync", "g", "--wait")
    return sqlite_daemon, src


def test_out_of_range_ids_nul_bytes_durations_and_times_get_the_json_error(group_daemon, tmp_path):
    d, src = group_daemon
    with _http(d) as http:
        for method, path in (("GET", f"/v1/jobs/{BIG}"), ("POST", f"/v1/jobs/{BIG}/cancel"),
                             ("POST", f"/v1/alerts/{BIG}/ack"), ("GET", f"/v1/jobs?limit={BIG}"),
                             ("GET", "/v1/jobs/0"), ("GET", "/v1/jobs?limit=-1"), ("GET", "/v1/versions?path=/a%00b")):
            _refused(http.request(method, path))
        nul = _refused(http.post("/v1/groups", json={"name": "n", "sources": [{"path": f"{src}\0x"}]}))
        assert "NUL" in nul["error"] and "\0" not in nul["error"]
        _refused(http.post("/v1/versions", json={"path": "/a\0b"}))
        _refused(http.post("/v1/groups/g/restore", json={"to": str(tmp_path / "r"), "paths": ["/a\0"]}))
        for option in ("sync", "keep"):
            huge = _refused(http.post("/v1/groups", json={"name": "h", "sources": [{"path": str(src)}],
                                                           option: "99999999999999999999d"}))
            assert "longer than 100 years" in huge["error"]
        _refused(http.patch("/v1/groups/g", json={"keep": "9" * 30 + "w"}))
        for at in ("0001-01-01T00:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            body = _refused(http.post("/v1/groups/g/restore", json={"to": str(tmp_path / "r"), "at": at}))
            assert "out of range" in body["error"], body
        # The limits themselves, where they convert, are ordinary times: the newest point at or before them.
        early = http.post("/v1/groups/g/restore", json={"to": str(tmp_path / "r"), "at": "0001-01-02T00:00:00Z"})
        assert _refused(early, 404, "NotFound")["error"].startswith("group 'g' has no recovery point at or before")
    log = d.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_a_restore_into_the_store_or_the_data_directory_or_with_dotdot_is_refused(group_daemon, tmp_path):
    d, src = group_daemon
    for target, what in ((d.data / "store" / "out", "replica store"), (d.data, "data directory"),
                         (d.data / "restored", "data directory")):
        err = d.run("restore", "g", "--to", str(target), check=2).stderr
        assert err.startswith(f"tapeline: restore target {target} is inside Tapeline's {what}"), err
        assert "restore to a directory outside it" in err
    with _http(d) as http:
        body = _refused(http.post("/v1/groups/g/restore", json={"to": str(tmp_path / "r"),
                                                                "paths": [f"{src}/docs/../docs/a.txt"]}))
        assert "'..'" in body["error"]
    assert d.json("jobs")[0]["kind"] == "sync"  # no restore job was queued for any of them
    assert not (d.data / "restored").exists()


def test_the_schema_declares_each_routes_errors_and_no_422(tmp_path):
    schema = create_app(appliance=None).openapi()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == SHAPE
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            where = f"{method.upper()} {path}"
            assert "422" not in codes, where
            errors = {c for c in codes if c >= "400"}
            assert {"500", "503"} <= errors, where
            params = op.get("parameters", [])
            if any(p["in"] == "path" for p in params):
                assert "404" in errors, where
            if "requestBody" in op or any(p["in"] != "path" or p["schema"].get("type") == "integer" for p in params):
                assert "400" in errors, where
            for code in errors:
                assert op["responses"][code]["content"]["application/json"]["schema"] == error_ref, (where, code)
    declared = {(m.upper(), p): set(op["responses"]) for p, ops in schema["paths"].items() for m, op in ops.items()}
    assert {"409"} <= declared[("POST", "/v1/groups")] and {"409"} <= declared[("POST", "/v1/jobs/{job_id}/cancel")]
    assert "404" not in declared[("GET", "/v1/status")]


def test_a_wrong_method_names_every_method_the_path_takes():
    from fastapi.testclient import TestClient

    with TestClient(create_app(appliance=None)) as http:
        for path, allowed in (("/v1/groups", "GET, POST"), ("/v1/groups/g", "DELETE, GET, PATCH"),
                              ("/v1/versions", "GET, POST"), ("/v1/status", "GET")):
            resp = http.request("OPTIONS", path)
            assert (resp.status_code, resp.headers["allow"]) == (405, allowed)
            _refused(resp, 405)


def test_an_unexpected_exception_is_answered_in_the_error_shape_with_a_fix():
    """A bug still answers JSON (500, with the fix pointing at the log, where the traceback goes)."""
    from fastapi.testclient import TestClient

    class Broken:
        def status(self):
            raise RuntimeError("a bug")

    with TestClient(create_app(Broken()), raise_server_exceptions=False) as http:
        body = _refused(http.get("/v1/status"), 500, "TapelineError")
    assert body["error"] == "RuntimeError: a bug" and "log" in body["fix"] and body["exit_code"] == 1


def test_the_development_data_directory_and_the_catalog_are_private(tmp_path):
    from appliance.daemon import Appliance

    data = tmp_path / "dev"
    data.mkdir(mode=0o755)
    app = Appliance(config.load(None, data, read_default_file=False))
    app.open()
    try:
        app.catalog.check_writable()  # the -wal and -shm files exist from here on
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for f in data.glob("catalog.sqlite*"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert len(list(data.glob("catalog.sqlite*"))) == 3
    finally:
        app.stop()


def test_the_service_catalog_is_private_too(tmp_path):
    """The service's data directory keeps its mode (operators may be given access to it), but the catalog is 0600."""
    from appliance.daemon import Appliance

    conf = tmp_path / "tapeline.toml"
    conf.write_text(f'data_dir = "{tmp_path / "lib"}"\n')
    settings = config.load(conf)
    assert not settings.development
    app = Appliance(settings)
    app.open()
    try:
        assert stat.S_IMODE((tmp_path / "lib").stat().st_mode) == 0o750
        assert stat.S_IMODE((tmp_path / "lib" / "catalog.sqlite").stat().st_mode) == 0o600
    finally:
        app.stop()


def test_a_duration_past_the_bound_is_refused_by_name():
    with pytest.raises(UsageError, match=r"--keep '5000000w' is longer than 100 years"):
        config.parse_duration_option("--keep", "5000000w")
    assert config.parse_duration_option("--keep", "5200w") == 5200 * 604800
