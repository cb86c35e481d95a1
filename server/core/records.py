"""Rows the core hands to storage and gets back from it: immutable, so an action never shares state the
core goes on changing (the storage thread, or on many nodes another process, reads them later)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str
    color: str
    last_room: str = ""
    last_seen_us: int = 0


@dataclass(frozen=True, slots=True)
class BanRecord:
    """A ban (or a kick's short cool-down) from one room. It holds the user id and, when known, the
    address the user had (see pianorhythm.server.core.address.ban_scope): a fresh identity from there
    is refused too."""

    user_id: int
    name: str
    address: str
    until_us: int
    kick: bool = False


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room's persistent settings and bans (one per user id), as stored. The live, changing copy of an
    occupied room is pianorhythm.server.core.models.RoomConfig."""

    name: str
    visible: bool = True
    password_hash: str = ""
    user_limit: int = 50
    chat_enabled: bool = True
    owner_only_play: bool = False
    owner_id: int = 0
    bans: tuple[BanRecord, ...] = ()
    last_used_us: int = 0  # when someone last entered it or it last emptied; unused rooms are forgotten


@dataclass(frozen=True, slots=True)
class ChatRecord:
    id: int
    room: str
    user_id: int
    user_name: str
    user_color: str
    content: str
    server_time_us: int
