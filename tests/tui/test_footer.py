"""The footer in terminals narrower than its keys on one line: it takes more lines, and every key of the area shown
is there whole, none under the palette's key (Textual's Footer scrolled the rest out of sight). The daemon's answers
are fixed (test_recovery_snapshots.py's); at 140 columns and wider, test_shell.py."""

from __future__ import annotations

import pytest
from pilot import run
from test_recovery_snapshots import RecordedMedia, console

from tui.widgets.footer import AreaFooter, FooterKey


@pytest.mark.parametrize("width", [80, 110])
def test_every_key_is_in_the_footer_whole_in_a_narrow_terminal(width):
    async def scenario():
        app = console(RecordedMedia())
        async with app.run_test(size=(width, 40)) as pilot:
            for key in ["f1", "f2", "f3", "f5"]:
                await pilot.press(key)
                await pilot.pause(0.5)
                footer = app.screen.query_one(AreaFooter)
                keys = list(footer.query(FooterKey))
                palette = next(k for k in keys if k.has_class("-command-palette"))
                wanted = {b.binding.description for b in app.screen.active_bindings.values()
                          if b.binding.show and b.binding.description}
                assert wanted <= {k.description for k in keys}, key
                for k in keys:
                    if k is not palette:
                        assert 0 <= k.region.x and k.region.right <= palette.region.x, (key, k.description)
                        assert k.region.width >= k.render().cell_len, (key, k.description)  # not cut
                        assert footer.region.y <= k.region.y < footer.region.bottom, (key, k.description)
                assert footer.region.height > 1  # these areas' keys need more than one line here
    run(scenario)
