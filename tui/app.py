"""`TapelineApp`: the operator console. Five areas as Textual modes, a poller that keeps them live, the palette.

Invariants: the app talks to the daemon only through `tui.daemon.Daemon` (the API client), from thread workers. One
poll runs at a time (an exclusive worker), every POLL_SECONDS; its results go to the shown screen as messages and
stay in `latest` for the others. An unreachable daemon is a state (`lost`, the banner), not an exit: the poller keeps
trying and the banner goes when the daemon answers.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from importlib import import_module
from pathlib import Path

from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from appliance.errors import DaemonUnreachable, TapelineError
from tui.daemon import Daemon
from tui.messages import AlertsChanged, DaemonFound, DaemonLost, JobsRefreshed, StatusRefreshed
from tui.screens.area import AreaScreen
from tui.screens.monitoring import MonitoringScreen

POLL_SECONDS = 1.5
IDLE_SECONDS = 2.0  # no key or mouse for this long: the operator is not waiting on a frame, the collector may run
WALK_ALL_SECONDS = 600  # an idle collection walks all objects, frozen ones too, at most this often
AREAS = [  # mode, where its screen is, the function key and digit that show it
    ("monitoring", "tui.screens.monitoring:MonitoringScreen", "f1", "1"),
    ("protection", "tui.screens.protection:ProtectionScreen", "f2", "2"),
    ("recovery", "tui.screens.recovery:RecoveryScreen", "f3", "3"),
    ("reporting", "tui.screens.reporting:ReportingScreen", "f4", "4"),
    ("management", "tui.screens.management:ManagementScreen", "f5", "5"),
]


def _screen(where: str) -> Callable[[], AreaScreen]:
    """The area's screen, its module imported when the area is first shown: the first screen (Monitoring) draws
    without paying for the others' widgets (the directory tree, the text area, the library drawing)."""
    if where.endswith(":MonitoringScreen"):
        return MonitoringScreen
    module, name = where.split(":")
    return lambda: getattr(import_module(module), name)()


class ScreenActions(Provider):
    """Every action of the shown screen and of the app (the areas), as its footer lists them, in the palette."""

    def _actions(self):
        seen = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description or (binding.action, id(active.node)) in seen:
                continue
            seen.add((binding.action, id(active.node)))
            title = binding.description
            key_name = self.app.get_key_display(binding)
            yield title, f"{key_name}  {binding.tooltip or ''}".rstrip(), partial(
                self.app.run_action, binding.action, active.node), active.enabled

    async def discover(self) -> Hits:
        for title, help_text, run, enabled in self._actions():
            if enabled:
                yield DiscoveryHit(title, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, run, enabled in self._actions():
            score = matcher.match(title)
            if enabled and score > 0:
                yield Hit(score, matcher.highlight(title), run, help=help_text)


class TapelineApp(App):
    CSS_PATH = "tapeline.tcss"
    TITLE = "Tapeline"
    MODES = {mode: _screen(where) for mode, where, _f, _d in AREAS}
    DEFAULT_MODE = "monitoring"
    COMMANDS = App.COMMANDS | {ScreenActions}
    BINDINGS = [
        *(Binding(f, f"switch_mode('{mode}')", mode.capitalize(), priority=True) for mode, _s, f, _d in AREAS),
        *(Binding(d, f"switch_mode('{mode}')", mode.capitalize(), show=False) for mode, _s, _f, d in AREAS),
    ]

    def __init__(self, socket_path: str | Path, poll_seconds: float = POLL_SECONDS,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc), browse_from: str | Path = "/"):
        super().__init__()
        self.browse_from = Path(browse_from)  # where directory trees (sources, restore targets) open
        self.now = now  # the clock the screens' ages and lags are counted on (fixed in snapshot tests)
        self.daemon = Daemon(socket_path)
        self.poll_seconds = poll_seconds
        self.latest: dict = {"status": None, "jobs": None, "alerts": None}
        self.lost: tuple[str, str] | None = None
        self._last_input = time.monotonic()
        self._thresholds = gc.get_threshold()
        self._walk_all_at = 0.0

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(self.poll_seconds, self.poll)
        # Python's full collections walk every object alive: Textual holds some 100,000 for Management's 10,000
        # cartridges (its render caches mostly), 70-180 ms a walk, which fell on whatever keystroke was being
        # answered. They run here only while the operator is idle; the young generations still run as usual.
        gc.set_threshold(self._thresholds[0], self._thresholds[1], 1 << 30)
        self.set_interval(IDLE_SECONDS / 2, self._collect_when_idle)

    def on_unmount(self) -> None:
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def _collect_when_idle(self) -> None:
        """What survives is then frozen (left out of later collections), so the next idle one walks only what is
        new: a few ms, where a walk of everything took 70-290 ms, long enough for a key pressed then to wait on it.
        Now and then (WALK_ALL_SECONDS) everything is walked again, for cycles among frozen objects that died."""
        now = time.monotonic()
        if not gc.get_count()[2] or now - self._last_input < IDLE_SECONDS:
            return
        if now >= self._walk_all_at:
            gc.unfreeze()
            self._walk_all_at = now + WALK_ALL_SECONDS
        gc.collect()
        gc.freeze()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The shown area's own key is left out of the footer (the area is there already): with it, the areas'
        keys and a screen's own no longer fit 140 columns."""
        if action == "switch_mode" and parameters and parameters[0] == self.current_mode:
            return False
        return True

    @work(thread=True, exclusive=True, group="poll")
    def poll(self) -> None:
        try:
            seen = self.daemon.snapshot()
        except DaemonUnreachable as exc:
            self.call_from_thread(self.daemon_lost, exc.message, exc.fix)
            return
        except TapelineError as exc:
            self.call_from_thread(self.daemon_lost, exc.message, exc.fix or "")
            return
        self.call_from_thread(self._refreshed, seen)

    def _refreshed(self, seen: dict) -> None:
        if self.lost is not None:
            self.lost = None
            self.tell(DaemonFound())
        status, jobs = seen["status"], seen["jobs"]
        alerts = status.get("alerts", [])
        alerts_changed = alerts != self.latest["alerts"]
        self.latest = {"status": status, "jobs": jobs, "alerts": alerts}
        self.tell(StatusRefreshed(status))
        self.tell(JobsRefreshed(jobs))
        if alerts_changed:
            self.tell(AlertsChanged(alerts))

    def daemon_lost(self, error: str, fix: str) -> None:
        self.lost = (error, fix)
        self.tell(DaemonLost(error, fix))

    def tell(self, message) -> None:
        """To the shown area (under any dialog it has open); the others catch up from `latest` when shown."""
        for screen in self.screen_stack:
            if isinstance(screen, AreaScreen):
                screen.post_message(message)

    def refresh_now(self) -> None:
        """Poll at once (after an action), rather than at the next tick."""
        self.poll()
