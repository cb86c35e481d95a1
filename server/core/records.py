"""Rows the core hands to storage and gets back from it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class UserRecord:
    id: int
    name: str
    color: str
    last_room: str = ""
    last_seen_us: int = 0


@dataclass(slots=True)
class RoomRecord:
    """A room's persistent settings; `bans` maps user id -> server time (us) the ban ends."""

    name: str
    visible: bool = True
    password_hash: str = ""
    user_limit: int = 50
    chat_enabled: bool = True
    owner_only_play: bool = False
    owner_id: int = 0
    bans: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatRecord:
    id: int
    room: str
    user_id: int
    user_name: str
    user_color: str
    content: str
    server_time_us: int
