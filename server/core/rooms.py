"""Rooms: join and leave, the crown, owner powers, the room list."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from pianorhythm.wire import pianorhythm_pb2 as pb
from server.core import paging, validate
from server.core.actions import DeleteRoom, Persist, Send
from server.core.base import CoreBase
from server.core.crypto import check_password, hash_password
from server.core.limits import US
from server.core.models import LOBBY, Room, Session, chat_pb, summary_pb
from server.core.records import RoomRecord

log = logging.getLogger("server.rooms")


class RoomOps(CoreBase):
    # -- lifecycle -----------------------------------------------------------------------------------

    def _lobby(self) -> Room:
        room = self.rooms.get(LOBBY)
        if room is None:
            room = Room(RoomRecord(LOBBY, user_limit=0), is_lobby=True)
            room.history.extend(self.preloaded_chat.pop(LOBBY, []))
            self.rooms[LOBBY] = room
            self.dirty_rooms.add(LOBBY)
        return room

    def _create_room(
        self, name: str, creator: Session, now: int, change: pb.RoomSettingsChange | None
    ) -> Room:
        stored = self.persisted.get(name)
        if stored is not None:
            room = Room(dataclasses.replace(stored, bans=dict(stored.bans)))
            if stored.owner_id and stored.owner_id != creator.user_id:
                room.away_owner_id = stored.owner_id
                room.crown_claimable_at_us = now + int(self.limits.crown_grace_s * US)
            else:
                room.owner_id = creator.user_id
        else:
            room = Room(RoomRecord(name, owner_id=creator.user_id), owner_id=creator.user_id)
            if change is not None:
                self._apply_settings(room, change)
        room.record.owner_id = room.owner_id or room.away_owner_id
        room.history.extend(self.preloaded_chat.pop(name, []))
        self.rooms[name] = room
        self._save_room(room)
        return room

    def _enter(self, session: Session, room: Room, now: int, ref: int = 0) -> None:
        session.room = room
        session.joined_room_us = now
        room.members[session.id] = session
        self.recent_rooms.pop(session.user_id, None)
        restored = room.owner_id == 0 and room.away_owner_id == session.user_id
        if restored:
            room.owner_id, room.away_owner_id, room.crown_claimable_at_us = session.user_id, 0, 0
        self._send_state((session.id,), room, now, ref)
        joined = pb.ServerMessage(user_joined=pb.UserJoined(user=session.user_pb(now)))
        self._emit(self._others(room, session), joined)
        if restored:
            self._emit(self._others(room, session), pb.ServerMessage(room_updated=room.updated_pb()))
        self.dirty_rooms.add(room.name)
        log.info(
            "join room=%r user=%d name=%r session=%d", room.name, session.user_id, session.name, session.id
        )

    def _state_messages(self, room: Room, now: int, ref: int = 0) -> list[pb.ServerMessage]:
        """The room's state as a RoomState and, when it does not fit one frame, RoomStatePages."""
        head = pb.RoomState(
            name=room.name,
            settings=room.settings_pb(),
            owner_id=room.owner_id,
            is_lobby=room.is_lobby,
            server_time_us=now,
            crown_claimable_at_us=room.crown_claimable_at_us,
        )
        users = [m.user_pb(now) for m in room.members.values()]
        chat = [chat_pb(c) for c in room.history]
        return paging.room_state(head, users, chat, ref, self.limits.page_bytes)

    def _send_state(self, targets: Sequence[int], room: Room, now: int, ref: int = 0) -> None:
        """Queue the room's state for `targets`, its pages back to back (nothing can come between)."""
        for message in self._state_messages(room, now, ref):
            self._out.append(Send(targets, message.SerializeToString()))

    def _leave(self, session: Session, reason: pb.LeaveReason.ValueType, now: int) -> None:
        room = session.room
        if room is None:
            return
        del room.members[session.id]
        session.room = None
        session.typing_until_us = 0
        uid = session.user_id
        if room.mutes.get(uid) == -1:
            del room.mutes[uid]
        if not room.is_lobby:
            self.recent_rooms[uid] = (room.name, now)
        self._emit(self._everyone(room), pb.ServerMessage(user_left=pb.UserLeft(user_id=uid, reason=reason)))
        if room.owner_id == uid:
            room.owner_id, room.away_owner_id = 0, uid
            room.crown_claimable_at_us = now + int(self.limits.crown_grace_s * US)
            self._emit(self._everyone(room), pb.ServerMessage(room_updated=room.updated_pb()))
        if not room.members and not room.is_lobby:
            del self.rooms[room.name]
        self.dirty_rooms.add(room.name)
        why = pb.LeaveReason.Name(reason).removeprefix("LEAVE_REASON_").lower()
        log.info("leave room=%r user=%d session=%d reason=%s", room.name, uid, session.id, why)

    def _to_lobby(self, session: Session, reason: pb.LeaveReason.ValueType, now: int, ref: int = 0) -> None:
        self._leave(session, reason, now)
        self._enter(session, self._lobby(), now, ref)

    def _crowns_due(self, now: int) -> None:
        for room in list(self.rooms.values()):
            if room.owner_id == 0 and 0 < room.crown_claimable_at_us <= now and room.members:
                heir = min(room.members.values(), key=lambda m: m.joined_room_us)
                self._crown(room, heir)

    def _crown(self, room: Room, session: Session) -> None:
        room.owner_id, room.away_owner_id, room.crown_claimable_at_us = session.user_id, 0, 0
        room.record.owner_id = session.user_id
        self._save_room(room)
        self._room_updated(room)

    def _crown_deadline(self) -> int | None:
        due = [
            r.crown_claimable_at_us
            for r in self.rooms.values()
            if r.owner_id == 0 and r.crown_claimable_at_us
        ]
        return min(due) if due else None

    # -- joining -------------------------------------------------------------------------------------

    def _join(
        self, session: Session, msg: pb.JoinRoom, ref: int, now: int, *, resuming: bool = False
    ) -> bool:
        try:
            name = validate.room_name(msg.name)
        except validate.Invalid as exc:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return False
        if name == LOBBY:
            if session.room is None or not session.room.is_lobby:
                self._to_lobby(session, pb.LEAVE_REASON_LEFT, now, ref)
            return True
        room = self.rooms.get(name)
        if room is not None and room is session.room:
            self._send_state((session.id,), room, now, ref)
            return True
        record = room.record if room is not None else self.persisted.get(name)
        if record is not None and not self._may_enter(
            session, record, room, msg.password, ref, now, resuming
        ):
            return False
        if room is None and msg.HasField("settings"):
            try:
                self._check_settings(msg.settings)
            except validate.Invalid as exc:
                self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
                return False
        self._leave(session, pb.LEAVE_REASON_LEFT, now)
        if room is None:
            room = self._create_room(name, session, now, msg.settings if msg.HasField("settings") else None)
        self._enter(session, room, now, ref)
        return True

    def _may_enter(
        self,
        session: Session,
        record: RoomRecord,
        room: Room | None,
        password: str,
        ref: int,
        now: int,
        resuming: bool,
    ) -> bool:
        uid = session.user_id
        until = record.bans.get(uid)
        if until is not None:
            if until > now:
                minutes = max(1, (until - now + 59 * US) // (60 * US))
                text = f"You are banned from this room for {minutes} more minute(s); try another room."
                self._error(session, ref, pb.ERROR_CODE_BANNED, text)
                return False
            del record.bans[uid]
        is_owner = record.owner_id == uid
        if is_owner or resuming:
            return True
        if room is not None and len(room.members) >= record.user_limit:
            self._error(session, ref, pb.ERROR_CODE_ROOM_FULL, "That room is full; try again later.")
            return False
        if record.password_hash and not check_password(password, record.password_hash):
            text = "That room needs a password; check it and join again."
            self._error(session, ref, pb.ERROR_CODE_WRONG_PASSWORD, text)
            return False
        return True

    # -- settings ------------------------------------------------------------------------------------

    def _check_settings(self, change: pb.RoomSettingsChange) -> None:
        if change.HasField("password") and change.password:
            validate.password(change.password)
        if change.HasField("user_limit"):
            validate.user_limit(change.user_limit)

    def _apply_settings(self, room: Room, change: pb.RoomSettingsChange) -> None:
        r = room.record
        if change.HasField("visible"):
            r.visible = change.visible
        if change.HasField("password"):
            r.password_hash = (
                hash_password(change.password, self.options.salt_factory()) if change.password else ""
            )
        if change.HasField("user_limit"):
            r.user_limit = change.user_limit
        if change.HasField("chat_enabled"):
            r.chat_enabled = change.chat_enabled
        if change.HasField("owner_only_play"):
            r.owner_only_play = change.owner_only_play

    def _owned_room(self, session: Session, ref: int) -> Room | None:
        room = session.room
        if room is None:
            self._error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room first.")
            return None
        if room.is_lobby or room.owner_id != session.user_id:
            self._error(session, ref, pb.ERROR_CODE_NOT_OWNER, "Only the room owner (crown) may do that.")
            return None
        return room

    def _target(self, session: Session, room: Room, user_id: int, ref: int) -> Session | None:
        if user_id == session.user_id:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "You cannot do that to yourself.")
            return None
        for member in room.members.values():
            if member.user_id == user_id:
                return member
        self._error(session, ref, pb.ERROR_CODE_USER_NOT_FOUND, "That user is not in this room.")
        return None

    def _update_settings(self, session: Session, msg: pb.UpdateRoomSettings, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        if room is None:
            return
        try:
            self._check_settings(msg.settings)
        except validate.Invalid as exc:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        self._apply_settings(room, msg.settings)
        self._save_room(room)
        self._room_updated(room)

    def _give(self, session: Session, msg: pb.GiveOwnership, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        target = self._target(session, room, msg.user_id, ref) if room is not None else None
        if room is not None and target is not None:
            self._crown(room, target)

    def _claim(self, session: Session, msg: pb.ClaimCrown, ref: int, now: int) -> None:
        room = session.room
        if room is None or room.is_lobby:
            self._error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room other than the lobby first.")
        elif room.owner_id or now < room.crown_claimable_at_us:
            self._error(session, ref, pb.ERROR_CODE_NOT_OWNER, "The crown is not free to claim yet.")
        else:
            self._crown(room, session)

    def _kick(self, session: Session, msg: pb.KickUser, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        target = self._target(session, room, msg.user_id, ref) if room is not None else None
        if room is None or target is None:
            return
        removed = pb.Removed(reason=pb.REMOVAL_REASON_KICKED, room=room.name, by_user_id=session.user_id)
        self._leave(target, pb.LEAVE_REASON_KICKED, now)
        self._to(target, pb.ServerMessage(removed=removed))
        self._enter(target, self._lobby(), now)

    def _ban(self, session: Session, msg: pb.BanUser, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        if room is None:
            return
        duration = msg.duration_s or self.limits.default_ban_s
        if msg.user_id == session.user_id or not msg.user_id or duration > 86_400:
            self._error(
                session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "Ban another user for 1-86,400 seconds."
            )
            return
        room.record.bans[msg.user_id] = now + duration * US
        self._save_room(room)
        target = next((m for m in room.members.values() if m.user_id == msg.user_id), None)
        if target is not None:
            removed = pb.Removed(
                reason=pb.REMOVAL_REASON_BANNED,
                room=room.name,
                by_user_id=session.user_id,
                duration_s=duration,
            )
            self._leave(target, pb.LEAVE_REASON_BANNED, now)
            self._to(target, pb.ServerMessage(removed=removed))
            self._enter(target, self._lobby(), now)

    def _unban(self, session: Session, msg: pb.UnbanUser, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        if room is None:
            return
        if room.record.bans.pop(msg.user_id, None) is None:
            self._error(session, ref, pb.ERROR_CODE_USER_NOT_FOUND, "That user is not banned here.")
            return
        self._save_room(room)

    def _mute(self, session: Session, msg: pb.MuteUser, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        target = self._target(session, room, msg.user_id, ref) if room is not None else None
        if room is None or target is None:
            return
        if msg.duration_s > 86_400:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "Mute for 1-86,400 seconds.")
            return
        if msg.unmute:
            room.mutes.pop(target.user_id, None)
        else:
            room.mutes[target.user_id] = now + msg.duration_s * US if msg.duration_s else -1
        self._emit(
            self._everyone(room), pb.ServerMessage(user_updated=pb.UserUpdated(user=target.user_pb(now)))
        )

    def _close_room(self, name: str, now: int) -> bool:
        self.persisted.pop(name, None)
        self._out.append(Persist(DeleteRoom(name)))
        room = self.rooms.get(name)
        if room is None or room.is_lobby:
            return room is None
        for member in list(room.members.values()):
            self._leave(member, pb.LEAVE_REASON_KICKED, now)
            self._to(
                member, pb.ServerMessage(removed=pb.Removed(reason=pb.REMOVAL_REASON_ROOM_CLOSED, room=name))
            )
            self._enter(member, self._lobby(), now)
        return True

    # -- room list -----------------------------------------------------------------------------------

    def _subscribe(self, session: Session, msg: pb.RoomListSubscribe, ref: int, now: int) -> None:
        self._flush_room_list()
        self.subscribers.add(session.id)
        rooms = [summary_pb(self.listed[n]) for n in sorted(self.listed)]
        for message in paging.room_list(rooms, ref, self.limits.page_bytes):
            self._to(session, message)

    def _unsubscribe(self, session: Session, msg: pb.RoomListUnsubscribe, ref: int, now: int) -> None:
        self.subscribers.discard(session.id)

    def _leave_msg(self, session: Session, msg: pb.LeaveRoom, ref: int, now: int) -> None:
        if session.room is not None and session.room.is_lobby:
            self._send_state((session.id,), session.room, now, ref)
        else:
            self._to_lobby(session, pb.LEAVE_REASON_LEFT, now, ref)
