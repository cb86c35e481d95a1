"""What the client core tells its users (the TUI, headless mode, tests): small frozen dataclasses.

The core (pianorhythm.client.core) hands them out in Notify effects and the engine (tui/engine.py) passes
them to its subscribers. Protobuf messages stay inside the core; these are the plain values a screen
renders. Text fields come from other users: render them as plain text, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pianorhythm.events import MusicEvent
from pianorhythm.wire import pianorhythm_pb2 as pb


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    GAVE_UP = "gave_up"
    REPLACED = "replaced"  # closed by the server because our identity connected elsewhere; waits for retry()
    CLOSED = "closed"


STATUS_NAMES = {pb.STATUS_ONLINE: "online", pb.STATUS_AWAY: "away", pb.STATUS_BUSY: "busy"}


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    name: str
    color: str
    status: str  # "online" | "away" | "busy"
    instrument: int
    muted: bool
    joined_room_us: int
    uplink_spread_us: int = 0  # how far their uplink delay reaches above its lowest (the relay measures it)
    uplink_floor_us: int = 0  # how low it goes, against their note stamps (the relay's figure; 0: unknown)

    @classmethod
    def from_pb(cls, user: pb.User) -> UserInfo:
        return cls(
            id=user.id,
            name=user.name,
            color=user.color,
            status=STATUS_NAMES.get(user.status, "online"),
            instrument=user.instrument,
            muted=user.muted,
            joined_room_us=user.joined_room_us,
            uplink_spread_us=user.uplink_spread_us,
            uplink_floor_us=user.uplink_floor_us,
        )


@dataclass(frozen=True, slots=True)
class ChatLine:
    id: int
    user_id: int
    user_name: str
    user_color: str
    content: str
    server_time_us: int
    system: bool = False  # a notice from the server, not a line from a user: show it as such

    @classmethod
    def from_pb(cls, message: pb.ChatMessage) -> ChatLine:
        return cls(
            message.id,
            message.user_id,
            message.user_name,
            message.user_color,
            message.content,
            message.server_time_us,
            message.system,
        )

    @property
    def author(self) -> str:
        """Who said it, for a one-line log: the server's notices never pass for a user's line."""
        return "[server notice]" if self.system else self.user_name


@dataclass(frozen=True, slots=True)
class RoomSettingsInfo:
    visible: bool
    locked: bool
    user_limit: int
    chat_enabled: bool
    owner_only_play: bool

    @classmethod
    def from_pb(cls, s: pb.RoomSettings) -> RoomSettingsInfo:
        return cls(s.visible, s.locked, s.user_limit, s.chat_enabled, s.owner_only_play)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    name: str
    is_lobby: bool
    owner_id: int
    settings: RoomSettingsInfo
    users: tuple[UserInfo, ...]
    chat_history: tuple[ChatLine, ...]
    crown_claimable_at_us: int

    @classmethod
    def from_pb(cls, state: pb.RoomState) -> RoomInfo:
        return cls(
            name=state.name,
            is_lobby=state.is_lobby,
            owner_id=state.owner_id,
            settings=RoomSettingsInfo.from_pb(state.settings),
            users=tuple(UserInfo.from_pb(u) for u in state.users),
            chat_history=tuple(ChatLine.from_pb(m) for m in state.chat_history),
            crown_claimable_at_us=state.crown_claimable_at_us,
        )


@dataclass(frozen=True, slots=True)
class RoomSummaryInfo:
    name: str
    member_count: int
    user_limit: int
    locked: bool
    owner_name: str
    is_lobby: bool

    @classmethod
    def from_pb(cls, s: pb.RoomSummary) -> RoomSummaryInfo:
        return cls(s.name, s.member_count, s.user_limit, s.locked, s.owner_name, s.is_lobby)


@dataclass(frozen=True, slots=True)
class PlayerStats:
    """One remote player's playout figures (for the latency column of the user list)."""

    user_id: int
    delay_ms: float  # current playout delay
    target_ms: float  # what the preset asks for now
    transit_ms: float | None  # median capture-to-arrival time of their notes (their uplink + ours)
    late_count: int
    events: int
    path_spread_ms: float | None = None  # their uplink's spread + our downlink's (None: not measured yet)


