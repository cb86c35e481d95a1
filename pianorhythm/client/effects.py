"""What the client core asks its shell to do: small frozen dataclasses, executed in order.

The session shell (tui/net/session.py) executes Send, SaveToken and Refuse itself and hands Received to a
plain session's `on_message`; the engine (tui/engine.py) executes the rest: scheduling and releasing notes
on the dispatch thread and synth, giving players a synth channel and a recorder track, telling the UI.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from pianorhythm.client.model import EngineEvent
from pianorhythm.events import MusicEvent
from pianorhythm.wire import pianorhythm_pb2 as pb

LOCAL: Final = "local"  # the player key of our own notes (synth channel, recorder track)


@dataclass(frozen=True, slots=True)
class Send:
    """Write this message to the server (the link is up: the core drops messages while it is down)."""

    message: pb.ClientMessage


@dataclass(frozen=True, slots=True)
class SaveToken:
    """The server gave us this resume token: keep it for the next run (if this process owns the file)."""

    token: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """The server refused our Hello in a way that retrying will not fix: end this link, do not retry."""

    reason: str


@dataclass(frozen=True, slots=True)
class Received:
    """A complete server message for whoever sits above the session (pages joined, duplicates dropped)."""

    message: pb.ServerMessage
    received_ns: int


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the UI."""

    event: EngineEvent


@dataclass(frozen=True, slots=True)
class ScheduleNote:
    """Play `event` of remote `player` on its channel at `due_ns` (our perf_counter_ns clock)."""

    due_ns: int
    player: int
    event: MusicEvent


@dataclass(frozen=True, slots=True)
class PlayLocal:
    """Sound our own event now on our channel (and record it)."""

    event: MusicEvent


@dataclass(frozen=True, slots=True)
class AddPlayer:
    """A player is in our room (LOCAL: we were welcomed): a synth channel with `instrument`, a track."""

    player: Hashable
    name: str
    instrument: int


@dataclass(frozen=True, slots=True)
class SetInstrument:
    """A player (LOCAL: us) changed instrument: set its channel's program and note it in the recording."""

    player: Hashable
    program: int


@dataclass(frozen=True, slots=True)
class ReleasePlayer:
    """Drop `player`'s pending notes and release every note and pedal it holds; `forget`: free its channel
    too (it left). LOCAL: our own notes (at close)."""

    player: Hashable
    forget: bool = False


Effect = (
    Send
    | SaveToken
    | Refuse
    | Received
    | Notify
    | ScheduleNote
    | PlayLocal
    | AddPlayer
    | SetInstrument
    | ReleasePlayer
)
