"""The keyboard roll: a piano keyboard lit in each player's colour under a roll of their notes.

Feed it with `note_on` / `note_off` / `pedal` / `release_player` (stamped with its clock on arrival). It
plays too: the mouse (click and swipe across the keys) and, while it has focus, the computer keyboard
(`pianorhythm.keymap`: two rows, two octaves, arrows shift octave and velocity). Most terminals send no
key-up, so a computer-key note lasts `note_length_s`; holding the key (auto-repeat) keeps it sounding. With
`hold_keys` (the terminal reports releases: pianorhythm.tui.keys.kitty) a key held is a note held until its
`KeyReleased`, and repeats are ignored. Every local
press and release is posted as `KeyboardRoll.LocalNote` for the screen to send, and lit at once for
`local_player`.

Drawing is decoupled from events: feeding only changes the model; a frame tick (`advance`, FRAMES_PER_ROW
times a row, just after a row starts, paused while nothing is in view) refreshes the whole roll when a new
slice starts and otherwise only the newest row and the keyboard, so 100 events a second cost at most
FRAMES_PER_ROW / seconds_per_row frames; local presses draw at once. `render_lines` hands
Textual the cached strips (`roll_render`) and reuses last frame's lines for rows that cannot have changed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
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
from pianorhythm.tui.keys.kitty import KeyReleased
from pianorhythm.tui.widgets.keyboard_layout import KeyboardGeometry, fit
from pianorhythm.tui.widgets.roll_render import RollPalette, RollRenderer

Clock = Callable[[], float]
# The roll draws at most this many frames per row (10 rows a second), however many notes arrive: the ticks
# are locked to the row boundaries, so the roll scrolls evenly and a remote key lights at most one tick late
# (100 ms at 1; your own keys light at once). Every frame costs the whole process about 0.1 % of a core at
# 50 notes/s; bench/tui_render.py measures it.
FRAMES_PER_ROW = 1


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
        frames_per_row: int = FRAMES_PER_ROW,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.clock = clock
        self.seconds_per_row = seconds_per_row
        self.keyboard_rows = keyboard_rows
        self.frames_per_row = frames_per_row
        self.model = RollModel()
        self.player_colors: dict[int, str] = {}
        self.local_player = 0
        self.echo_local = True  # light local presses at once (off when the engine echoes them back)
        self._renderer: RollRenderer | None = None
        self._frame_slice = self._current_slice()  # the slice the bottom roll row shows
        self._drawn_version = -1  # the model version last drawn
        self._last_frame: tuple[Hashable, int, int, list[Strip]] | None = None  # (key, slice, version, lines)
        self._mouse_key: int | None = None
        self._key_timers: dict[int, Timer] = {}
        self.hold_keys = False
        self._held: dict[str, int] = {}  # character -> the key it holds down (hold_keys)
        self._ticker: Timer | None = None
        self.frames = 0  # rendered frames, for the benchmark

    # -- feeding: the model changes at once, the screen at the next frame tick --------------------------

    def note_on(self, player: int, key: int, velocity: int) -> None:
        self.model.note_on(player, key, velocity, self.clock())
        self._wake()

    def note_off(self, player: int, key: int) -> None:
        self.model.note_off(player, key, self.clock())
        self._wake()

    def pedal(self, player: int, down: bool) -> None:
        self.model.pedal(player, down, self.clock())
        self._wake()

    def release_player(self, player: int) -> None:
        self.model.release_player(player, self.clock())
        self._wake()

    def _wake(self) -> None:
        if self._ticker is not None:
            self._ticker.resume()

    def _roll_rows(self) -> int:
        return max(0, self.size.height - self.keyboard_rows)

    def set_colors(self, colors: dict[int, str]) -> None:
        if colors != self.player_colors:
            self.player_colors = dict(colors)
            if self._renderer is not None:
                self._renderer.forget_colors()
            self.refresh()

    @property
    def geometry(self) -> KeyboardGeometry:
        return self._get_renderer().geometry

    # -- frames -----------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        # Tick just after each row starts (timers keep their phase, paused or not): with one tick a row
        # each tick scrolls exactly one row.
        tick = self.seconds_per_row / self.frames_per_row
        delay = tick - (self.clock() % tick) + 0.003
        self.set_timer(delay, self._start_ticker)

    def _start_ticker(self) -> None:
        self._ticker = self.set_interval(self.seconds_per_row / self.frames_per_row, self.advance)
        self.advance()

    def on_resize(self, event: events.Resize) -> None:
        self._renderer = None
        self._wake()

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

    def _bars_between(self, first_slice: int, last_slice: int) -> bool:
        t0 = first_slice * self.seconds_per_row
        t1 = (last_slice + 1) * self.seconds_per_row
        return next(self.model.bars(t0, t1), None) is not None

    def advance(self) -> None:
        """One frame tick (FRAMES_PER_ROW a row): redraw what changed since the last frame, if anything.

        A new slice scrolls the whole roll (when some bar is in view); otherwise a model change redraws the
        newest roll row and the keyboard only. With nothing in view and nothing sounding the ticker pauses
        until the next event, so an idle roll costs nothing.
        """
        now_slice = self._current_slice()
        rows = self._roll_rows()
        if now_slice != self._frame_slice:
            visible = self._bars_between(min(now_slice, self._frame_slice) - rows, now_slice)
            self._frame_slice = now_slice
            if visible:
                self.refresh()
                return
        if self.model.version != self._drawn_version:
            top = max(0, rows - 1)
            self.refresh(Region(0, top, self.size.width, self.size.height - top))
        elif not self.model.sounding_count() and not self._bars_between(now_slice - rows, now_slice):
            if self._ticker is not None:
                self._ticker.pause()

    def _plain_styles(self) -> bool:
        """No border, padding, outline, tint, hatch or opacity: the lines are the strips themselves."""
        styles = self.styles
        gutter = styles.gutter
        return (
            not (gutter.width or gutter.height)
            and not styles.tint.a
            and styles.text_opacity == 1.0
            and not any(edge for edge, _ in styles.outline)
            and not (styles.has_rule("hatch") and styles.hatch != "none")
            and self.opacity == 1.0
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        """The widget's lines for the compositor: cached strips, filtered through their own caches.

        Textual's default path re-creates every line (and so re-runs the line filters over every segment)
        whenever the roll scrolls; handing back the same strip objects lets a scroll cost one new row.
        """
        if not self._plain_styles():
            return super().render_lines(crop)
        lines = self._frame()[crop.y : crop.bottom]
        x1, x2 = crop.column_span
        if (x1, x2) != (0, self.size.width):
            lines = [strip.crop(x1, x2) for strip in lines]
        return lines

    def _frame(self) -> list[Strip]:
        """Every line, filtered. Rows that showed a finished slice last frame are reused as they are."""
        renderer = self._get_renderer()
        model, colors = self.model, self.player_colors
        filters = tuple(self.get_line_filters())
        background = self.background_colors[1]
        height = self.size.height
        roll_rows = max(0, height - self.keyboard_rows)
        frame_slice = self._frame_slice
        key = (renderer, renderer.generation, filters, background, height)
        last = self._last_frame if self._last_frame is not None and self._last_frame[0] == key else None

        def filtered(strip: Strip) -> Strip:
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            return strip

        lines: list[Strip] = []
        shift = frame_slice - last[1] if last is not None else 0
        for y in range(roll_rows):
            if last is not None and 0 <= y + shift < roll_rows - 1:
                lines.append(last[3][y + shift])  # a finished slice last frame: it cannot have changed
            else:
                slice_index = frame_slice - (roll_rows - 1 - y)
                lines.append(filtered(renderer.roll_row(model, colors, slice_index, frame_slice)))
        if last is not None and last[2] == model.version:
            lines.extend(last[3][roll_rows:])
        else:
            keyboard = renderer.keyboard_rows(model, colors, min(self.keyboard_rows, height))
            lines.extend(filtered(strip) for strip in keyboard[: height - roll_rows])
        self._last_frame = (key, frame_slice, model.version, lines)
        self._drawn_version = model.version
        self.frames += 1
        renderer.forget_before(frame_slice - roll_rows, roll_rows + 2)
        return lines

    def render_line(self, y: int) -> Strip:
        """One line, unfiltered (Textual's default render path, used when the roll has borders or padding)."""
        renderer = self._get_renderer()
        height = self.size.height
        roll_rows = max(0, height - self.keyboard_rows)
        if y < roll_rows:
            slice_index = self._frame_slice - (roll_rows - 1 - y)
            return renderer.roll_row(self.model, self.player_colors, slice_index, self._frame_slice)
        keyboard = renderer.keyboard_rows(self.model, self.player_colors, min(self.keyboard_rows, height))
        index = y - roll_rows
        if y == height - 1:
            self._drawn_version = self.model.version
        return keyboard[index] if 0 <= index < len(keyboard) else Strip.blank(renderer.width)

    # -- playing ----------------------------------------------------------------------------------------

    def _press(self, key: int, velocity: int) -> None:
        if self.echo_local:
            self.note_on(self.local_player, key, velocity)
            self.advance()
        self.post_message(self.LocalNote(key, velocity))

    def _release(self, key: int) -> None:
        if self.echo_local:
            self.note_off(self.local_player, key)
            self.advance()
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
        elif not self.hold_keys:
            self.play_key(action)
        elif event.character is not None and event.character not in self._held:  # else a repeat
            self._held[event.character] = action.key
            self._press(action.key, action.velocity)

    def on_key_released(self, message: KeyReleased) -> None:
        key = self._held.pop(message.character, None)
        if key is not None:
            self._release(key)

    def on_blur(self) -> None:
        """Focus went elsewhere: the releases will not come here."""
        held, self._held = self._held, {}
        for key in held.values():
            self._release(key)

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
