"""Below the smallest size the screens are laid out for: a polite full-screen message, not a mangled screen.

    guard = SizeGuard(app)
    guard.follow_screens()     # in App.on_mount
    guard.check(size)          # on every App resize

While the terminal is smaller than MIN_WIDTH x MIN_HEIGHT, the current screen hides its widgets (CSS class
`-too-small`) and shows a `TooSmall` notice that has the focus, so keys typed meanwhile neither play nor
type. Enlarged again, every notice goes and the focus returns to where it was.
"""

from __future__ import annotations

from typing import Any, Final

from textual.app import App
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

MIN_WIDTH: Final = 60
MIN_HEIGHT: Final = 20


def too_small_text(size: Size) -> str:
    return (
        f"pianorhythm needs at least {MIN_WIDTH}×{MIN_HEIGHT}; "
        f"this terminal is {size.width}×{size.height} — enlarge it."
    )


def is_too_small(size: Size) -> bool:
    return size.width < MIN_WIDTH or size.height < MIN_HEIGHT


class TooSmall(Static, can_focus=True):
    SCOPED_CSS = False  # the rules hide the notice's siblings too
    DEFAULT_CSS = """
    Screen.-too-small > * {
        display: none;
    }
    Screen.-too-small > TooSmall {
        display: block;
        width: 100%;
        height: 100%;
        content-align: center middle;
        text-align: center;
        background: $background;
        padding: 0 1;
    }
    """

    def __init__(self, size: Size, restore_focus: Widget | None) -> None:
        super().__init__(too_small_text(size))
        self.restore_focus = restore_focus


class SizeGuard:
    def __init__(self, app: App[Any]) -> None:
        self.app = app

    def follow_screens(self) -> None:
        self.app.screen_change_signal.subscribe(self.app, self._screen_changed)

    def _screen_changed(self, screen: Screen[Any]) -> None:
        self.check(self.app.size)

    def check(self, size: Size) -> None:
        if not self.app.screen_stack:
            return
        if is_too_small(size):
            self._cover(self.app.screen, size)
        else:
            for screen in self.app.screen_stack:
                self._uncover(screen)

    def _cover(self, screen: Screen[Any], size: Size) -> None:
        notices = screen.query_children(TooSmall)
        if notices:
            notices.first().update(too_small_text(size))
            return
        notice = TooSmall(size, screen.focused)
        screen.add_class("-too-small")
        screen.mount(notice)
        notice.focus()

    def _uncover(self, screen: Screen[Any]) -> None:
        for notice in screen.query_children(TooSmall):
            restore = notice.restore_focus
            notice.remove()
            if restore is not None and restore.is_attached:
                screen.set_focus(restore)
        screen.remove_class("-too-small")
