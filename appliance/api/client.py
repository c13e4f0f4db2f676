"""The API client (HTTP/1.1 framed by h11 over the daemon's Unix socket), used by the CLI and the console.

Invariants: every method returns plain JSON values (dicts, lists); every failure raises a TapelineError subclass,
the same one the daemon raised (`errors.from_payload`), or DaemonUnreachable naming the socket and how to start the
daemon. The client imports nothing of the daemon side, so the console can use it without loading the catalog.
h11 rather than httpx or http.client: every `tapeline` command pays for its client's import before its request
leaves, and httpx's is ~0.1 s, http.client's ~18 ms (it loads the email package and ssl), h11's ~7 ms.
"""

from __future__ import annotations

import json as jsonlib
import select
import socket
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode

import h11

from appliance.config import SERVICE_SOCKET
from appliance.errors import DaemonUnreachable, TapelineError, from_payload

PREFIX = "/v1"


def _how_to_start(socket_path: Path) -> str:
    if socket_path == SERVICE_SOCKET:  # a development daemon listens under its data directory instead
        return ("start it with `systemctl start tapeline`; for a development daemon (`./dev up`, `tapeline up`) give "
                "its data directory: --data DIR or TAPELINE_DATA=DIR")
    if socket_path.parent.name == "run":
        return f"start it with `tapeline up --data {socket_path.parent.parent}`"
    return "start it with `systemctl start tapeline`, or check api.socket in the configuration"


def socket_for(config_file: str | Path | None = None, data_dir: str | Path | None = None) -> Path:
    """The daemon's socket as every client finds it: --data DIR (or TAPELINE_DATA) wins, then --config FILE, then
    /etc/tapeline/tapeline.toml. For the console, which may not read the configuration itself."""
    from appliance import config
    return config.load(config_file, data_dir, client=True).socket_path


class _UnixConnection:
    """One kept-alive HTTP/1.1 connection to the daemon's socket, opened on first use and again after a close."""

    def __init__(self, path: Path, timeout: float):
        self._path = str(path)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._h11 = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self) -> socket.socket:
        self.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock, self._h11 = sock, h11.Connection(h11.CLIENT)
        return sock

    def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        """The answer's status and body. Raises OSError or h11.ProtocolError when the exchange fails."""
        sock = self.sock if self.sock is not None and self._h11.our_state is h11.IDLE else self._connect()
        headers = [("host", "tapeline"), ("content-length", str(len(body or b"")))]
        if body:
            headers.append(("content-type", "application/json"))
        conn = self._h11
        sock.sendall(conn.send(h11.Request(method=method, target=target, headers=headers))
                     + (conn.send(h11.Data(data=body)) if body else b"") + conn.send(h11.EndOfMessage()))
        status, chunks = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()  # kept alive for the next request (a --wait's many)
        else:
            self.close()
        return status, b"".join(chunks)


def _query(params: dict | None) -> str:
    if not params:
        return ""
    # Names that are not UTF-8 (surrogate escapes) go as their own bytes (%FF), which the daemon reads back the same.
    return "?" + urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()},
                           encoding="utf-8", errors="surrogateescape")


