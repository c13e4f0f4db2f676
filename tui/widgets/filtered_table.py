"""A table of many rows (10,000 cartridges) filtered as the operator types: only the lines on screen are drawn.

Why not DataTable: refilling a DataTable with 10,000 rows takes seconds per keystroke (every row is laid out when
added), and it cannot hide rows. Here the rows stay plain tuples; a filter keeps the indices of those that match
every typed word (any case, anywhere in the row), and `render_line` draws the visible ones (Textual's line API), so
a keystroke costs one pass over lowercase strings (the rows' lowercase keys are made once, in `set_rows`) plus a
screenful of lines. A filter that only narrows the last one (more letters typed) looks only at the rows it kept.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

GAP = 2


class FilterInput(Input):
    """The words a FilteredTable is filtered by. Textual's Input sets its virtual size to its text's width at each
    key, and a virtual size asks for a layout of the whole screen (Management's: some 35 widgets), whose scrollbar
    updates then cost a second frame: a keystroke's answer took two frames instead of one. The field scrolls its
    text from its virtual size alone; it has no scrollbar to lay out."""

    virtual_size = Reactive(Size(0, 0), layout=False)


class FilteredTable(ScrollView, can_focus=True):
    """Rows of text under a header; `filter(text)` narrows them, `selected` is the row under the cursor."""

    BINDINGS = [
        Binding("up", "move(-1)", show=False), Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home", "move(-1000000000)", show=False), Binding("end", "move(1000000000)", show=False),
    ]
    DEFAULT_CSS = """
    FilteredTable { height: 1fr; overflow-y: scroll; scrollbar-size-vertical: 1; }
    """

    def __init__(self, columns: list[tuple[str, int]], **kwargs):
        super().__init__(**kwargs)
        self.columns = columns
        self.rows: list[tuple] = []
        self._keys: list[str] = []
        self.shown: list[int] = []  # indices into rows, in order
        self.cursor = 0
        self._text = ""
        self._words: list[str] = []  # the words `shown` was filtered by
        self._width = sum(w for _, w in columns) + GAP * (len(columns) - 1)

    # -- data -----------------------------------------------------------------------------------------------------

    def set_rows(self, rows: list[tuple]) -> None:
        """Replace the rows (the cursor stays on the same first cell when it is still there)."""
        keep = self.selected[0] if self.selected else None
        self.rows = rows
        self._keys = [" ".join(str(c) for c in r).lower() for r in rows]
        self._words = []  # new rows: nothing to narrow
        self.filter(self._text, keep=keep)

    def filter(self, text: str, keep=None) -> None:
        self._text = text
        words = text.lower().split()
        keys = self._keys
        if self._words and all(any(old in new for new in words) for old in self._words):
            shown = self.shown  # each word kept grew or stayed: whatever matches now matched before
        else:
            shown = range(len(keys))
        for word in words:
            shown = [i for i in shown if word in keys[i]]
        self.shown = list(shown)
        self._words = words
        self.cursor = 0
        if keep is not None:
            self.cursor = next((n for n, i in enumerate(self.shown) if self.rows[i][0] == keep), 0)
        self._resize(Size(self._width, len(self.shown) + 1))
        self.scroll_to(y=max(0, self.cursor - self.size.height // 2), animate=False)
        self.refresh()

    def _resize(self, size: Size) -> None:
        """The scrollable size follows the rows shown. Textual lays out the whole screen for a new virtual size
        (a frame more per keystroke, and then more for the scrollbars); a ScrollView's virtual size is its own (a
        layout keeps it), and the scrollbar is always there (overflow-y: scroll: one that came and went with the
        rows changed the width, a layout), so once laid out the scrollbar is only told the new size."""
        if not self.is_mounted or not self.size or not self.show_vertical_scrollbar:
            self.virtual_size = size
            return
        self.set_reactive(FilteredTable.virtual_size, size)
        self.vertical_scrollbar.window_virtual_size = size.height

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
