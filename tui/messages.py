"""What the poller tells the screens, named for what happened (Textual's convention).

The app posts each to the screen on show; a screen that is not shown catches up from `app.latest` when it resumes.
"""

from __future__ import annotations

from textual.message import Message


class StatusRefreshed(Message, bubble=False):
    """A fresh `/v1/status` (groups, running and queued jobs, open alerts)."""

    def __init__(self, status: dict):
        super().__init__()
        self.status = status


class JobsRefreshed(Message, bubble=False):
    """The recent jobs, newest first, with their progress."""

    def __init__(self, jobs: list[dict]):
        super().__init__()
        self.jobs = jobs


class AlertsChanged(Message, bubble=False):
    """The open alerts differ from the last poll's."""

    def __init__(self, alerts: list[dict]):
        super().__init__()
        self.alerts = alerts


class DaemonLost(Message, bubble=False):
    """The daemon stopped answering (or never did): `error` says why and how to start it."""

    def __init__(self, error: str, fix: str):
        super().__init__()
        self.error = error
        self.fix = fix


class DaemonFound(Message, bubble=False):
    """The daemon answers again."""
