"""The sans-I/O relay core: rooms, sessions, permissions, quotas and timers as a pure state machine."""

from pianorhythm.server.core.actions import (
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_REPLACED,
    CLOSE_SLOW,
    Action,
    Broadcast,
    Close,
    FetchHistory,
    Persist,
    Reply,
    RoomEntered,
    RoomLeft,
    SendTo,
    UserOffline,
    UserOnline,
)
from pianorhythm.server.core.limits import Limits
from pianorhythm.server.core.relay import RelayCore
from pianorhythm.server.core.state import CoreOptions

__all__ = [
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_REPLACED",
    "CLOSE_SLOW",
    "Action",
    "Broadcast",
    "Close",
    "CoreOptions",
    "FetchHistory",
    "Limits",
    "Persist",
    "RelayCore",
    "Reply",
    "RoomEntered",
    "RoomLeft",
    "SendTo",
    "UserOffline",
    "UserOnline",
]
