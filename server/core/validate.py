"""Field validation: names, colours, chat text, note batches. Pure functions returning a cleaned value or
raising Invalid with a sentence for people."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Final

from pianorhythm.wire import pianorhythm_pb2 as pb

_COLOR: Final = re.compile(r"#[0-9a-fA-F]{6}")
MAX_OFFSET_US: Final = 1_000_000
# Names that would pass for the server speaking or for staff. Compared after dropping everything but
# letters and digits, case-insensitively, so "S.E.R.V.E.R" and "Admin!" are refused too.
RESERVED_NAMES: Final = frozenset(
    {"server", "system", "admin", "administrator", "moderator", "mod", "staff", "pianorhythm", "notice"}
)
_SUFFIX: Final = re.compile(r"#\d+$")  # the relay's own "#<user id>" that tells same-named members apart


class Invalid(ValueError):
    pass


def _printable(text: str) -> bool:
    return all(ch.isprintable() for ch in text)


def _name(text: str, what: str, limit: int) -> str:
    cleaned = text.strip()
    if not 1 <= len(cleaned) <= limit or not _printable(cleaned):
        raise Invalid(f"{what} must be 1-{limit} printable characters.")
    return cleaned


def user_name(text: str) -> str:
    name = _name(text, "A name", 32)
    if "".join(ch for ch in name.casefold() if ch.isalnum()) in RESERVED_NAMES:
        raise Invalid(f"The name {name!r} is reserved; pick another.")
    if _SUFFIX.search(name):
        raise Invalid("A name may not end in # and digits (the server adds that to tell people apart).")
    return name


def room_name(text: str) -> str:
    return _name(text, "A room name", 64)


def color(text: str) -> str:
    if not _COLOR.fullmatch(text):
        raise Invalid("A colour must look like #rrggbb.")
    return text.lower()


def chat_content(text: str, limit: int, max_bytes: int) -> str:
    stripped = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C") or ch == " ")
    stripped = stripped.strip()
    if not 1 <= len(stripped) <= limit:
        raise Invalid(f"A chat message must be 1-{limit} characters.")
    size = len(stripped.encode())
    if size > max_bytes:
        raise Invalid(
            f"A chat message may take at most {max_bytes} bytes of UTF-8 and this one takes {size};"
            " shorten it (emoji take 4 bytes each)."
        )
    return stripped


def password(text: str) -> str:
    if not 1 <= len(text) <= 64:
        raise Invalid("A room password must be 1-64 characters (an empty one removes it).")
    return text


def user_limit(value: int) -> int:
    if not 1 <= value <= 100:
        raise Invalid("The user limit must be 1-100.")
    return value


def position(pos: pb.Position) -> tuple[float, float, float]:
    values = (pos.x, pos.y, pos.z)
    if not all(math.isfinite(v) for v in values):
        raise Invalid("A position must be finite numbers.")
    return values


def note_batch(batch: pb.NoteBatch, max_events: int) -> None:
    events = batch.events
    if not 1 <= len(events) <= max_events:
        raise Invalid(f"A note batch must hold 1-{max_events} events.")
    for event in events:
        if event.offset_us > MAX_OFFSET_US:
            raise Invalid("Note offsets must be 0-1,000,000 microseconds.")
        which = event.WhichOneof("event")
        if which == "note":
            note = event.note
            if note.key > 127 or note.velocity > 127:
                raise Invalid("Note keys and velocities must be 0-127.")
        elif which == "control":
            control = event.control
            if control.controller > 127 or control.value > 127:
                raise Invalid("Controllers and values must be 0-127.")
        else:
            raise Invalid("Every note event needs a note or a control.")
