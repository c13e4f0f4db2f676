"""What every command-line tool on the hardware side shares (tapeline-mtx, tapeline-mt, tapeline-vtl)."""

from __future__ import annotations

import os
import signal
import sys


def reader_gone() -> int:
    """After EPIPE on stdout (`tapeline-mtx status | head`): point stdout at /dev/null so that the interpreter's
    last flush stays quiet, and give the exit code of a C tool killed by SIGPIPE, as mtx and mt-st would be."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE
