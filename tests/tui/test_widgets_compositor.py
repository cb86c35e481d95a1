"""The room's compositor: a roll frame renders the roll only, and writes what Textual's own would write."""

from __future__ import annotations

from collections.abc import Callable

from textual._compositor import Compositor
from textual.app import App
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer

from tui.net import model as m
from tui.perf import RegionCompositor
from tui.screens.room import RoomScreen
from tui.widgets.header import SafeHeader
from tui.widgets.keyboard_roll import KeyboardRoll
from tui.widgets.status import StatusBar


class FixedClock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


class RoomApp(App[None]):
    """A room screen with two players and a few held notes, no network."""

    CSS_PATH = "../../tui/app.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock()

    def on_mount(self) -> None:
        users = tuple(
            m.UserInfo(uid, name, color, "online", 0, False, uid)
            for uid, name, color in ((1, "ann", "#e6194b"), (2, "bob", "#3cb44b"))
        )
        settings = m.RoomSettingsInfo(True, False, 20, True, False)
        room = m.RoomInfo("jam session", False, 2, settings, users, (), 0)
        screen = RoomScreen(room, 1, None, clock=self.clock, stats_interval_s=0)
        self.push_screen(screen)
        self.call_after_refresh(self._hold_notes, screen)

    def _hold_notes(self, screen: RoomScreen) -> None:
        roll = screen.query_one(KeyboardRoll)
        for key in (48, 52, 55, 60):
            roll.note_on(2, key, 90)
            self.clock.t += 0.1
        roll.advance()


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
    app = RoomApp()
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
        status.connection, status.rtt_ms = "connected", 99
        await pilot.pause()
        assert counts["StatusBar"] >= 1
        assert "rtt 99 ms" in "".join(strip.text for strip in screen._compositor.render_strips())


async def test_partial_updates_write_the_same_as_textuals_compositor():
    app = RoomApp()
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
