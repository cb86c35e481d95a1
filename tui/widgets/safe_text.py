"""Untrusted text (chat, names, room names) made safe to show: never markup, never terminal control.

A tab becomes a space; other control characters become visible stand-ins (ESC shows as "␛", other C0 as
their control pictures), so an escape sequence in a message shows as typed instead of acting on the
terminal. Bidirectional overrides,
which could reorder what is shown, are replaced too. Build `rich.text.Text` from the result (never
`Text.from_markup`), so "[bold]" stays literal.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Final

from rich.style import Style
from rich.text import Text

_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
REPLACEMENT: Final = "\ufffd"


def _visible(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ .. ␟ (ESC -> ␛)
    if code == 0x7F:
        return "\u2421"  # ␡
    return REPLACEMENT


@lru_cache(maxsize=4096)
def clean(text: str) -> str:
    """`text` with control, bidi-override and other non-printing format characters made visible."""
    if text.isprintable() and not any(c in _BIDI for c in text):
        return text
    out = []
    for char in text:
        if char == "\t":
            out.append(" ")
        elif char in _BIDI or (
            not char.isprintable() and char != " " and unicodedata.category(char)[0] in "CZ"
        ):
            if char == " " or unicodedata.category(char) == "Zs":
                out.append(" ")
            else:
                out.append(_visible(char))
        else:
            out.append(char)
    return "".join(out)


def plain(text: str, style: Style | str = "") -> Text:
    """A rich Text of untrusted `text`, shown literally."""
    return Text(clean(text), style=style, end="")


def safe_color(color: str, fallback: str = "#cccccc") -> str:
    """A "#rrggbb" colour from untrusted input, or `fallback`."""
    if len(color) == 7 and color[0] == "#":
        try:
            int(color[1:], 16)
        except ValueError:
            return fallback
        return color.lower()
    return fallback
