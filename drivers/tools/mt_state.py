"""Where the current file began, remembered between `tapeline-mt` runs as the Linux st driver remembers it in the
kernel, so that `status` can print the block number within a file that is not file 0.

SCSI cannot say how many blocks lie between the position and the last filemark: READ POSITION gives the object
number (blocks and filemarks from BOP) and, in its long form, the file number. After an `fsf` or `weof`, the head sits
just past a filemark, so that object number is where the file begins; this module keeps it, with the file number and
the cartridge's barcode, in one small file per device under $XDG_RUNTIME_DIR/tapeline-mt (else the temporary
directory, per user).

Invariants:
- `block_in_file` answers only from a record for the same device, cartridge and file number, at or before the
  position; anything else (another cartridge, a file never entered by fsf/weof, no barcode to tell cartridges apart)
  is -1, as st says when it does not know. A stale record can cost an exact number, never give a wrong one for
  another cartridge.
- Failing to write the record never fails the command that moved the tape: `status` then says -1.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FileStart:
    cartridge: str
    partition: int
    file: int
    object: int  # READ POSITION's object number of the file's first block


def state_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "tapeline-mt"
    return Path(tempfile.gettempdir()) / f"tapeline-mt-{os.getuid()}"


def _path(device: str) -> Path:
    return state_dir() / (hashlib.sha256(device.encode()).hexdigest()[:32] + ".json")


def remember(device: str, start: FileStart) -> None:
    path = _path(device)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"device": device, **asdict(start)}))
        os.replace(tmp, path)
    except OSError:
        pass  # the move happened; status falls back to -1 (see the module docstring)


def recall(device: str) -> FileStart | None:
    try:
        raw = json.loads(_path(device).read_text())
        if raw.pop("device") != device:
            return None
        return FileStart(**raw)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def block_in_file(device: str, cartridge: str | None, partition: int, file: int, position: int) -> int:
    """Blocks between the start of the current file and the position, or -1 when that start is not known."""
    start = recall(device)
    if (start is None or cartridge is None or start.cartridge != cartridge or start.partition != partition
            or start.file != file or start.object > position):
        return -1
    return position - start.object
