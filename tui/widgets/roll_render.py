"""Strips for the keyboard roll: the scrolling bars and the lit keyboard, cached so a frame builds little.

Time is cut into slices of `seconds_per_row`; slice `s` covers [s*dt, (s+1)*dt). The roll's bottom row is
the current slice and each row above is one slice older, so time flows down toward the keys. A slice that
is over never changes (events are stamped with the widget's clock when they arrive), so its strip is built
once and the same `Strip` object is reused as it scrolls up. Textual caches a line filter's output on the
strip object, so a reused strip costs a dictionary lookup per frame, not a pass over its segments. A frame
builds at most the current row (once per model change), the row that just finished, and the keyboard rows
when the set of sounding keys changed.

Rows are made of few segments: a gap between two bars takes the style of the bar before it (a space only
shows its background, which every roll style shares), and the keyboard is built key by key from cached
runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from pianorhythm.roll import KeyState, RollModel
from pianorhythm.tui.widgets.keyboard_layout import KeyboardGeometry, is_white

HELD_BAR = "█"
SUSTAINED_BAR = "▒"
SUSTAINED_KEY = "▒"
UNKNOWN_COLOR = "#888888"
_Run = tuple[str, Style]
Holders = tuple[tuple[int, KeyState], ...]


@dataclass(frozen=True)
class RollPalette:
    """Base styles, from the widget's component classes (so themes apply)."""

    roll: Style  # background of the roll
    white: Style  # a white key at rest
    black: Style  # a black key at rest
    label: Style  # octave labels on C keys


@dataclass(frozen=True, slots=True)
class _PlayerStyles:
    bar: Style  # held and sustained bars on the roll (the character tells them apart)
    held_key: Style  # background of a held key
    sustained_white: Style  # "▒" in the player's colour on a white key
    sustained_black: Style  # the same on a black key
    held_label: Style  # an octave label on a held key: black or white, whichever shows on the colour


def _truecolor(color: str) -> Color:
    """A truecolor rich Color (never a palette index, so Textual's ANSI filter leaves it alone)."""
    try:
        parsed = Color.parse(color)
    except Exception:
        parsed = Color.parse(UNKNOWN_COLOR)
    return Color.from_triplet(parsed.get_truecolor())


def _contrast(color: Color) -> Color:
    red, green, blue = color.get_truecolor()
    light = 0.299 * red + 0.587 * green + 0.114 * blue > 140
    return Color.from_rgb(0, 0, 0) if light else Color.from_rgb(255, 255, 255)


class _Runs:
    """Accumulates (text, style) runs, merging neighbours of the same style object."""

    __slots__ = ("segments", "text", "style")

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.text = ""
        self.style: Style | None = None

    def add(self, text: str, style: Style) -> None:
        if style is self.style:
            self.text += text
            return
        if self.text and self.style is not None:
            self.segments.append(Segment(self.text, self.style))
        self.text, self.style = text, style

    def add_all(self, segments: list[Segment]) -> None:
        """Already merged runs: the first may join the current run, the middle ones go in as they are."""
        if not segments:
            return
        text, style = segments[0].text, segments[0].style
        assert style is not None
        self.add(text, style)
        if len(segments) > 1:
            self.segments.append(Segment(self.text, self.style))
            self.segments.extend(segments[1:-1])
            last = segments[-1]
            self.text, self.style = last.text, last.style

    def extend(self, text: str, fallback: Style) -> None:
        """Spaces that may take any style with the roll's background: the current run's, if any."""
        if self.style is None:
            self.text, self.style = text, fallback
        else:
            self.text += text

    def done(self) -> list[Segment]:
        if self.text and self.style is not None:
            self.segments.append(Segment(self.text, self.style))
        self.text, self.style = "", None
        return self.segments


