"""Room events from Redis (pianorhythm.server.cluster.rooms) in the core's form (server/core/events.py)."""

from __future__ import annotations

from pianorhythm.server.cluster import rooms
from pianorhythm.server.core import events


def core_event(room: str, e: rooms.RoomEvent) -> events.RoomEvent:
    """The core's form of a room event from Redis."""
    if isinstance(e, rooms.Joined):
        member = events.Member(e.user_id, e.node, e.at_us, e.name, e.profile)
        return events.Joined(room, e.user_id, e.at_us, member, core_crown(e.crown))
    if isinstance(e, rooms.Left):
        return events.Left(room, e.user_id, e.reason, e.at_us, core_crown(e.crown))
    if isinstance(e, rooms.SettingsChanged):
        return events.SettingsChanged(
            room,
            e.by_user,
            e.visible,
            e.password_hash,
            e.user_limit,
            e.chat_enabled,
            e.owner_only_play,
            e.version,
        )
    if isinstance(e, rooms.PasswordHashed):
        return events.PasswordHashed(room, e.pending, e.password_hash)
    if isinstance(e, rooms.Crowned):
        return events.Crowned(room, e.user_id)
    if isinstance(e, rooms.Banned):
        return events.Banned(room, e.ban, e.by_user)
    if isinstance(e, rooms.Unbanned):
        return events.Unbanned(room, e.user_ids, e.by_user)
    if isinstance(e, rooms.MemberUpdated):
        return events.MemberUpdated(room, e.user_id, e.name, e.profile)
    if isinstance(e, rooms.Muted):
        return events.Muted(room, e.user_id, e.until_us)
    return events.Closed(room)


def core_crown(crown: rooms.Crown) -> events.Crown:
    return (crown.owner_id, crown.away_owner_id, crown.claimable_at_us)
