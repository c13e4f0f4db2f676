"""Linux SCSI device discovery, as `lsscsi -g` shows it: every SCSI generic node with its type and strings.

Public API:

    discover(sysfs="/sys", dev="/dev") -> list[ScsiDevice]      sorted by [host:channel:target:lun]
    ScsiDevice: hctl (h, c, t, l), type_code, type_name ("tape", "mediumx", ...), vendor, model, revision,
        node ("/dev/nst0", "/dev/sch0", "/dev/sda" or None), sg ("/dev/sg4"), url ("sg:///dev/sg4"),
        is_tape, is_changer; str(device) is an lsscsi-style line
    tapes_and_changers(sysfs="/sys") -> list[ScsiDevice]

Layout read (real Linux): `/sys/class/scsi_generic/sgN` is (a link to) `.../H:C:T:L/scsi_generic/sgN`, and its
`device` link is the SCSI device directory `H:C:T:L`, which holds `type`, `vendor`, `model`, `rev` and one
directory per upper driver: `scsi_tape/` (st0, nst0, nst0a, ...), `scsi_changer/` (sch0), `block/` (sda).
Tape nodes are reported as the no-rewind `nstN`, the one a backup application wants. A changer is often LUN 1 of a
drive's target (real-outputs/lsscsi-04.txt): nothing here assumes one device per target.

Invariants: read-only; a device whose attributes cannot be read is still listed with empty strings (lsscsi does the
same), so a half-gone device never hides the others; a missing /sys/class/scsi_generic gives an empty list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TYPE_NAMES = {
    0x00: "disk",
    0x01: "tape",
    0x02: "printer",
    0x03: "process",
    0x04: "worm",
    0x05: "cd/dvd",
    0x06: "scanner",
    0x07: "optical",
    0x08: "mediumx",
    0x09: "comms",
    0x0C: "storage",
    0x0D: "enclosu",
    0x0E: "sim dsk",
    0x0F: "opti rd",
    0x10: "bridge",
    0x11: "osd",
    0x12: "adi",
    0x1E: "wlun",
    0x1F: "no dev",
}
_HCTL = re.compile(r"^(\d+):(\d+):(\d+):(\d+)$")


@dataclass(frozen=True, slots=True)
class ScsiDevice:
    hctl: tuple[int, int, int, int]
    type_code: int
    vendor: str
    model: str
    revision: str
    sg: str
    node: str | None = None

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type_code, f"type{self.type_code:02x}")

    @property
    def url(self) -> str:
        return f"sg://{self.sg}"

    @property
    def is_tape(self) -> bool:
        return self.type_code == 0x01

    @property
    def is_changer(self) -> bool:
        return self.type_code == 0x08

    def __str__(self) -> str:
        hctl = "[{}:{}:{}:{}]".format(*self.hctl)
        return (
            f"{hctl:<13}{self.type_name:<8}{self.vendor:<9.8}{self.model:<17.16}{self.revision:<6.4}"
            f"{self.node or '-':<11}{self.sg}"
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _node(device_dir: Path, dev: str) -> str | None:
    tape = device_dir / "scsi_tape"
    if tape.is_dir():
        names = [p.name for p in tape.iterdir() if re.fullmatch(r"nst\d+", p.name)]
        if names:
            return f"{dev}/{sorted(names)[0]}"
    for sub, pattern in (("scsi_changer", r"sch\d+"), ("block", r"[a-z]+\d*"), ("scsi_disk", None)):
        d = device_dir / sub
        if pattern and d.is_dir():
            names = sorted(p.name for p in d.iterdir() if re.fullmatch(pattern, p.name))
            if names:
                return f"{dev}/{names[0]}"
    return None


def discover(sysfs: str | Path = "/sys", dev: str = "/dev") -> list[ScsiDevice]:
    root = Path(sysfs) / "class" / "scsi_generic"
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        device_dir = (entry / "device").resolve()
        match = _HCTL.match(device_dir.name)
        if not match:
            continue
        type_text = _read(device_dir / "type")
        found.append(
            ScsiDevice(
                hctl=tuple(int(x) for x in match.groups()),  # type: ignore[arg-type]
                type_code=int(type_text) if type_text.isdigit() else 0x1F,
                vendor=_read(device_dir / "vendor"),
                model=_read(device_dir / "model"),
                revision=_read(device_dir / "rev"),
                sg=f"{dev}/{entry.name}",
                node=_node(device_dir, dev),
            )
        )
    return sorted(found, key=lambda d: d.hctl)


def tapes_and_changers(sysfs: str | Path = "/sys", dev: str = "/dev") -> list[ScsiDevice]:
    return [d for d in discover(sysfs, dev) if d.is_tape or d.is_changer]
