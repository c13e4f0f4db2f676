"""The footer of every area: Textual's, with keys that are out of reach for a moment dimmed in place rather than all
keys mounted again.

Textual's Footer removes and mounts all its keys again on every change of the screen's bindings. Focus moving is
such a change: in a text field (Management's filter) the area's letter keys are out of reach (the field takes
letters), and they come back when the field is left; each recompose cost 100-300 ms on this machine, the slowest
keystrokes of filtering the cartridges. Here a change that only leaves out keys already drawn, or brings back ones
drawn earlier, dims them or lights them again, as Textual draws a disabled binding (same width: no layout of the
screen either); anything else (a key never drawn, one enabled or disabled) recomposes as before.

In a terminal too narrow for all its keys on one line (under some 140 columns), Textual's Footer scrolls them
sideways, out of sight. This one takes as many lines as they need, the keys in columns (a grid).
"""

from __future__ import annotations

from math import ceil

from textual import events
from textual.keys import key_to_character
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class AreaFooter(Footer):
    DEFAULT_CSS = """
    AreaFooter.-lines { layout: grid; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple = ()  # what the last recompose drew, in its order
        self._shown: tuple | None = None  # what is visible of it now

    def _showing(self, screen: Screen) -> tuple:
        """What compose draws from the bindings: each shown key, its action, words, state and group."""
        return tuple((b.key, b.action, b.description, enabled, tooltip, b.group)
                     for _node, b, enabled, tooltip in screen.active_bindings.values() if b.show)

    def bindings_changed(self, screen: Screen) -> None:
        showing = self._showing(screen)
        if showing == self._shown:
            return
        if not (screen.app.app_focus and self.is_attached and screen is self.screen):
            return super().bindings_changed(screen)  # which waits too
        self._shown = showing
        if self._only_taken_by_focus(screen, showing):
            enabled_by = {(key, action): enabled for key, action, _words, enabled, *_ in showing}
            for footer_key in self.query(FooterKey):
                if not footer_key.has_class("-command-palette"):
                    out = not enabled_by.get((footer_key.key, footer_key.action), False)
                    footer_key.set_class(out, "-disabled")
                    footer_key._disabled = out  # what FooterKey's click reads: a bell, not the key sent to the field
            return
        self._drawn = showing
        super().bindings_changed(screen)

    def _only_taken_by_focus(self, screen: Screen, showing: tuple) -> bool:
        """Whether `showing` is what is drawn, in its order, less keys the focused widget takes for itself (a
        field's letters). A key the screen leaves out (check_action False: Management's tab-bound keys on another
        tab) is not: it goes, as in Textual's Footer."""
        kept = set(showing)
        focused = screen.focused
        return bool(self._drawn) and all(entry[-1] is None for entry in self._drawn) and \
            [entry for entry in self._drawn if entry in kept] == list(showing) and \
            all(focused is not None and focused.check_consume_key(key, key_to_character(key))
                for key, *_ in (entry for entry in self._drawn if entry not in kept))

    async def recompose(self) -> None:
        await super().recompose()
        self.fit()

    def on_resize(self, _event: events.Resize) -> None:
        self.fit()

    def fit(self) -> None:
        """As few lines as hold every key, each line's keys in the same columns, beside the palette's key."""
        keys = [k for k in self.query(FooterKey) if not k.has_class("-command-palette")]
        if not keys or not self.size.width:
            return
        def width(key: FooterKey) -> int:  # as laid out on one line (not yet, just after a recompose)
            return key.render().cell_len + key.styles.gutter.width + key.styles.margin.width
        room = self.size.width - sum(width(k) for k in self.query(FooterKey) if k.has_class("-command-palette"))
        widths = [width(k) for k in keys]
        lines = 1
        while lines < len(keys):
            columns = [max(widths[c::ceil(len(keys) / lines)]) for c in range(ceil(len(keys) / lines))]
            if sum(columns) <= room:
                break
            lines += 1
        columns = [max(widths[c::ceil(len(keys) / lines)]) for c in range(ceil(len(keys) / lines))]
        self.set_class(lines > 1, "-lines")
        self.styles.grid_size_columns = len(columns)
        self.styles.grid_columns = " ".join(map(str, columns))  # each as wide as its widest key
        self.styles.height = lines
