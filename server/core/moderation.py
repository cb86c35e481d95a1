"""Moderation: what a room's owner may do to its members (kick, ban, unban, mute), and closing a room."""

from __future__ import annotations

import logging

from pianorhythm.server.core.actions import AskBan, AskMute, AskUnban, DeleteRoom, Persist
from pianorhythm.server.core.events import Banned, Muted, Unbanned
from pianorhythm.server.core.limits import US
from pianorhythm.server.core.models import Room, Session
from pianorhythm.server.core.records import BanRecord
from pianorhythm.server.core.rooms import RoomOps
from pianorhythm.server.core.state import CoreState
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger("server.rooms")


class ModerationOps:
    def __init__(self, state: CoreState, room_ops: RoomOps) -> None:
        self.state = state
        self.room_ops = room_ops

    def kick(self, session: Session, msg: pb.KickUser, ref: int, now: int) -> None:
        room = self.room_ops.owned_room(session, ref)
        target = self.room_ops.target(session, room, msg.user_id, ref) if room is not None else None
        if room is None or target is None:
            return
        cooldown = now + self.state.limits.kick_cooldown_s * US
        ban = BanRecord(target.user_id, target.display_name, target.scope, cooldown, kick=True)
        if self.state.clustered:  # the directory moves them (and their node tells them: RoomOps.removed)
            self.state.out.append(AskBan(room.name, session.user_id, ban, ref))
            return
        self.room_ops.apply(Banned(room.name, ban), now)
        removed = pb.Removed(
            reason=pb.REMOVAL_REASON_KICKED,
            room=room.name,
            by_user_id=session.user_id,
            duration_s=self.state.limits.kick_cooldown_s,  # a kick keeps them out this long: say so
        )
        self.room_ops.leave(target, pb.LEAVE_REASON_KICKED, now)
        self.state.to(target, pb.ServerMessage(removed=removed))
        self.room_ops.enter_lobby(target, now)

    def ban(self, session: Session, msg: pb.BanUser, ref: int, now: int) -> None:
        room = self.room_ops.owned_room(session, ref)
        if room is None:
            return
        duration = msg.duration_s or self.state.limits.default_ban_s
        if msg.user_id == session.user_id or not msg.user_id or duration > 86_400:
            self.state.error(
                session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "Ban another user for 1-86,400 seconds."
            )
            return
        target = room.members.get(msg.user_id)
        known = target or self.state.by_user.get(msg.user_id)  # online elsewhere: their address is known too
        name = known.display_name if known is not None else f"user {msg.user_id}"
        address = known.scope if known is not None else ""
        ban = BanRecord(msg.user_id, name, address, now + duration * US)
        if self.state.clustered:
            self.state.out.append(AskBan(room.name, session.user_id, ban, ref))
            return
        self.room_ops.apply(Banned(room.name, ban), now)
        log.info("ban room=%r user=%d address=%s for %d s", room.name, msg.user_id, address, duration)
        if target is not None:
            removed = pb.Removed(
                reason=pb.REMOVAL_REASON_BANNED,
                room=room.name,
                by_user_id=session.user_id,
                duration_s=duration,
            )
            self.room_ops.leave(target, pb.LEAVE_REASON_BANNED, now)
            self.state.to(target, pb.ServerMessage(removed=removed))
            self.room_ops.enter_lobby(target, now)

    def unban(self, session: Session, msg: pb.UnbanUser, ref: int, now: int) -> None:
        room = self.room_ops.owned_room(session, ref)
        if room is None:
            return
        bans = room.record.bans
        wanted = msg.name.strip().casefold()
        lifted = [
            uid
            for uid, ban in bans.items()
            if uid == msg.user_id
            or (wanted and wanted in (ban.name.casefold(), f"{ban.name}#{uid}".casefold()))
        ]
        if not lifted:
            what = repr(msg.name.strip()) if wanted else "that user"
            self.state.error(
                session, ref, pb.ERROR_CODE_USER_NOT_FOUND, f"No ban here matches {what}; /bans lists them."
            )
            return
        if self.state.clustered:  # answered with the list when the Unbanned event comes back
            self.state.pending_unbans[session.user_id] = ref
            self.state.out.append(AskUnban(room.name, session.user_id, tuple(lifted), ref))
            return
        self.room_ops.apply(Unbanned(room.name, tuple(lifted)), now)
        self.ban_list(session, room, ref, now)

    def list_bans(self, session: Session, msg: pb.ListBans, ref: int, now: int) -> None:
        room = self.room_ops.owned_room(session, ref)
        if room is not None:
            self.ban_list(session, room, ref, now)

    def ban_list(self, session: Session, room: Room, ref: int, now: int) -> None:
        self.room_ops.ban_list(session, room, ref, now)

    def mute(self, session: Session, msg: pb.MuteUser, ref: int, now: int) -> None:
        room = self.room_ops.owned_room(session, ref)
        target = self.room_ops.target(session, room, msg.user_id, ref) if room is not None else None
        if room is None or target is None:
            return
        if msg.duration_s > 86_400:
            self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "Mute for 1-86,400 seconds.")
            return
        until = 0 if msg.unmute else now + msg.duration_s * US if msg.duration_s else -1
        if self.state.clustered:  # every node's copy of the room is muted by the event that comes back
            self.state.out.append(AskMute(room.name, session.user_id, target.user_id, until, ref))
            return
        self.room_ops.apply(Muted(room.name, target.user_id, until), now)

    def close_room(self, name: str, now: int) -> None:
        """Send a room's members to the lobby and delete it, live or only stored (never the lobby)."""
        room = self.state.rooms.get(name)
        if room is not None:
            for member in list(room.members.values()):
                self.room_ops.leave(member, pb.LEAVE_REASON_KICKED, now)
                removed = pb.Removed(reason=pb.REMOVAL_REASON_ROOM_CLOSED, room=name)
                self.state.to(member, pb.ServerMessage(removed=removed))
                self.room_ops.enter_lobby(member, now)
        # After the members left: the last one out saves the room, and this deletes it for good.
        self.state.persisted.pop(name, None)
        self.state.out.append(Persist(DeleteRoom(name)))
