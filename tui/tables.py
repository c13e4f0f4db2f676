"""The row under a DataTable's cursor, by key, and refilling a table without losing it: what every area's tables do
on each poll.

Rows carry a key (a job id, a group name, "library:drive"); the cursor is found and kept by that key, never by
position, since a refill may add or drop rows above it.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import DataTable


def cursor_key(table: DataTable) -> str | None:
    """The key of the row under the cursor; None for an empty table."""
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


def refill(table: DataTable, rows: Iterable[tuple[str, list]]) -> None:
    """Replace the rows ((key, cells) each); the cursor stays on the same key while that row is there, else it goes
    to the top."""
    keep = cursor_key(table)
    table.clear()
    keys = set()
    for key, cells in rows:
        table.add_row(*cells, key=key)
        keys.add(key)
    if keep in keys:
        table.move_cursor(row=table.get_row_index(keep), animate=False)