class Client:
    def __init__(self, socket_path: str | Path, timeout: float = 60.0):
        self.socket_path = Path(socket_path)
        self._http = _UnixConnection(self.socket_path, timeout)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, content: bytes | None) -> tuple[int, bytes]:
        sock = self._http.sock
        if sock is not None and select.select([sock], [], [], 0)[0]:
            # Readable while no answer is due: the daemon closed this kept-alive connection (uvicorn does after 5 s
            # idle). Sent on it, the request would fail as if the daemon were gone; connect afresh instead.
            self._http.close()
        try:
            return self._http.request(method, path, content)
        except BaseException:
            self._http.close()  # the next call connects afresh
            raise

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, body=None, params=None):
        try:
            # Our own encoding, ASCII-escaped: names that are not UTF-8 travel as surrogate escapes (\udcXX).
            content = None if body is None else jsonlib.dumps(body).encode("ascii")
            status, data = self._request(method, quote(PREFIX + path, safe="/") + _query(params), content)
        except TimeoutError:
            raise DaemonUnreachable(f"the Tapeline daemon at {self.socket_path} did not answer in time",
                                    "check its log (journalctl -u tapeline) and retry") from None
        except h11.RemoteProtocolError:  # h11's word for an end of the connection before a whole answer
            raise DaemonUnreachable(f"the Tapeline daemon at {self.socket_path} closed the connection before "
                                    f"answering", "check its log (journalctl -u tapeline) and retry") from None
        except (OSError, h11.ProtocolError) as exc:
            if isinstance(exc, PermissionError):
                raise DaemonUnreachable(f"no permission to use the Tapeline daemon's socket {self.socket_path}",
                                        "run as root or as a member of the operators' group (api.group)") from None
            raise DaemonUnreachable(f"cannot reach the Tapeline daemon at {self.socket_path}",
                                    _how_to_start(self.socket_path)) from None
        try:
            answer = jsonlib.loads(data)
        except ValueError:
            answer = None
        if status >= 400:
            if isinstance(answer, dict) and "error" in answer:
                raise from_payload(answer)
            raise TapelineError(f"the daemon answered HTTP {status} to {method} {path}",
                                "check its log and that client and daemon are the same version")
        return answer

    # -- status -------------------------------------------------------------------------------------------------

    def status(self) -> dict:
        return self._call("GET", "/status")

    def schedule(self) -> list[dict]:
        return self._call("GET", "/schedule")

    # -- groups -------------------------------------------------------------------------------------------------

    def groups(self) -> list[dict]:
        return self._call("GET", "/groups")

    def group(self, name: str) -> dict:
        return self._call("GET", f"/groups/{name}")

    def create_group(self, name: str, sources: list[str | dict], sync: str | None = None,
                     points: list[str] | None = None, keep: str | None = None) -> dict:
        srcs = [s if isinstance(s, dict) else {"path": s} for s in sources]
        return self._call("POST", "/groups", {"name": name, "sources": srcs, "sync": sync, "points": points,
                                              "keep": keep})

    def change_group(self, name: str, sync: str | None = None, points: list[str] | None = None,
                     keep: str | None = None, add_sources: list[str | dict] = (),
                     remove_sources: list[str] = ()) -> dict:
        add = [s if isinstance(s, dict) else {"path": s} for s in add_sources]
        return self._call("PATCH", f"/groups/{name}", {"sync": sync, "points": points, "keep": keep,
                                                       "add_sources": add, "remove_sources": list(remove_sources)})

    def pause(self, name: str) -> dict:
        return self._call("POST", f"/groups/{name}/pause")

    def resume(self, name: str) -> dict:
        return self._call("POST", f"/groups/{name}/resume")

    def delete_group(self, name: str, purge: bool = False) -> dict:
        return self._call("DELETE", f"/groups/{name}", params={"purge": purge})

    def points(self, name: str) -> list[dict]:
        return self._call("GET", f"/groups/{name}/points")

    # -- jobs ---------------------------------------------------------------------------------------------------

    def plan(self, name: str, **tape) -> dict:
        return self._call("GET", f"/groups/{name}/plan", params=tape)

    def sync(self, name: str, accept_deletions: bool = False) -> dict:
        return self._call("POST", f"/groups/{name}/sync", {"accept_deletions": accept_deletions})

    def point(self, name: str, accept_deletions: bool = False) -> dict:
        return self._call("POST", f"/groups/{name}/point", {"accept_deletions": accept_deletions})

    def check(self, name: str, full: bool = False) -> dict:
        return self._call("POST", f"/groups/{name}/check", {"full": full})

    def prune(self, name: str) -> dict:
        return self._call("POST", f"/groups/{name}/prune")

    def restore(self, name: str, to: str, point: str | None = None, at: datetime | str | None = None,
                paths: list[str] = (), overwrite: bool = False) -> dict:
        if isinstance(at, datetime):
            at = at.isoformat()
        return self._call("POST", f"/groups/{name}/restore", {"to": to, "point": point, "at": at,
                                                              "paths": list(paths), "overwrite": overwrite})

    def jobs(self, limit: int = 50, state: str | None = None) -> list[dict]:
        params = {"limit": limit}
        if state:
            params["state"] = state
        return self._call("GET", "/jobs", params=params)

    def job(self, job_id: int) -> dict:
        return self._call("GET", f"/jobs/{job_id}")

    def job_events(self, job_id: int) -> list[dict]:
        return self._call("GET", f"/jobs/{job_id}/events")

    def wait(self, job_id: int, timeout: float) -> dict:
        """The job as soon as it ends, or as it is after `timeout` seconds (at most 30)."""
        return self._call("GET", f"/jobs/{job_id}/wait", params={"timeout": timeout})

    def cancel(self, job_id: int) -> dict:
        return self._call("POST", f"/jobs/{job_id}/cancel")

    # -- reports ------------------------------------------------------------------------------------------------

    def reports(self) -> list[dict]:
        return self._call("GET", "/reports")

    def report(self, name: str, fmt: str = "text", days: int = 7, group: str | None = None,
               at: str | None = None) -> dict:
        params = {"format": fmt, "days": days, "group": group, "at": at}
        return self._call("GET", f"/reports/{name}", params={k: v for k, v in params.items() if v is not None})

    def mail_report(self, name: str, days: int = 7) -> dict:
        return self._call("POST", f"/reports/{name}/mail", {"days": days})

    def vault_forecast(self, weeks: int = 4) -> dict:
        return self._call("GET", "/vault/forecast", params={"weeks": weeks})

    def start_vault_forecast(self, weeks: int = 4) -> dict:
        return self._call("POST", "/vault/forecast", {"weeks": weeks})

    # -- tape ---------------------------------------------------------------------------------------------------

    def tape_backup(self, group: str, pool: str, point: str | None = None, kind: str = "full") -> dict:
        return self._call("POST", f"/groups/{group}/tape-backup", {"pool": pool, "point": point, "kind": kind})

    def tape_policy(self, group: str, pool: str, full: str, incremental: str | None = None) -> dict:
        return self._call("PUT", f"/groups/{group}/tape-policy", {"pool": pool, "full": full,
                                                                  "incremental": incremental})

    def tape_sets(self, group: str | None = None) -> list[dict]:
        return self._call("GET", "/tape/sets", params={"group": group} if group else None)

    def tape_restore(self, group: str, to: str, set_id: int | None = None, at: str | None = None,
                     paths: list[str] = (), overwrite: bool = False) -> dict:
        return self._call("POST", f"/groups/{group}/tape-restore", {"to": to, "set": set_id, "at": at,
                                                                    "paths": list(paths), "overwrite": overwrite})

    def media_verify(self, barcode: str) -> dict:
        return self._call("POST", f"/media/{barcode}/verify")

    def media_rebuild(self, library: str) -> dict:
        return self._call("POST", f"/libraries/{library}/rebuild")

    def vault_export(self, pool: str | None = None, case: str | None = None) -> dict:
        return self._call("POST", "/vault/export", {"pool": pool, "case": case})

    def vault_import(self, library: str | None = None, accept: list[str] = (), operator: str | None = None) -> dict:
        return self._call("POST", "/vault/import", {"library": library, "accept": list(accept),
                                                    "operator": operator})

    def vault_plan(self) -> dict:
        return self._call("GET", "/vault/plan")

    # -- files, alerts, catalog -------------------------------------------------------------------------------------

    def tree(self, group: str, path: str | None = None, point: str | int | None = None) -> dict:
        """One directory of a recovery point (no path: the group's sources; no point: the newest)."""
        params = {k: v for k, v in (("path", path), ("point", point)) if v is not None}
        return self._call("GET", f"/groups/{group}/tree", params=params)

    def find(self, group: str, pattern: str, limit: int | None = None) -> dict:
        """Every version, across the group's points, of the files whose name matches `pattern`."""
        params = {"pattern": pattern} | ({"limit": limit} if limit else {})
        return self._call("GET", f"/groups/{group}/find", params=params)

    def versions(self, path: str) -> list[dict]:
        return self._call("POST", "/versions", {"path": path})

    def alerts(self, include_closed: bool = False) -> list[dict]:
        return self._call("GET", "/alerts", params={"all": include_closed})

    def acknowledge(self, alert_id: int) -> dict:
        return self._call("POST", f"/alerts/{alert_id}/ack")

    def mail_test(self) -> dict:
        return self._call("POST", "/mail/test")

    def rebuild_catalog(self) -> dict:
        return self._call("POST", "/catalog/rebuild")

    def forget_missing(self) -> dict:
        return self._call("POST", "/catalog/forget-missing")

    # -- tape media -------------------------------------------------------------------------------------------------

    def libraries(self) -> list[dict]:
        return self._call("GET", "/libraries")

    def add_library(self, name: str, changer_url: str, drive_urls: list[str]) -> dict:
        return self._call("POST", "/libraries", {"name": name, "changer_url": changer_url,
                                                 "drive_urls": list(drive_urls)})

    def library(self, name: str) -> dict:
        return self._call("GET", f"/libraries/{name}")

    def inventory(self, name: str, detailed: bool = False) -> dict:
        return self._call("POST", f"/libraries/{name}/inventory" + ("/detailed" if detailed else ""))

    def drives(self) -> list[dict]:
        return self._call("GET", "/drives")

    def drive_action(self, library: str, number: int, action: str) -> dict:
        """`enable`, `disable` (the drive) or `clean` (a job)."""
        return self._call("POST", f"/libraries/{library}/drives/{number}/{action}")

    def pools(self) -> list[dict]:
        return self._call("GET", "/pools")

    def create_pool(self, name: str, library: str, retention: str | None = None, allocation: str | None = None,
                    encrypt: str | None = None, verify: bool = True, reuse_delay: str | None = None) -> dict:
        return self._call("POST", "/pools", {"name": name, "library": library, "retention": retention,
                                             "allocation": allocation, "encrypt": encrypt, "verify": verify,
                                             "reuse_delay": reuse_delay})

    def pool(self, name: str) -> dict:
        return self._call("GET", f"/pools/{name}")

    def change_pool(self, name: str, retention: str | None = None, apply_to_written: bool = False,
                    confirm: bool = False) -> dict:
        return self._call("PATCH", f"/pools/{name}", {"retention": retention, "apply_to_written": apply_to_written,
                                                      "confirm": confirm})

    def media(self, pool: str | None = None, state: str | None = None) -> list[dict]:
        return self._call("GET", "/media", params={k: v for k, v in (("pool", pool), ("state", state)) if v})

    def cartridge(self, barcode: str) -> dict:
        return self._call("GET", f"/media/{barcode}")

    def label(self, barcodes: list[str], pool: str, force: bool = False) -> dict:
        return self._call("POST", "/media/label", {"barcodes": list(barcodes), "pool": pool, "force": force})

    def erase(self, barcode: str, force: bool = False) -> dict:
        return self._call("POST", f"/media/{barcode}/erase", {"force": force})

    def load(self, barcode: str, drive: int | None = None, library: str | None = None) -> dict:
        return self._call("POST", "/media/load", {"barcode": barcode, "drive": drive, "library": library})

    def unload(self, barcode: str | None = None, drive: int | None = None, library: str | None = None) -> dict:
        return self._call("POST", "/media/unload", {"barcode": barcode, "drive": drive, "library": library})

    # -- offsite rotation (vaults, receive, recall, pool rotation policies) ----------------------------------------

    def vaults(self) -> list[dict]:
        return self._call("GET", "/vaults")

    def create_vault(self, name: str, contact: str = "") -> dict:
        return self._call("POST", "/vaults", {"name": name, "contact": contact})

    def vault(self, name: str) -> dict:
        return self._call("GET", f"/vaults/{name}")

    def vault_receive(self, items: list[str], vault: str, operator: str, skip: bool = False) -> dict:
        return self._call("POST", "/vault/receive", {"items": list(items), "vault": vault, "operator": operator,
                                                     "skip": skip})

    def vault_recall(self, operator: str, pool: str | None = None, items: list[str] | None = None,
                     force: bool = False) -> dict:
        return self._call("POST", "/vault/recall", {"pool": pool, "items": list(items or []), "force": force,
                                                    "operator": operator})

    def vault_sent_back(self, items: list[str], operator: str) -> dict:
        return self._call("POST", "/vault/sent-back", {"items": list(items), "operator": operator})

    def vault_policies(self, pool: str | None = None) -> list[dict]:
        return self._call("GET", "/vault/policies", params={"pool": pool} if pool else None)

    def offsite_ready(self, pool: str | None = None) -> list[dict]:
        return self._call("GET", "/vault/offsite-ready", params={"pool": pool} if pool else None)

    def pool_rotation(self, name: str, confirm: bool = False, **policy) -> dict:
        """`policy`: vault, offsite_copies, recall, gfs, check_sample, check_every (None leaves one as it is)."""
        return self._call("POST", f"/pools/{name}/rotation", {**policy, "confirm": confirm})

    def vault_dry_run(self, name: str, **policy) -> dict:
        """`policy` as for pool_rotation, plus retention."""
        return self._call("POST", f"/pools/{name}/dry-run", policy)
