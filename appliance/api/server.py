"""Serving the API on a Unix socket that only root and the operators' group can reach.

Invariants:
- We bind the socket ourselves (uvicorn's `uds=` would chmod it 0666) and set its mode and group before `listen`,
  so there is no moment when anyone else could connect: 0660 and group = the configured operators' group when that
  group exists (and we may give the socket to it), else 0600 with a logged warning.
- A stale socket file (no daemon answers on it) is replaced; a live one means another daemon runs: refused.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import struct
from pathlib import Path

import uvicorn

from appliance.errors import Conflict, TapelineError

log = logging.getLogger("tapeline.api")


def refuse_if_running(path: Path) -> None:
    """Before opening anything: a daemon already answering on this socket is reported as such, by its PID."""
    pid = _live(path)
    if pid is not None:
        shown = f" (PID {pid})" if pid else ""
        raise Conflict(f"another Tapeline daemon{shown} is already running on {path}",
                       "use that one, or stop it (Ctrl-C, or `systemctl stop tapeline`) first")


def _live(path: Path) -> int | None:
    """The PID of the process answering on the socket (0 when the kernel does not say), None when none answers."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            probe.connect(str(path))
        except OSError:
            return None
        try:
            return struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        struct.calcsize("3i")))[0]
        except OSError:
            return 0
    finally:
        probe.close()


def bind_socket(path: Path, operators_group: str | None) -> socket.socket:
    """The API socket, for this user and the operators' group (None: this user only, as a development daemon)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        raise TapelineError(f"cannot create the API socket's directory {path.parent} ({exc.strerror})",
                            "run the daemon as root, or set api.socket (or use --data DIR)") from exc
    if path.exists() or path.is_symlink():
        refuse_if_running(path)
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        mode = 0o600
        try:
            if operators_group is not None:
                os.chown(path, -1, grp.getgrnam(operators_group).gr_gid)
                mode = 0o660
        except KeyError:
            log.warning("operators' group %r does not exist: the API socket %s is for root only (mode 0600); "
                        "create the group (groupadd %s) and restart to let operators in",
                        operators_group, path, operators_group)
        except PermissionError:
            log.warning("cannot give the API socket %s to group %r: it is for this user only (mode 0600)",
                        path, operators_group)
        os.chmod(path, mode)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise TapelineError(f"cannot listen on the API socket {path} ({exc.strerror})",
                            "check that its directory is writable, or set api.socket in the configuration") from exc
    return sock


def make_server(app, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(app, log_config=None, log_level=log_level, access_log=log_level == "debug",
                            timeout_graceful_shutdown=5, lifespan="off")
    return uvicorn.Server(config)
