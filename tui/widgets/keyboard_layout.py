"""Where each piano key sits in terminal columns (pure geometry, no Textual).

White keys are `white_width` cells wide (2 or 3). Black keys sit in the upper rows between two white keys:
one cell (the right half of the white key below) when whites are 2 wide, two cells straddling the gap when
they are 3 wide. Each key owns a set of *top* columns (the upper rows, where black keys are) and white keys
also own *bottom* columns (the lower rows). The roll above the keyboard uses the top columns, so every
column of the roll belongs to exactly one key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

LOWEST: Final = 21  # A0
HIGHEST: Final = 108  # C8
_WHITE_PCS: Final = frozenset({0, 2, 4, 5, 7, 9, 11})
NOTE_NAMES: Final = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def is_white(key: int) -> bool:
    return key % 12 in _WHITE_PCS


def note_name(key: int) -> str:
    return f"{NOTE_NAMES[key % 12]}{key // 12 - 1}"


ALL_WHITES: Final = tuple(k for k in range(LOWEST, HIGHEST + 1) if is_white(k))  # 52 keys


@dataclass(frozen=True)
class KeyboardGeometry:
    """Columns of the keys `first`..`last` (both white) with whites `white_width` cells wide."""

    first: int
    last: int
    white_width: int
    top: dict[int, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    bottom: dict[int, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    top_key: tuple[int | None, ...] = field(init=False, repr=False, compare=False)
    bottom_key: tuple[int | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (is_white(self.first) and is_white(self.last) and self.first <= self.last):
            raise ValueError("a keyboard starts and ends on white keys")
        if self.white_width not in (2, 3):
            raise ValueError("white keys are 2 or 3 cells wide")
        w = self.white_width
        whites = [k for k in range(self.first, self.last + 1) if is_white(k)]
        top: dict[int, tuple[int, ...]] = {}
        bottom: dict[int, tuple[int, ...]] = {}
        black_cols: set[int] = set()
        for i, key in enumerate(whites):
            bottom[key] = tuple(range(w * i, w * i + w))
            if key != self.last and not is_white(key + 1):
                cols: tuple[int, ...] = (w * i + 1,) if w == 2 else (w * i + 2, w * i + 3)
                top[key + 1] = cols
                black_cols.update(cols)
        for key, cols in bottom.items():
            top[key] = tuple(c for c in cols if c not in black_cols)
        width = w * len(whites)
        top_key: list[int | None] = [None] * width
        bottom_key: list[int | None] = [None] * width
        for key, cols in top.items():
            for c in cols:
                top_key[c] = key
        for key, cols in bottom.items():
            for c in cols:
                bottom_key[c] = key
        object.__setattr__(self, "top", top)
        object.__setattr__(self, "bottom", bottom)
        object.__setattr__(self, "top_key", tuple(top_key))
        object.__setattr__(self, "bottom_key", tuple(bottom_key))

    @property
    def width(self) -> int:
        return len(self.top_key)

    @property
    def keys(self) -> range:
        return range(self.first, self.last + 1)

    @property
    def key_count(self) -> int:
        return self.last - self.first + 1

    def key_at(self, column: int, upper: bool) -> int | None:
        """The key under `column` in the upper (black-key) rows or the lower rows."""
        row = self.top_key if upper else self.bottom_key
        return row[column] if 0 <= column < len(row) else None


def fit(columns: int) -> KeyboardGeometry:
    """The widest useful keyboard for `columns` cells: all 88 keys when they fit, else centred on middle C.

    At 80 columns this shows 40 white keys (68 keys, more than a 61-key keyboard).
    """
    if columns >= 3 * len(ALL_WHITES):
        return KeyboardGeometry(LOWEST, HIGHEST, 3)
    if columns >= 2 * len(ALL_WHITES):
        return KeyboardGeometry(LOWEST, HIGHEST, 2)
    count = max(7, columns // 2)
    middle_c = ALL_WHITES.index(60)
    start = max(0, min(len(ALL_WHITES) - count, middle_c - count // 2))
    return KeyboardGeometry(ALL_WHITES[start], ALL_WHITES[min(len(ALL_WHITES), start + count) - 1], 2)
