"""What the simulated hardware is: LTO media and drive generations, and the library model, as frozen data.

Invariants: every difference between generations or vendors lives in these tables (capacities, speeds, density and
medium-type codes, barcode suffixes, compatibility, element address bases, INQUIRY strings), never in `if` branches
elsewhere. Figures are the LTO program's native values (reference/scsi.md §5); timings are typical full-height drive
figures and only feed the timing model.
"""

from __future__ import annotations

from dataclasses import dataclass

TB = 10**12
MB = 10**6


@dataclass(frozen=True, slots=True)
class Media:
    """A cartridge type: what its barcode suffix says and what it holds."""

    name: str  # "LTO-8"
    generation: int  # 5..9; M8 media is generation 7 formatted at 8
    suffix: str  # data barcode suffix: "L8"
    worm_suffix: str  # "LY"
    native_capacity: int  # bytes
    density_code: int  # MODE SENSE block descriptor density
    medium_type: int  # MODE SENSE header medium type (IBM coding)
    speed_floor: int  # MB/s: lowest speed-matching step; slower hosts cause backhitches
    native_rate: int  # MB/s


@dataclass(frozen=True, slots=True)
class Drive:
    """A drive generation: what it reads and writes and how long it takes to move tape."""

    name: str  # "LTO-8"
    generation: int
    vendor: str  # T10 vendor id (8 chars max)
    product: str  # INQUIRY product id (16 chars max)
    revision: str  # 4 chars
    native_rate: int  # MB/s
    writes: frozenset[str]  # media names it reads and writes
    reads: frozenset[str]  # media names it reads only (writes, plus read-only older ones)
    load_s: float  # load and thread, cartridge in the throat to ready at BOP
    unload_s: float  # rewind from BOP, unthread, eject
    full_wind_s: float  # rewind or locate from BOP to the far end of the tape
    max_block: int = 8 * 1024 * 1024  # READ BLOCK LIMITS maximum
    first_load_s: float = 0.0  # LTO-9 media optimization on a new cartridge's first load

    def can_read(self, media: Media) -> bool:
        return media.name in self.writes or media.name in self.reads

    def can_write(self, media: Media) -> bool:
        return media.name in self.writes


MEDIA: dict[str, Media] = {
    m.name: m
    for m in (
        Media("LTO-5", 5, "L5", "LV", 1_500 * 10**9, 0x58, 0x58, 40, 140),
        Media("LTO-6", 6, "L6", "LW", 2_500 * 10**9, 0x5A, 0x68, 40, 160),
        Media("LTO-7", 7, "L7", "LX", 6 * TB, 0x5C, 0x78, 101, 300),
        Media("LTO-7 M8", 7, "M8", "M8", 9 * TB, 0x5D, 0x78, 112, 300),
        Media("LTO-8", 8, "L8", "LY", 12 * TB, 0x5E, 0x88, 112, 360),
        Media("LTO-9", 9, "L9", "LZ", 18 * TB, 0x60, 0x98, 177, 400),
    )
}

# Cleaning cartridges fit every generation; the "L1" of CLNxxxL1 is the universal cleaner's suffix.
CLEANING_SUFFIXES = ("L1", "CU")
CLEANING_USES = 50


def _drive(gen: int, rate: int, writes: tuple[str, ...], reads: tuple[str, ...], first_load_s: float = 0.0) -> Drive:
    return Drive(
        name=f"LTO-{gen}",
        generation=gen,
        vendor="IBM",
        product=f"ULT3580-TD{gen}",
        revision="2160",
        native_rate=rate,
        writes=frozenset(writes),
        reads=frozenset(reads),
        load_s=19.0,
        unload_s=22.0,
        full_wind_s=98.0,
        first_load_s=first_load_s,
    )


DRIVES: dict[str, Drive] = {
    d.name: d
    for d in (
        _drive(5, 140, ("LTO-5",), ()),
        _drive(6, 160, ("LTO-6", "LTO-5"), ()),
        _drive(7, 300, ("LTO-7", "LTO-6"), ("LTO-5",)),
        _drive(8, 360, ("LTO-8", "LTO-7", "LTO-7 M8"), ()),
        _drive(9, 400, ("LTO-9", "LTO-8"), (), first_load_s=20 * 60.0),
    )
}


@dataclass(frozen=True, slots=True)
class Library:
    """The changer's identity and element address map (mhVTL's smc_personality_template as data)."""

    vendor: str
    product: str
    revision: str
    transport_base: int  # MTE (robot) address
    storage_base: int
    ie_base: int
    drive_base: int
    move_s: float  # robot time for one MOVE MEDIUM
    serial_prefix: str
    # The largest layout `init` accepts: about the biggest configuration of the real product, and always inside the
    # element address ranges above (drives below the next range's base, mail slots likewise).
    max_drives: int
    max_mailslots: int


LIBRARIES: dict[str, Library] = {
    "L700": Library("STK", "L700", "0107", 1, 1000, 10, 500, 6.0, "XYZZY", max_drives=20, max_mailslots=40),
    "TS3500": Library("IBM", "03584L32", "9100", 0, 0x400, 0x300, 0x101, 8.0, "0000013", max_drives=192,
                      max_mailslots=224),
}
DEFAULT_LIBRARY = "L700"


def media_for_barcode(barcode: str) -> tuple[Media | None, str]:
    """(media, kind) from a barcode's suffix; kind is "data", "worm" or "cleaning"; media None for cleaning."""
    if barcode.startswith("CLN") or barcode[-2:] in CLEANING_SUFFIXES:
        return None, "cleaning"
    suffix = barcode[-2:]
    for media in MEDIA.values():
        if suffix == media.suffix:
            return media, "data"
    for media in MEDIA.values():
        if suffix == media.worm_suffix and media.worm_suffix != media.suffix:
            return media, "worm"
    raise ValueError(
        f"barcode {barcode!r} has no LTO suffix: end it with one of "
        + ", ".join(sorted({m.suffix for m in MEDIA.values()} | {m.worm_suffix for m in MEDIA.values()}))
        + " (or start a cleaning cartridge with CLN)"
    )