# ---- events --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    state: ConnectionState
    detail: str  # why (empty when connected)
    # RECONNECTING while waiting: seconds until the next attempt (from when the event was sent; count down
    # with Engine.next_retry_in_s). None while an attempt is under way and in every other state.
    retry_in_s: float | None = None
    refused: bool = False  # GAVE_UP at once: retrying cannot help (Hello refused, certificate unverifiable)


@dataclass(frozen=True, slots=True)
class Welcomed:
    me: UserInfo
    resumed: bool
    server_version: str
    max_chat_chars: int


@dataclass(frozen=True, slots=True)
class RoomEntered:
    """A full room state: after joining, after being sent back to the lobby, after a reconnect."""

    room: RoomInfo
    resumed: bool  # the same room as before a reconnect (merge chat by id rather than replace)
    came: tuple[UserInfo, ...] = ()  # resumed: who joined while we were away
    went: tuple[UserInfo, ...] = ()  # resumed: who left while we were away (their notes were released)


@dataclass(frozen=True, slots=True)
class RoomChanged:
    settings: RoomSettingsInfo
    owner_id: int
    crown_claimable_at_us: int
    ref: int = 0  # not 0: the answer to our own UpdateRoomSettings (the owner's confirmation)


@dataclass(frozen=True, slots=True)
class UserJoined:
    user: UserInfo


@dataclass(frozen=True, slots=True)
class UserLeft:
    user_id: int
    name: str
    reason: str  # "left", "disconnected", "kicked", "banned", "slow", "replaced"


@dataclass(frozen=True, slots=True)
class UserUpdated:
    user: UserInfo


@dataclass(frozen=True, slots=True)
class ChatReceived:
    line: ChatLine


@dataclass(frozen=True, slots=True)
class ChatHistory:
    lines: tuple[ChatLine, ...]  # oldest first
    has_more: bool
    catch_up: bool  # messages missed during a reconnect (newer than what was shown)


@dataclass(frozen=True, slots=True)
class TypingChanged:
    user_id: int
    typing: bool


@dataclass(frozen=True, slots=True)
class NotesScheduled:
    """Remote events accepted by the scheduler; each event's time_ns is when it will sound."""

    user_id: int
    events: tuple[MusicEvent, ...]
    late: int  # how many of them arrived too late and play at once


@dataclass(frozen=True, slots=True)
class NotesPlayed:
    """Events handed to the synth (remote ones at their due time; ours at once). time_ns = when."""

    user_id: int  # our own id for local notes
    events: tuple[MusicEvent, ...]
    local: bool


@dataclass(frozen=True, slots=True)
class RoomListChanged:
    rooms: tuple[RoomSummaryInfo, ...]  # the whole current list
    removed: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Removed:
    reason: str  # "kicked", "banned", "room_closed"
    room: str
    by_user_id: int
    duration_s: int  # how long they keep you out (a ban, or a kick's cooldown); 0: not said
    by_name: str = ""  # who did it, if they were in the room with you


@dataclass(frozen=True, slots=True)
class ServerError:
    code: int  # pb.ErrorCode
    code_name: str
    message: str
    ref: int


@dataclass(frozen=True, slots=True)
class CommandOutput:
    ok: bool
    output: str


@dataclass(frozen=True, slots=True)
class SynthChanged:
    """The engine plays into another synth now (Engine.replace_synth, or the fallback after a failure)."""

    description: str  # e.g. "fluidsynth/jack · TimGM6mb.sf2", "silent"
    silent: bool
    reason: str  # why it is silent ("" when it is not)


@dataclass(frozen=True, slots=True)
class SynthFailed:
    """A synth call raised: the engine switched to a silent synth (notes still flow, show and record).

    `message` is the one sentence to show, e.g. "audio stopped: <error>; notes still show".
    """

    error: str
    message: str


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    path: str
    events: int


EngineEvent = (
    ConnectionChanged
    | Welcomed
    | RoomEntered
    | RoomChanged
    | UserJoined
    | UserLeft
    | UserUpdated
    | ChatReceived
    | ChatHistory
    | TypingChanged
    | NotesScheduled
    | NotesPlayed
    | RoomListChanged
    | Removed
    | ServerError
    | CommandOutput
    | PlaybackFinished
    | SynthChanged
    | SynthFailed
)
