"""What the five areas share: the daemon banner, the header and footer, and calling the daemon off the event loop.

Invariants: a screen never calls the daemon on the event loop; `call` runs the call in a thread worker and hands the
answer back on the loop. An API error becomes a notification with its fix; an unreachable daemon becomes the banner
(the app's poller also raises it). Subclasses compose their body in `compose_body` and refresh from the app's messages
(`StatusRefreshed`, `JobsRefreshed`, `AlertsChanged`); when shown they catch up (`catch_up`: from `app.latest`, and
what each area reads itself), once per showing although Textual posts ScreenResume twice on a first switch_mode.
Textual calls every class's handler of a message in turn (AreaScreen's `on_mount` after the subclass's): subclasses
never call super() for a handler, or the base's runs twice.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header

from appliance.errors import DaemonUnreachable, TapelineError
from tui.messages import DaemonFound, DaemonLost
from tui.widgets.daemon_state import DaemonState
from tui.widgets.footer import AreaFooter


class AreaScreen(Screen):
    AREA = ""  # the title shown in the header

    def __init__(self) -> None:
        super().__init__()
        self.showing = False  # between a resume and the next suspend

    def compose(self) -> ComposeResult:
        yield Header()
        yield DaemonState(id="daemon-state")
        yield from self.compose_body()
        yield AreaFooter(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.title = f"Tapeline · {self.AREA}"
        self.query_one(DaemonState).display = False

    def on_screen_resume(self) -> None:
        if self.showing:
            return
        self.showing = True
        state = self.query_one(DaemonState)
        lost = self.app.lost
        if lost:
            state.show_lost(*lost)
        else:
            state.show_found()
        self.catch_up()

    def on_screen_suspend(self) -> None:
        self.showing = False

    def catch_up(self) -> None:
        """Redraw from `self.app.latest` (what the poller last saw), read what the area reads itself."""

    def on_daemon_lost(self, message: DaemonLost) -> None:
        self.query_one(DaemonState).show_lost(message.error, message.fix)

    def on_daemon_found(self, _message: DaemonFound) -> None:
        self.query_one(DaemonState).show_found()

    def done_note(self, note: str) -> None:
        """What a finished action did ("pool weekly created; ..."), as a sentence."""
        self.notify(note[0].upper() + note[1:] + ".", markup=False)

    def call(self, what: str, method: Callable, *args, done: Callable | None = None,
             failed: Callable | None = None, **kwargs) -> None:
        """Run `method(*args, **kwargs)` (a Daemon call) in a thread worker; `done(answer)` then runs on the event loop,
        or `failed()` after the failure was shown. `what` names the action in the failure's notification."""
        self._call_worker(what, method, args, kwargs, done, failed)

    @work(thread=True, group="calls")
    def _call_worker(self, what, method, args, kwargs, done, failed) -> None:
        try:
            answer = method(*args, **kwargs)
        except DaemonUnreachable as exc:
            self.app.call_from_thread(self.app.daemon_lost, exc.message, exc.fix)
            return
        except Exception as exc:  # noqa: BLE001 (a console shows what went wrong, with its fix; it does not die of it)
            text = f"{exc.message}\nFix: {exc.fix}" if isinstance(exc, TapelineError) and exc.fix else (
                exc.message if isinstance(exc, TapelineError) else f"{type(exc).__name__}: {exc}")
            self.app.call_from_thread(self.notify, text, title=f"{what} failed", severity="error", timeout=15,
                                      markup=False)
            if failed is not None:
                self.app.call_from_thread(failed)
            return
        if done is not None:
            self.app.call_from_thread(done, answer)
