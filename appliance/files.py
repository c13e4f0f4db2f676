"""Files written for people (a report exported by the CLI or the console): the whole file or none, readable by all.

Standard library only, and nothing of the appliance (a contract in pyproject.toml): the console writes its exports
with it, so a file exported there is the file `tapeline report --out` writes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MODE = 0o644  # a report is read by whoever it is handed to (mkstemp's file is 0600)


def write_atomically(path: str | Path, content: str) -> None:
    """Write `content` to a temporary file beside `path`, then rename it over `path`: a report half written over last
    week's would mislead whoever opens it. Raises OSError (nothing is left behind)."""
    target = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
