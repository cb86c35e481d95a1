"""Strips for the keyboard roll: the scrolling bars and the lit keyboard, with caching.

Time is cut into slices of `seconds_per_row`; slice `s` covers [s*dt, (s+1)*dt). The roll's bottom row is
the current slice and each row above is one slice older, so time flows down toward the keys. A slice that
is over never changes (events are stamped with the widget's clock when they arrive), so its strip is cached
and reused as it scrolls up: a frame computes at most the current row plus any rows newly scrolled in, and
the keyboard rows only when the set of sounding keys changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from pianorhythm.roll import KeyState, RollModel
from tui.widgets.keyboard_layout import KeyboardGeometry, is_white

HELD_BAR = "█"
SUSTAINED_BAR = "▒"
SUSTAINED_KEY = "▒"
UNKNOWN_COLOR = "#888888"
_Cell = tuple[str, Style]


@dataclass(frozen=True)
class RollPalette:
    """Base styles, from the widget's component classes (so themes apply)."""

    roll: Style  # background of the roll
    white: Style  # a white key at rest
    black: Style  # a black key at rest
    label: Style  # octave labels on C keys


class RollRenderer:
    """Builds and caches strips for one geometry and palette; make a new one when either changes."""

    def __init__(self, geometry: KeyboardGeometry, palette: RollPalette, width: int, dt: float) -> None:
        self.geometry = geometry
        self.palette = palette
        self.width = width
        self.dt = dt
        self.pad_left = max(0, (width - geometry.width) // 2)
        self._pad_right = max(0, width - geometry.width - self.pad_left)
        self._slices: dict[int, Strip] = {}
        self._keyboard: tuple[int, int, list[Strip]] | None = None  # (version, rows, strips)
        self._base: list[list[_Cell | None]] | None = None
        self._styles: dict[str, tuple[Style, Style, Style, Style]] = {}
        self._blank = Strip.blank(width, palette.roll)

    # -- styles --------------------------------------------------------------------------------------------

    def _player_styles(self, color: str) -> tuple[Style, Style, Style, Style]:
        """(held bar, sustained bar, held key on white, sustained key on white/black) for a colour."""
        styles = self._styles.get(color)
        if styles is None:
            try:
                rich_color = Color.parse(color)
            except Exception:
                rich_color = Color.parse(UNKNOWN_COLOR)
            roll_bg = self.palette.roll.bgcolor
            styles = (
                Style(color=rich_color, bgcolor=roll_bg),
                Style(color=rich_color, bgcolor=roll_bg),
                Style(bgcolor=rich_color),
                Style(color=rich_color),
            )
            self._styles[color] = styles
        return styles

    def forget_colors(self) -> None:
        """A player's colour changed: rebuild every cached strip."""
        self._styles.clear()
        self._slices.clear()
        self._keyboard = None

    # -- strips ----------------------------------------------------------------------------------------

    def _strip(self, cells: list[_Cell | None], base: Style) -> Strip:
        segments: list[Segment] = []
        if self.pad_left:
            segments.append(Segment(" " * self.pad_left, self.palette.roll))
        run_text = ""
        run_style: Style | None = None
        for cell in cells:
            text, style = cell if cell is not None else (" ", base)
            if style is run_style:
                run_text += text
                continue
            if run_text and run_style is not None:
                segments.append(Segment(run_text, run_style))
            run_text, run_style = text, style
        if run_text and run_style is not None:
            segments.append(Segment(run_text, run_style))
        if self._pad_right:
            segments.append(Segment(" " * self._pad_right, self.palette.roll))
        return Strip(segments, self.width)

    def roll_row(self, model: RollModel, colors: Mapping[int, str], slice_index: int) -> Strip:
        """The roll row of one time slice, cached once the slice is in the past (see `retire`)."""
        cached = self._slices.get(slice_index)
        if cached is not None:
            return cached
        t0 = slice_index * self.dt
        t1 = t0 + self.dt
        geometry = self.geometry
        cells: list[_Cell | None] = [None] * geometry.width
        for bar in model.bars(t0, t1):
            cols = geometry.top.get(bar.key)
            if not cols:
                continue
            state = bar.state_in(t0, t1)
            if state is None:
                continue
            held, sustained, _, _ = self._player_styles(colors.get(bar.player, UNKNOWN_COLOR))
            cell = (HELD_BAR, held) if state is KeyState.HELD else (SUSTAINED_BAR, sustained)
            for c in cols:
                cells[c] = cell
        if not any(cells):
            return self._blank
        return self._strip(cells, self.palette.roll)

    def retire(self, slice_index: int, strip: Strip, now_slice: int, keep: int) -> None:
        """Cache a finished slice's strip; drop slices that scrolled out of view."""
        if slice_index >= now_slice:
            return
        self._slices[slice_index] = strip
        if len(self._slices) > keep * 2:
            cutoff = now_slice - keep
            for index in [i for i in self._slices if i < cutoff]:
                del self._slices[index]

    def keyboard_rows(self, model: RollModel, colors: Mapping[int, str], rows: int) -> list[Strip]:
        """The keyboard: `rows - 1` upper rows with black keys and one lower row of white keys."""
        if self._keyboard is not None and self._keyboard[:2] == (model.version, rows):
            return self._keyboard[2]
        lit = model.lit_keys()
        geometry = self.geometry
        upper_rows = max(1, rows - 1)
        base = self._base_keyboard(rows)
        strips: list[Strip] = []
        for row in range(rows):
            upper = row < upper_rows
            cells = list(base[row])
            for key, holders in lit.items():
                cols = geometry.top.get(key, ()) if upper else geometry.bottom.get(key, ())
                for index, col in enumerate(cols):
                    cells[col] = self._key_cell(key, row, index, holders, colors, upper, col)
            strips.append(self._strip(cells, self.palette.roll))
        self._keyboard = (model.version, rows, strips)
        return strips

    def _base_keyboard(self, rows: int) -> list[list[_Cell | None]]:
        """The cells of the keyboard at rest (cached: only lit keys are drawn per change)."""
        if self._base is not None and len(self._base) == rows:
            return self._base
        upper_rows = max(1, rows - 1)
        base: list[list[_Cell | None]] = []
        for row in range(rows):
            upper = row < upper_rows
            key_of = self.geometry.top_key if upper else self.geometry.bottom_key
            cells: list[_Cell | None] = []
            for col, key in enumerate(key_of):
                cells.append(None if key is None else self._key_cell(key, row, 0, None, {}, upper, col))
            base.append(cells)
        self._base = base
        return base

    def _key_cell(
        self,
        key: int,
        row: int,
        index: int,
        holders: list[tuple[int, KeyState]] | None,
        colors: Mapping[int, str],
        upper: bool,
        col: int,
    ) -> _Cell:
        white = is_white(key)
        base = self.palette.white if white else self.palette.black
        if holders:
            # Several players on one key: their colours alternate across the key's cells.
            player, state = holders[(index + row) % len(holders)]
            _, _, held, sustained = self._player_styles(colors.get(player, UNKNOWN_COLOR))
            if state is KeyState.HELD:
                return (" ", held)
            return (SUSTAINED_KEY, base + sustained)
        if white and not upper:
            cols = self.geometry.bottom[key]
            if col == cols[-1]:
                return ("▕", base)
            if key % 12 == 0 and col == cols[0]:
                return (str(key // 12 - 1), base + self.palette.label)
        if white and upper and self.geometry.top[key][-1] == col and is_white(key + 1):
            return ("▕", base)  # E|F and B|C have no black key between them
        return (" ", base)
