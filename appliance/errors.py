"""The appliance's error hierarchy. Each class carries the exit code the CLI maps it to, in one place (cli.main).

Messages name the cause and the fix on one line: `str(err)` is "cause: fix". The API sends errors as JSON
`{"error", "fix", "exit_code", "type"}` and the client turns them back into the same classes (`from_payload`).
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


class JobFailed(TapelineError):
    """A job a client waited for ended failed or cancelled."""


class CompletedWithWarnings(TapelineError):
    """A job a client waited for succeeded, with warnings a person should read."""

    exit_code = EXIT_WARNINGS


_BY_NAME = {cls.__name__: cls for cls in (TapelineError, UsageError, ConfigError, NotFound, Conflict,
                                            DaemonUnreachable, JobFailed, CompletedWithWarnings)}


def from_payload(payload: dict) -> TapelineError:
    """The exception an API error payload stands for (TapelineError when the type is unknown to this client)."""
    cls = _BY_NAME.get(payload.get("type", ""), TapelineError)
    err = cls(payload.get("error") or "the daemon reported an error", payload.get("fix"))
    if cls is TapelineError and payload.get("exit_code") in (EXIT_FAILED, EXIT_USAGE, EXIT_WARNINGS):
        err.exit_code = payload["exit_code"]
    return err
