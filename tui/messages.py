"""What the TUI shows, as small typed values, and the app's custom Textual messages.

Widgets are built against these dataclasses (not protobuf), so they can be tested with plain data; the
room and lobby screens translate engine events into them.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

# ---- view data -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayerView:
    """One line of the players list."""

    id: int
    name: str
    color: str  # "#rrggbb"
    status: str = "online"  # online | away | busy
    instrument: int = 0  # GM program
    muted: bool = False
    owner: bool = False
    typing: bool = False
    is_self: bool = False
    rtt_ms: float | None = None  # round trip to the server (yours) or measured for them
    delay_ms: float | None = None  # the playout delay applied to their notes
    spread_ms: float | None = (
        None  # how far their notes' transit reaches above its lowest (their path + ours)
    )
    late: int = 0  # their notes that came too late for the delay (played at once)


@dataclass(frozen=True, slots=True)
class RoomView:
    """One line of the lobby's room list."""

    name: str
    players: int
    limit: int
    locked: bool
    owner: str
    is_lobby: bool = False


@dataclass(frozen=True, slots=True)
class ChatLine:
    """A chat message or a system line (join, leave, kick, crown, errors)."""

    time_us: int  # server time, µs since the epoch
    text: str
    author: str = ""
    color: str = ""
    system: bool = False
    id: int = 0


@dataclass(frozen=True, slots=True)
class RoomSettingsView:
    visible: bool = True
    locked: bool = False
    user_limit: int = 50
    chat_enabled: bool = True
    owner_only_play: bool = False


@dataclass(frozen=True, slots=True)
class NewRoom:
    """What the create-room dialog returns."""

    name: str
    private: bool = False
    password: str = ""
    user_limit: int = 50
    chat_enabled: bool = True
    owner_only_play: bool = False


# ---- messages ------------------------------------------------------------------------------------------


@dataclass
class JoinRoomRequest(Message):
    """The user asked to join (or create) a room."""

    name: str
    password: str = ""
    new_room: NewRoom | None = None


@dataclass
class LeaveRoomRequest(Message):
    """Back to the lobby."""


@dataclass
class ChatSubmitted(Message):
    text: str


@dataclass
class TypingChanged(Message):
    typing: bool


@dataclass
class SettingsChanged(Message):
    """Settings were changed in the settings screen (only the keys that changed)."""

    changes: dict[str, object]
