"""The HTTP API's contract against a real daemon: every error (unknown routes and wrong methods too) is
`{error, fix, exit_code, type}`; a restore takes the point as a number or a string; a path that is not UTF-8 finds
the same versions by GET (percent-encoded bytes) as by POST (surrogate escapes)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx


def _http(daemon) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://tapeline")


def _wait(api, job_id: int) -> dict:
    deadline = time.monotonic() + 60
    while (job := api.job(job_id))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job


def test_every_error_has_the_documented_shape(sqlite_daemon):
    with _http(sqlite_daemon) as http:
        for method, path, status, kind in (("GET", "/v1/nope", 404, "NotFound"),
                                           ("DELETE", "/v1/status", 405, "UsageError"),
                                           ("GET", "/v1/groups/ghost", 404, "NotFound"),
                                           ("POST", "/v1/groups", 400, "UsageError")):
            resp = http.request(method, path, json={} if method == "POST" else None)
            body = resp.json()
            assert resp.status_code == status and set(body) == {"error", "fix", "exit_code", "type"}, body
            assert body["type"] == kind and body["fix"] and "\n" not in body["error"]


def test_restore_takes_the_point_as_a_number_or_a_string_and_versions_by_get_see_odd_names(daemon, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    odd = os.fsdecode(bytes(src) + b"/caf\xff\xfe.txt")
    Path(odd).write_bytes(b"odd\n")
    (src / "plain.txt").write_bytes(b"plain\n")
    with daemon.client() as api, _http(daemon) as http:
        api.create_group("qa", [str(src)])
        point = _wait(api, api.point("qa")["job"])["result"]["point"]["id"]
        for given in (point, str(point)):
            resp = http.post("/v1/groups/qa/restore", json={"point": given, "to": str(tmp_path / f"out{given!r}")})
            assert resp.status_code == 202, resp.text
            assert resp.json()["point"]["id"] == point
            assert _wait(api, resp.json()["job"])["state"] == "completed"

        by_post = api.versions(odd)
        assert len(by_post) == 1
        query = b"path=" + b"".join(b"%%%02X" % c for c in os.fsencode(odd))
        resp = http.get("/v1/versions?" + query.decode("ascii"))
        assert resp.status_code == 200, resp.text
        assert resp.json() == by_post
        assert http.get("/v1/versions", params={"path": str(src / "plain.txt")}).json()[0]["size"] == 6


def test_the_wait_long_poll_answers_with_the_ended_job(sqlite_daemon, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    with _http(sqlite_daemon) as http:
        assert http.post("/v1/groups", json={"name": "g", "sources": [{"path": str(src)}]}).status_code == 201
        job_id = http.post("/v1/groups/g/sync").json()["job"]
        job = http.get(f"/v1/jobs/{job_id}/wait", params={"timeout": 30}, timeout=60).json()
        assert (job["id"], job["state"]) == (job_id, "completed") and job["finished"]  # one call, not a poll loop
        unknown = http.get(f"/v1/jobs/{job_id + 1000}/wait", params={"timeout": 1})
        too_long = http.get(f"/v1/jobs/{job_id}/wait", params={"timeout": 3600})
        assert (unknown.status_code, unknown.json()["type"]) == (404, "NotFound")
        assert (too_long.status_code, too_long.json()["type"]) == (400, "UsageError")