class RollRenderer:
    """Builds and caches strips for one geometry and palette; make a new one when either changes."""

    def __init__(self, geometry: KeyboardGeometry, palette: RollPalette, width: int, dt: float) -> None:
        self.geometry = geometry
        self.palette = palette
        self.width = width
        self.dt = dt
        self.pad_left = max(0, (width - geometry.width) // 2)
        self._pad_right = max(0, width - geometry.width - self.pad_left)
        self._slices: dict[int, Strip] = {}  # finished slices
        self._current: tuple[int, int, Strip] | None = None  # (slice, model version, strip)
        self._keyboard: tuple[int, int, list[Strip]] | None = None  # (version, rows, strips)
        self._key_runs: dict[tuple[int, int, int, Holders], list[Segment]] = {}
        self._styles: dict[str, _PlayerStyles] = {}
        self._blank = Strip.blank(width, palette.roll)
        # Keys in column order: all keys along the upper rows, white keys along the bottom row.
        self._top_order = sorted(geometry.top, key=lambda key: geometry.top[key][0])
        self._bottom_order = sorted(geometry.bottom, key=lambda key: geometry.bottom[key][0])
        self._top_index = {key: i for i, key in enumerate(self._top_order)}
        self._bottom_index = {key: i for i, key in enumerate(self._bottom_order)}
        self._gap_runs: dict[tuple[bool, int, int], list[Segment]] = {}
        self.built_rows = 0  # strips built (for tests and the benchmark)
        self.generation = 0  # bumped when cached strips are dropped (colours changed)

    # -- styles --------------------------------------------------------------------------------------------

    def player_styles(self, color: str) -> _PlayerStyles:
        styles = self._styles.get(color)
        if styles is None:
            rich_color = _truecolor(color)
            palette = self.palette
            styles = _PlayerStyles(
                bar=Style(color=rich_color, bgcolor=palette.roll.bgcolor),
                held_key=Style(bgcolor=rich_color),
                sustained_white=palette.white + Style(color=rich_color),
                sustained_black=palette.black + Style(color=rich_color),
                held_label=Style(bgcolor=rich_color, color=_contrast(rich_color)),
            )
            self._styles[color] = styles
        return styles

    def forget_colors(self) -> None:
        """A player's colour changed: rebuild every cached strip."""
        self.generation += 1
        self._styles.clear()
        self._slices.clear()
        self._key_runs.clear()
        self._gap_runs.clear()
        self._current = None
        self._keyboard = None

    # -- the roll ----------------------------------------------------------------------------------------

    def roll_row(
        self, model: RollModel, colors: Mapping[int, str], slice_index: int, now_slice: int
    ) -> Strip:
        """The roll row of one time slice: built once when finished, once per model change while current."""
        cached = self._slices.get(slice_index)
        if cached is not None:
            return cached
        current = self._current
        if current is not None and current[0] == slice_index and current[1] == model.version:
            strip = current[2]  # built while current with no event since: still right
        else:
            strip = self._build_row(model, colors, slice_index)
        if slice_index < now_slice:
            self._slices[slice_index] = strip
        else:
            self._current = (slice_index, model.version, strip)
        return strip

    def forget_before(self, oldest: int, visible: int) -> None:
        """Drop finished slices older than `oldest` (the top row) once more than twice `visible` are kept."""
        if len(self._slices) > 2 * visible:
            for index in [i for i in self._slices if i < oldest]:
                del self._slices[index]

    def _build_row(self, model: RollModel, colors: Mapping[int, str], slice_index: int) -> Strip:
        t0 = slice_index * self.dt
        t1 = (slice_index + 1) * self.dt  # not t0 + dt: that can round past the next slice's start
        top = self.geometry.top
        cells: dict[int, _Run] = {}  # key -> (bar char, style); a later bar on a key wins
        styles: dict[int, Style] = {}
        for bar in model.bars(t0, t1):  # each of them sounds in [t0, t1)
            if bar.key not in top:
                continue
            style = styles.get(bar.player)
            if style is None:
                style = styles[bar.player] = self.player_styles(colors.get(bar.player, UNKNOWN_COLOR)).bar
            release = bar.release
            held = release is None or release > (t0 if t0 > bar.start else bar.start)  # as Bar.state_in
            cells[bar.key] = (HELD_BAR if held else SUSTAINED_BAR, style)
        self.built_rows += 1
        if not cells:
            return self._blank
        roll = self.palette.roll
        runs = _Runs()
        position = -self.pad_left
        for key in sorted(cells, key=lambda k: top[k][0]):
            char, style = cells[key]
            cols = top[key]
            if cols[0] > position:
                runs.extend(" " * (cols[0] - position), roll)
            runs.add(char * len(cols), style)
            position = cols[-1] + 1
        trailing = self.geometry.width + self._pad_right - position
        if trailing > 0:
            runs.extend(" " * trailing, roll)
        return Strip(runs.done(), self.width)

    # -- the keyboard ------------------------------------------------------------------------------------

    def keyboard_rows(self, model: RollModel, colors: Mapping[int, str], rows: int) -> list[Strip]:
        """The keyboard: `rows - 1` upper rows with black keys and one lower row of white keys."""
        if self._keyboard is not None and self._keyboard[:2] == (model.version, rows):
            return self._keyboard[2]
        lit = {key: tuple(holders) for key, holders in model.lit_keys().items()}
        upper_rows = max(1, rows - 1)
        strips: list[Strip] = []
        roll = self.palette.roll
        if len(self._gap_runs) > 4096:
            self._gap_runs.clear()
        shared = any(len(holders) > 1 for holders in lit.values())
        for row in range(rows):
            upper = row < upper_rows
            if upper and row and not shared:
                strips.append(strips[0])  # one player per key: every upper row looks the same
                continue
            order = self._top_order if upper else self._bottom_order
            index_of = self._top_index if upper else self._bottom_index
            runs = _Runs()
            if self.pad_left:
                runs.add(" " * self.pad_left, roll)
            position = 0  # index in `order` of the next key to draw
            for index in sorted(index_of[key] for key in lit if key in index_of):
                if index > position:
                    runs.add_all(self._gap(upper, position, index, colors))
                runs.add_all(self._runs_of(order[index], row, upper, lit[order[index]], colors))
                position = index + 1
            if position < len(order):
                runs.add_all(self._gap(upper, position, len(order), colors))
            if self._pad_right:
                runs.add(" " * self._pad_right, roll)
            strips.append(Strip(runs.done(), self.width))
            self.built_rows += 1
        self._keyboard = (model.version, rows, strips)
        return strips

    def _gap(self, upper: bool, first: int, end: int, colors: Mapping[int, str]) -> list[Segment]:
        """Keys `first`..`end - 1` (indices in column order) at rest, as merged runs (cached)."""
        shape = (upper, first, end)
        runs = self._gap_runs.get(shape)
        if runs is None:
            order = self._top_order if upper else self._bottom_order
            merged = _Runs()
            for key in order[first:end]:
                merged.add_all(self._runs_of(key, 0, upper, (), colors))
            runs = merged.done()
            self._gap_runs[shape] = runs
        return runs

    def _runs_of(
        self, key: int, row: int, upper: bool, holders: Holders, colors: Mapping[int, str]
    ) -> list[Segment]:
        """One key's cells in one keyboard row, as merged runs (cached per key, row and who holds it)."""
        shape = (0 if upper else 1, row if holders else 0, key, holders)
        runs = self._key_runs.get(shape)
        if runs is None:
            cols = self.geometry.top[key] if upper else self.geometry.bottom[key]
            merged = _Runs()
            for index, col in enumerate(cols):
                merged.add(*self._key_cell(key, row, index, holders, colors, upper, col))
            runs = merged.done()
            self._key_runs[shape] = runs
        return runs

    def _key_cell(
        self,
        key: int,
        row: int,
        index: int,
        holders: Holders,
        colors: Mapping[int, str],
        upper: bool,
        col: int,
    ) -> _Run:
        white = is_white(key)
        base = self.palette.white if white else self.palette.black
        label = white and not upper and key % 12 == 0 and col == self.geometry.bottom[key][0]
        if holders:
            # Several players on one key: their colours alternate across the key's cells.
            player, state = holders[(index + row) % len(holders)]
            styles = self.player_styles(colors.get(player, UNKNOWN_COLOR))
            held = state is KeyState.HELD
            if label:  # the octave stays readable while the key is down
                return (_octave(key), styles.held_label if held else styles.sustained_white)
            if held:
                return (" ", styles.held_key)
            return (SUSTAINED_KEY, styles.sustained_white if white else styles.sustained_black)
        if white and not upper:
            if col == self.geometry.bottom[key][-1]:
                return ("▕", base)
            if label:
                return (_octave(key), self._label_style(base))
        if white and upper and self.geometry.top[key][-1] == col and is_white(key + 1):
            return ("▕", base)  # E|F and B|C have no black key between them
        return (" ", base)

    def _label_style(self, base: Style) -> Style:
        return base + self.palette.label


def _octave(key: int) -> str:
    return str(key // 12 - 1)
