"""The appliance's error hierarchy. Each class carries the exit code the CLI maps it to, in one place (cli.main).

Messages name the cause and the fix on one line.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WARNINGS = 3


class TapelineError(Exception):
    exit_code = EXIT_FAILED


class UsageError(TapelineError):
    exit_code = EXIT_USAGE


class NotFound(TapelineError, LookupError):
    """A group, recovery point, job or file that does not exist."""


class Conflict(TapelineError):
    """The request clashes with the current state (a name in use, a job already running)."""
