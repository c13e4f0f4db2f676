"""A table of many rows (10,000 cartridges) filtered as the operator types: only the lines on screen are drawn.

Why not DataTable: refilling a DataTable with 10,000 rows takes seconds per keystroke (every row is laid out when
added), and it cannot hide rows. Here the rows stay plain tuples; a filter keeps the indices of those that match
every typed word (any case, anywhere in the row), and `render_line` draws the visible ones (Textual's line API), so
a keystroke costs one pass over lowercase strings plus a screenful of lines.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

GAP = 2


class FilteredTable(ScrollView, can_focus=True):
    """Rows of text under a header; `filter(text)` narrows them, `selected` is the row under the cursor."""

    BINDINGS = [
        Binding("up", "move(-1)", show=False), Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home", "move(-1000000000)", show=False), Binding("end", "move(1000000000)", show=False),
    ]
    DEFAULT_CSS = """
    FilteredTable { height: 1fr; }
    """

    def __init__(self, columns: list[tuple[str, int]], **kwargs):
        super().__init__(**kwargs)
        self.columns = columns
        self.rows: list[tuple] = []
        self._keys: list[str] = []
        self.shown: list[int] = []  # indices into rows, in order
        self.cursor = 0
        self._text = ""
        self._width = sum(w for _, w in columns) + GAP * (len(columns) - 1)

    # -- data -----------------------------------------------------------------------------------------------------

    def set_rows(self, rows: list[tuple]) -> None:
        """Replace the rows (the cursor stays on the same first cell when it is still there)."""
        keep = self.selected[0] if self.selected else None
        self.rows = rows
        self._keys = [" ".join(str(c) for c in r).lower() for r in rows]
        self.filter(self._text, keep=keep)

    def filter(self, text: str, keep=None) -> None:
        self._text = text
        words = text.lower().split()
        keys = self._keys
        self.shown = [i for i, k in enumerate(keys) if all(w in k for w in words)] if words else list(range(len(keys)))
        self.cursor = 0
        if keep is not None:
            self.cursor = next((n for n, i in enumerate(self.shown) if self.rows[i][0] == keep), 0)
        self.virtual_size = Size(self._width, len(self.shown) + 1)
        self.scroll_to(y=max(0, self.cursor - self.size.height // 2), animate=False)
        self.refresh()

    @property
    def selected(self) -> tuple | None:
        return self.rows[self.shown[self.cursor]] if self.shown else None

    # -- drawing --------------------------------------------------------------------------------------------------

    def _line(self, cells) -> str:
        return (" " * GAP).join(str(c)[:w].ljust(w) for c, (_, w) in zip(cells, self.columns))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:  # the header stays put
            strip = Strip([Segment(self._line([t for t, _ in self.columns]), Style(bold=True, underline=True))])
            return strip.crop_extend(scroll_x, scroll_x + width, None)
        n = scroll_y + y - 1
        if n >= len(self.shown):
            return Strip.blank(width)
        text = self._line(self.rows[self.shown[n]])
        style = Style(reverse=True) if n == self.cursor and self.has_focus else \
            Style(bold=True) if n == self.cursor else Style(dim=n % 2 == 1)
        return Strip([Segment(text, style)]).crop_extend(scroll_x, scroll_x + width, None)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- moving ---------------------------------------------------------------------------------------------------

    def _show_cursor(self) -> None:
        page = max(1, self.size.height - 1)
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= self.scroll_y + page:
            self.scroll_to(y=self.cursor - page + 1, animate=False)
        self.refresh()

    def action_move(self, by: int) -> None:
        if self.shown:
            self.cursor = max(0, min(len(self.shown) - 1, self.cursor + by))
            self._show_cursor()

    def action_page(self, by: int) -> None:
        self.action_move(by * max(1, self.size.height - 2))

    def on_click(self, event) -> None:
        n = self.scroll_y + event.y - 1
        if 0 <= n < len(self.shown):
            self.cursor = n
            self.refresh()
