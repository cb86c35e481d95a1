"""The keyboard roll: a piano keyboard lit in each player's colour under a roll of their notes.

Feed it with `note_on` / `note_off` / `pedal` / `release_player` (stamped with its clock on arrival). It
plays too: the mouse (click and swipe across the keys) and, while it has focus, the computer keyboard
(`pianorhythm.keymap`: two rows, two octaves, arrows shift octave and velocity). Terminals send no key-up,
so a computer-key note lasts `note_length_s`; holding the key (auto-repeat) keeps it sounding. Every local
press and release is posted as `KeyboardRoll.LocalNote` for the screen to send, and lit at once for
`local_player`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import events
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget

from pianorhythm.keymap import KeymapState, PlayNote, StateChange, handle_key
from pianorhythm.roll import RollModel
from tui.widgets.keyboard_layout import KeyboardGeometry, fit
from tui.widgets.roll_render import RollPalette, RollRenderer

Clock = Callable[[], float]


class KeyboardRoll(Widget, can_focus=True):
    """The roll above, the keyboard below (`keyboard_rows` rows)."""

    DEFAULT_CSS = """
    KeyboardRoll {
        height: 1fr;
        min-height: 5;
        background: $background;
    }
    KeyboardRoll:focus {
        background-tint: $primary 6%;
    }
    KeyboardRoll > .keyboard-roll--white { background: #e8e8e8; color: #888888; }
    KeyboardRoll > .keyboard-roll--black { background: #1c1c1c; color: #888888; }
    KeyboardRoll > .keyboard-roll--label { color: #5a5a5a; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "keyboard-roll--white",
        "keyboard-roll--black",
        "keyboard-roll--label",
    }
    keymap: reactive[KeymapState] = reactive(KeymapState())

    @dataclass
    class LocalNote(Message):
        """The local player pressed (velocity > 0) or released (velocity 0) a key."""

        key: int
        velocity: int

    @dataclass
    class KeymapChanged(Message):
        """Octave or velocity changed (for the status bar)."""

        state: KeymapState

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        seconds_per_row: float = 0.1,
        keyboard_rows: int = 3,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.clock = clock
        self.seconds_per_row = seconds_per_row
        self.keyboard_rows = keyboard_rows
        self.model = RollModel()
        self.player_colors: dict[int, str] = {}
        self.local_player = 0
        self.echo_local = True  # light local presses at once (off when the engine echoes them back)
        self._renderer: RollRenderer | None = None
        self._last_slice = -1
        self._mouse_key: int | None = None
        self._key_timers: dict[int, Timer] = {}
        self._ticker: Timer | None = None
        self.frames = 0  # rendered frames, for the benchmark

    # -- feeding ----------------------------------------------------------------------------------------

    def note_on(self, player: int, key: int, velocity: int) -> None:
        self.model.note_on(player, key, velocity, self.clock())
        self._refresh_keys()

    def note_off(self, player: int, key: int) -> None:
        self.model.note_off(player, key, self.clock())
        self._refresh_keys()

    def pedal(self, player: int, down: bool) -> None:
        self.model.pedal(player, down, self.clock())
        self._refresh_keys()

    def release_player(self, player: int) -> None:
        self.model.release_player(player, self.clock())
        self._refresh_keys()

    def _roll_rows(self) -> int:
        return max(0, self.size.height - self.keyboard_rows)

    def _refresh_keys(self) -> None:
        """A key changed: only the keyboard and the newest roll row need drawing again."""
        if self._current_slice() != self._last_slice:
            self.refresh()  # the roll is due to scroll anyway: keep its rows in step
            return
        rows = self._roll_rows()
        self.refresh(Region(0, max(0, rows - 1), self.size.width, self.size.height - max(0, rows - 1)))

    def _refresh_roll(self) -> None:
        """The roll scrolled: every roll row changes, the keyboard does not."""
        self.refresh(Region(0, 0, self.size.width, max(1, self._roll_rows())))

    def set_colors(self, colors: dict[int, str]) -> None:
        if colors != self.player_colors:
            self.player_colors = dict(colors)
            if self._renderer is not None:
                self._renderer.forget_colors()
            self.refresh()

    @property
    def geometry(self) -> KeyboardGeometry:
        return self._get_renderer().geometry

    # -- rendering --------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._ticker = self.set_interval(self.seconds_per_row / 2, self._tick)

    def on_resize(self, event: events.Resize) -> None:
        self._renderer = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._renderer = None

    def _get_renderer(self) -> RollRenderer:
        width = self.size.width
        if self._renderer is None or self._renderer.width != width:
            palette = RollPalette(
                roll=self.rich_style,
                white=self.get_component_rich_style("keyboard-roll--white"),
                black=self.get_component_rich_style("keyboard-roll--black"),
                label=self.get_component_rich_style("keyboard-roll--label", partial=True),
            )
            self._renderer = RollRenderer(fit(width), palette, width, self.seconds_per_row)
        return self._renderer

    def _current_slice(self) -> int:
        # The epsilon keeps float division from landing just below a boundary (1000.7 / 0.1 = 10006.99...).
        return math.floor(self.clock() / self.seconds_per_row + 1e-9)

    def _tick(self) -> None:
        """Scroll when a new slice starts, but only while some bar is in view (idle costs nothing)."""
        now_slice = self._current_slice()
        if now_slice == self._last_slice:
            return
        rows = max(0, self.size.height - self.keyboard_rows)
        t0 = (now_slice - rows) * self.seconds_per_row
        t1 = (now_slice + 1) * self.seconds_per_row
        if self.model.sounding_count() or next(self.model.bars(t0, t1), None) is not None:
            self._refresh_roll()
        else:
            self._last_slice = now_slice

    def render_line(self, y: int) -> Strip:
        renderer = self._get_renderer()
        height = self.size.height
        roll_rows = max(0, height - self.keyboard_rows)
        if y >= roll_rows:
            rows = renderer.keyboard_rows(self.model, self.player_colors, min(self.keyboard_rows, height))
            index = y - roll_rows
            return rows[index] if 0 <= index < len(rows) else Strip.blank(renderer.width)
        now_slice = self._current_slice()
        if y == 0:
            self._last_slice = now_slice
            self.frames += 1
        slice_index = now_slice - (roll_rows - 1 - y)
        strip = renderer.roll_row(self.model, self.player_colors, slice_index)
        renderer.retire(slice_index, strip, now_slice, roll_rows + 2)
        return strip

    # -- playing ----------------------------------------------------------------------------------------

    def _press(self, key: int, velocity: int) -> None:
        if self.echo_local:
            self.note_on(self.local_player, key, velocity)
        self.post_message(self.LocalNote(key, velocity))

    def _release(self, key: int) -> None:
        if self.echo_local:
            self.note_off(self.local_player, key)
        self.post_message(self.LocalNote(key, 0))

    def play_key(self, note: PlayNote) -> None:
        """A fixed-length note; a repeat while it sounds extends it instead of striking again."""
        timer = self._key_timers.pop(note.key, None)
        if timer is not None:
            timer.stop()
        else:
            self._press(note.key, note.velocity)
        self._key_timers[note.key] = self.set_timer(note.length_s, lambda: self._end_key(note.key))

    def _end_key(self, key: int) -> None:
        if self._key_timers.pop(key, None) is not None:
            self._release(key)

    def on_key(self, event: events.Key) -> None:
        action = handle_key(self.keymap, event.key, event.character)
        if action is None:
            return
        event.stop()
        event.prevent_default()
        if isinstance(action, StateChange):
            self.keymap = action.state
            self.post_message(self.KeymapChanged(action.state))
        else:
            self.play_key(action)

    def _key_under(self, x: int, y: int) -> int | None:
        renderer = self._get_renderer()
        roll_rows = max(0, self.size.height - self.keyboard_rows)
        row = min(max(y - roll_rows, 0), self.keyboard_rows - 1)
        return renderer.geometry.key_at(x - renderer.pad_left, upper=row < self.keyboard_rows - 1)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        roll_rows = max(0, self.size.height - self.keyboard_rows)
        if event.y < roll_rows:
            return
        key = self._key_under(event.x, event.y)
        if key is None:
            return
        self.capture_mouse()
        self._mouse_key = key
        self._press(key, self.keymap.velocity)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._mouse_key is None:
            return
        key = self._key_under(event.x, event.y)
        if key is not None and key != self._mouse_key:
            self._release(self._mouse_key)
            self._mouse_key = key
            self._press(key, self.keymap.velocity)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._mouse_key is not None:
            self._release(self._mouse_key)
            self._mouse_key = None
        self.capture_mouse(False)
