"""The previous manifest's rows of one source, merged as a stream against the walk (scan.py): the walk and the
rows share the manifest's order, so no dict of every path is built."""

from __future__ import annotations

from collections.abc import Iterator

from appliance.store.model import R_PATH


class OldRows:
    """The previous manifest's rows of one source, as a stream merged against the walk."""

    def __init__(self, rows: Iterator[list]) -> None:
        self.rows = rows
        self.row: list | None = None
        self._key: tuple | None = None
        self.advance()

    def advance(self) -> None:
        """On to the next row (the walk met this one)."""
        self.row = next(self.rows, None)
        self._key = None  # split only when the walk and the old rows part (most rows match by path)

    @property
    def key(self) -> tuple:
        if self._key is None:
            path = self.row[R_PATH] if self.row is not None else b""
            self._key = tuple(path.split(b"/")) if path else ()
        return self._key

    def take(self, key: tuple, deleted: list[list]) -> list | None:
        """Rows before `key` go to `deleted`; returns the row at `key`, if any."""
        while self.row is not None and self.key < key:
            deleted.append(self.row)
            self.advance()
        if self.row is not None and self.key == key:
            row = self.row
            self.advance()
            return row
        return None

    def subtree(self, key: tuple) -> Iterator[list]:
        """The rows under `key` (to carry over a directory that could not be read this time)."""
        n = len(key)
        while self.row is not None and self.key[:n] == key and len(self.key) > n:
            yield self.row
            self.advance()
