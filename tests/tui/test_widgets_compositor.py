"""The room's compositor: a roll frame renders the roll only, and writes what Textual's own would write."""

from __future__ import annotations

from collections.abc import Callable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer

from tests.tui.snapshot_apps import SnapApp
from tui.perf import RegionCompositor
from tui.widgets.header import SafeHeader
from tui.widgets.keyboard_roll import KeyboardRoll
from tui.widgets.status import StatusBar


def _count_renders(widgets: list[Widget]) -> dict[str, int]:
    counts = {type(w).__name__: 0 for w in widgets}
    for widget in widgets:
        original, name = widget.render_lines, type(widget).__name__

        def counted(
            crop: Region, original: Callable[[Region], list[Strip]] = original, name: str = name
        ) -> list[Strip]:
            counts[name] += 1
            return original(crop)

        widget.render_lines = counted  # type: ignore[method-assign]
    return counts


async def test_roll_frames_render_neither_header_footer_nor_status_bar():
    app = SnapApp("room")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen._compositor, RegionCompositor)
        roll = screen.query_one(KeyboardRoll)
        status = screen.query_one(StatusBar)
        counts = _count_renders([screen.query_one(SafeHeader), screen.query_one(Footer), status])
        frames = roll.frames
        for i in range(5):
            app.clock.t += roll.seconds_per_row
            roll.note_on(2, 40 + i, 80)
            roll.advance()
            await pilot.pause()
        assert roll.frames > frames
        assert counts == {"SafeHeader": 0, "Footer": 0, "StatusBar": 0}
        status.rtt_ms = 99
        await pilot.pause()
        assert counts["StatusBar"] >= 1
        assert "rtt 99 ms" in "".join(strip.text for strip in screen._compositor.render_strips())


async def test_partial_updates_write_the_same_as_textuals_compositor():
    app = SnapApp("room")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        screen = app.screen
        compositor = screen._compositor
        roll = screen.query_one(KeyboardRoll).region
        status = screen.query_one(StatusBar).region
        cases = [
            {Region(roll.x, roll.bottom - 4, roll.width, 4)},  # the newest row and the keyboard
            {roll},
            {status},
            {Region(0, roll.bottom - 2, 120, 4)},  # the keyboard and the chat and players below it
            {Region(50, 0, 40, 36)},  # a column through every widget
            {Region(3, 1, 5, 2), Region(100, 30, 10, 3)},  # two apart
        ]
        for dirty in cases:
            written = []
            for cls in (RegionCompositor, Compositor):
                compositor.__class__ = cls
                compositor._dirty_regions = set(dirty)
                update = compositor.render_partial_update()
                assert update is not None, dirty
                written.append(update.render_segments(app.console))
            compositor.__class__ = RegionCompositor
            assert written[0] == written[1], dirty
