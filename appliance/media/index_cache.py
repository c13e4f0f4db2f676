"""The appliance's copy of every set's index files: exactly the bytes written to tape after each part, one file per
part under `<data>/tape-index/<set uuid>/<part>.idx`. A restore plans its reads from them without a cartridge;
`media rebuild` writes them again from the tapes. Written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.media import format as fmt
from appliance.store import durable


class IndexCache:
    def __init__(self, root: Path):
        self.root = root

    def _dir(self, set_uuid: str) -> Path:
        return self.root / set_uuid

    def save(self, set_uuid: str, part: int, data: bytes) -> None:
        directory = self._dir(set_uuid)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = directory / f"{part}.idx"
        durable.write_file(final, data, final.with_suffix(".tmp"))

    def has(self, set_uuid: str) -> bool:
        return self._dir(set_uuid).is_dir()

    def load(self, set_uuid: str) -> list["fmt.SetIndex"]:
        """Every part's index, in part order. FileNotFoundError when this appliance has none (rebuild from tape)."""
        directory = self._dir(set_uuid)
        files = sorted(directory.glob("*.idx"), key=lambda p: int(p.stem))
        if not files:
            raise FileNotFoundError(directory)
        return [fmt.decode_index(p.read_bytes()) for p in files]

    def header(self, set_uuid: str) -> "fmt.SetHeader":
        """The set's header, from its first part's index without decoding its members."""
        return fmt.index_header((self._dir(set_uuid) / "1.idx").read_bytes())

    def drop(self, set_uuid: str) -> None:
        shutil.rmtree(self._dir(set_uuid), ignore_errors=True)
