"""The console's one link to the daemon: the API client's calls, made from worker threads.

Invariants: every method may block (a call over the Unix socket), so screens call them only from thread workers
(`@work(thread=True)`), never on the event loop. Each thread gets its own `Client` (one HTTP connection is not
safe to share between threads). Failures arrive as the client raises them: DaemonUnreachable (with the command that
starts the daemon as its fix) or the TapelineError the daemon answered with; `AreaScreen.call` turns both into a
visible state, never a traceback.
"""

from __future__ import annotations

import threading
from pathlib import Path

from appliance.api.client import Client
from appliance.errors import TapelineError

# What a job's kind and stored parameters re-submit as (Monitoring's "retry"): the API call and its arguments.
RETRYABLE = {
    "sync": lambda c, g, p: c.sync(g, accept_deletions=bool(p.get("accept_deletions"))),
    "point": lambda c, g, p: c.point(g, accept_deletions=bool(p.get("accept_deletions"))),
    "check": lambda c, g, p: c.check(g, full=bool(p.get("full"))),
    "prune": lambda c, g, p: c.prune(g),
    # The same point (a restore job stores its snapshot), target and paths; never an overwrite (see Daemon.retry).
    "restore": lambda c, g, p: c.restore(g, p["target"], point=p["snapshot_id"], paths=p.get("paths") or ()),
}


class Daemon:
    """Thin calls over `appliance.api.client.Client` (any of its methods: `daemon.groups()`, `daemon.sync(name)`),
    plus the few the console composes itself."""

    def __init__(self, socket_path: str | Path, timeout: float = 30.0):
        self.socket_path = Path(socket_path)
        self._timeout = timeout
        self._local = threading.local()

    @property
    def client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = Client(self.socket_path, timeout=self._timeout)
        return client

    def __getattr__(self, name: str):
        if name.startswith("_") or not callable(getattr(Client, name, None)):
            raise AttributeError(name)

        def call(*args, **kwargs):
            # The client is the calling thread's, found when called: screens look the method up on the event loop
            # (`self.call(..., daemon.restore, ...)`) and call it in a worker thread.
            return getattr(self.client, name)(*args, **kwargs)
        call.__name__ = name
        return call

    def snapshot(self) -> dict:
        """What the live views show, in one go: status (groups, running jobs, open alerts) and the recent jobs."""
        return {"status": self.client.status(), "jobs": self.client.jobs(limit=50)}

    def retry(self, job: dict) -> dict:
        """Submit a finished job again: the same kind, group and parameters."""
        submit = RETRYABLE.get(job["kind"])
        if submit is None or not job.get("group_name"):
            raise TapelineError(f"job {job['id']} ({job['kind']}) cannot be re-submitted from the console",
                                f"run it again with `tapeline` (see `tapeline job {job['id']}`)")
        if job["kind"] == "restore" and (job.get("params") or {}).get("overwrite"):
            # An overwrite replaces files: that is asked in the restore dialog, which lists them, not on a retry key.
            raise TapelineError(f"job {job['id']} restored with overwrite: the console does not repeat that unasked",
                                "restore it again from Recovery (F3), whose dialog lists what would be overwritten")
        return submit(self.client, job["group_name"], job.get("params") or {})
