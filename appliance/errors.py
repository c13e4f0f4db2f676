"""The appliance's error hierarchy. Each class carries the exit code and the HTTP status it maps to.

Messages name the cause and the fix on one line: `str(err)` is "cause: fix", and every error carries its fix (a
test walks every raise in the appliance). The API sends errors as JSON `{"error", "fix", "exit_code", "type"}` and
the client turns them back into the same classes (`from_payload`).

Exceptions from outside the hierarchy (the engine's SyncRefused, the drivers' DeviceError family, anything
unexpected) become one of these classes in one place, `as_error`, which the API's handler and `cli.main` both use.
They are recognised by class name: this module stays importable by the API client and the console, which may not
load the protect engine or the drivers.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WARNINGS = 3


class TapelineError(Exception):
    exit_code = EXIT_FAILED
    http_status = 500

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}: {self.fix}" if self.fix else self.message

    def to_payload(self) -> dict:
        return {"error": self.message, "fix": self.fix, "exit_code": self.exit_code, "type": type(self).__name__}


class UsageError(TapelineError):
    exit_code = EXIT_USAGE
    http_status = 400


class ConfigError(UsageError):
    """The configuration file is missing, unreadable or has a bad key."""


class NotFound(TapelineError, LookupError):
    """A group, recovery point, job or file that does not exist."""

    http_status = 404


class Conflict(TapelineError):
    """The request clashes with the current state (a name in use, a job already running)."""

    http_status = 409


class DaemonUnreachable(TapelineError):
    """A client found no daemon on the API socket."""

    http_status = 503


class Unavailable(TapelineError):
    """The daemon cannot do it now (its catalog cannot be written: disk full, database down); nothing was changed."""

    http_status = 503


class JobFailed(TapelineError):
    """A job a client waited for ended failed or cancelled."""


class CompletedWithWarnings(TapelineError):
    """A job a client waited for succeeded, with warnings a person should read."""

    exit_code = EXIT_WARNINGS


_BY_NAME = {cls.__name__: cls for cls in (TapelineError, UsageError, ConfigError, NotFound, Conflict,
                                            DaemonUnreachable, Unavailable, JobFailed, CompletedWithWarnings)}

INTERNAL_FIX = "see the daemon's log (journalctl -u tapeline) and report it"

# Classes outside the hierarchy, by the name of the class (or of a base class) -> (our class, fix when the message
# carries none). The most specific name comes first in the MRO, so a subclass wins over its base.
_OUTSIDE = {
    "SyncCancelled": (JobFailed, "start it again when wanted"),
    "SyncRefused": (Conflict, "check the source, then sync again"),
    "DeviceNotFound": (NotFound, "check the device URL (`tapeline-vtl` or the changer's /dev/sg path)"),
    "DeviceBusy": (Conflict, "stop the other user of the device, or wait for it"),
    "DeviceError": (TapelineError, "check the device, its cables and its log, then retry"),
}


def as_error(exc: BaseException) -> TapelineError:
    """The TapelineError that stands for `exc` (the exit code, the HTTP status and the fix come with it). An
    exception nobody expected becomes an internal error whose fix points at the log, where its traceback is."""
    if isinstance(exc, TapelineError):
        return exc
    for base in type(exc).__mro__:
        if base.__name__ in _OUTSIDE:
            cls, default_fix = _OUTSIDE[base.__name__]
            text = (str(exc).splitlines() or [""])[0] or base.__name__
            hint = getattr(exc, "hint", None) or None  # SCSI sense errors say what to do
            cause, _, fix = text.partition(": ") if hint is None else (text, "", hint)
            err = cls(cause, fix or default_fix)
            err.__cause__ = exc
            return err
    first_line = (str(exc).splitlines() or [""])[0]
    err = TapelineError(f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__, INTERNAL_FIX)
    err.__cause__ = exc
    return err


def from_payload(payload: dict) -> TapelineError:
    """The exception an API error payload stands for (TapelineError when the type is unknown to this client)."""
    cls = _BY_NAME.get(payload.get("type", ""), TapelineError)
    err = cls(payload.get("error") or "the daemon reported an error", payload.get("fix"))
    if cls is TapelineError and payload.get("exit_code") in (EXIT_FAILED, EXIT_USAGE, EXIT_WARNINGS):
        err.exit_code = payload["exit_code"]
    return err
