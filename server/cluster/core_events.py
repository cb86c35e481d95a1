"""Room events from Redis (pianorhythm.server.cluster.rooms) in the core's form (server/core/events.py)."""

from __future__ import annotations

import dataclasses

from pianorhythm.server.cluster import rooms
from pianorhythm.server.core import events
from pianorhythm.server.core.models import Room
from pianorhythm.wire import pianorhythm_pb2 as pb


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


def missed_events(room: Room, snapshot: rooms.RoomSnapshot, here: str, now: int) -> list[events.RoomEvent]:
    """The room events that bring `room` (a replica on node `here` that missed some while its link was
    down) to `snapshot`: settings, bans, who left (as LEFT: why is not known), who joined or moved node, and
    the crown with the last of them."""
    name, record, crown = room.name, snapshot.record, core_crown(snapshot.crown)
    out: list[events.RoomEvent] = []
    live = room.record
    settings = (record.visible, record.password_hash, record.user_limit, record.chat_enabled)
    if (
        settings + (record.owner_only_play,)
        != (live.visible, live.password_hash, live.user_limit, live.chat_enabled, live.owner_only_play)
        or snapshot.version != room.version
    ):
        out.append(events.SettingsChanged(name, 0, *settings, record.owner_only_play, snapshot.version))
    bans = {ban.user_id: ban for ban in record.bans}
    out += [events.Banned(name, ban) for uid, ban in bans.items() if live.bans.get(uid) != ban]
    lifted = tuple(uid for uid in live.bans if uid not in bans)
    if lifted:
        out.append(events.Unbanned(name, lifted))
    members = {m.user_id: m for m in snapshot.members}
    moves: list[events.Joined | events.Left] = [
        events.Left(name, uid, pb.LEAVE_REASON_LEFT, now) for uid in room.members if uid not in members
    ]
    for m in snapshot.members:
        seated = room.members.get(m.user_id)
        if seated is None or (seated.node or here) != m.node:
            member = events.Member(m.user_id, m.node, m.joined_us, m.name, m.profile)
            moves.append(events.Joined(name, m.user_id, m.joined_us, member))
    if moves:
        last = moves.pop()
        moves.append(dataclasses.replace(last, crown=crown))
    elif crown[0] and crown[0] != room.owner_id:
        out.append(events.Crowned(name, crown[0]))
    return out + moves
