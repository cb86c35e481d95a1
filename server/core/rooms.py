"""Rooms: join and leave, the crown, owner powers, the room list."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from pianorhythm.server.core import paging, validate
from pianorhythm.server.core.actions import (
    Action,
    DeleteRoom,
    HashPassword,
    Persist,
    RoomEntered,
    RoomLeft,
    SaveRoom,
    SendTo,
    VerifyPassword,
)
from pianorhythm.server.core.base import CoreBase
from pianorhythm.server.core.crypto import pending_hash
from pianorhythm.server.core.limits import US
from pianorhythm.server.core.models import LOBBY, Room, RoomConfig, Session, chat_pb, summary_pb
from pianorhythm.server.core.records import BanRecord, RoomRecord
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger("server.rooms")


class RoomOps(CoreBase):
    # -- lifecycle -----------------------------------------------------------------------------------

    def _lobby(self) -> Room:
        room = self.rooms.get(LOBBY)
        if room is None:
            room = Room(RoomConfig(LOBBY, user_limit=0), is_lobby=True)
            room.history.extend(self.preloaded_chat.pop(LOBBY, []))
            self.rooms[LOBBY] = room
            self.dirty_rooms.add(LOBBY)
        return room

    def _create_room(
        self, name: str, creator: Session, now: int, change: pb.RoomSettingsChange | None
    ) -> Room:
        stored = self.persisted.get(name)
        if stored is not None:
            room = Room(RoomConfig.of(stored))
            if stored.owner_id and stored.owner_id != creator.user_id:
                room.away_owner_id = stored.owner_id
                room.crown_claimable_at_us = now + int(self.limits.crown_grace_s * US)
            else:
                room.owner_id = creator.user_id
        else:
            room = Room(RoomConfig(name, owner_id=creator.user_id), owner_id=creator.user_id)
            if change is not None:
                self._apply_settings(room, change)
        room.record.owner_id = room.owner_id or room.away_owner_id
        room.record.last_used_us = now
        room.history.extend(self.preloaded_chat.pop(name, []))
        self.rooms[name] = room
        self._save_room(room)
        return room

    def _enter(self, session: Session, room: Room, now: int, ref: int = 0) -> None:
        session.room = room
        session.joined_room_us = now
        session.suffix = self._suffix_for(room, session, session.name)
        room.members[session.user_id] = session
        self._out.append(RoomEntered(room.name, session.user_id, session.id))
        self.recent_rooms.pop(session.user_id, None)
        restored = room.owner_id == 0 and room.away_owner_id == session.user_id
        if restored:
            room.owner_id, room.away_owner_id, room.crown_claimable_at_us = session.user_id, 0, 0
        self._send_state(session, room, now, ref)
        joined = pb.ServerMessage(user_joined=pb.UserJoined(user=session.user_pb(now)))
        self._broadcast(room, joined, session.user_id)
        if restored:
            self._broadcast(room, pb.ServerMessage(room_updated=room.updated_pb()), session.user_id)
        self.dirty_rooms.add(room.name)
        log.info(
            "join room=%r user=%d name=%r session=%d", room.name, session.user_id, session.name, session.id
        )

    def _suffix_for(self, room: Room, session: Session, name: str) -> str:
        """ "#<user id>" when another present member already shows `name` (case-insensitive), else ""."""
        folded = name.casefold()
        taken = any(m.display_name.casefold() == folded for m in room.members.values() if m is not session)
        return f"#{session.user_id}" if taken else ""

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

    def _send_state(self, session: Session, room: Room, now: int, ref: int = 0) -> None:
        """Queue the room's state for `session`, its pages back to back (nothing can come between)."""
        users = (session.user_id,)
        for message in self._state_messages(room, now, ref):
            self._out.append(SendTo(users, message.SerializeToString()))

    def _leave(self, session: Session, reason: pb.LeaveReason.ValueType, now: int) -> None:
        room = session.room
        if room is None:
            return
        del room.members[session.user_id]
        self._out.append(RoomLeft(room.name, session.user_id))
        session.room = None
        session.typing_until_us = 0
        self.typists.discard(session)
        session.suffix = ""
        uid = session.user_id
        if room.mutes.get(uid) == -1:
            del room.mutes[uid]
        if not room.is_lobby:
            self.recent_rooms.pop(uid, None)  # re-inserted at the end: the map stays oldest first
            self.recent_rooms[uid] = (room.name, now)
        self._broadcast(room, pb.ServerMessage(user_left=pb.UserLeft(user_id=uid, reason=reason)))
        if room.owner_id == uid:
            room.owner_id, room.away_owner_id = 0, uid
            room.crown_claimable_at_us = now + int(self.limits.crown_grace_s * US)
            self._broadcast(room, pb.ServerMessage(room_updated=room.updated_pb()))
        if not room.members and not room.is_lobby:
            del self.rooms[room.name]
            room.record.last_used_us = now
            self._save_room(room)
        self.dirty_rooms.add(room.name)
        why = pb.LeaveReason.Name(reason).removeprefix("LEAVE_REASON_").lower()
        log.info("leave room=%r user=%d session=%d reason=%s", room.name, uid, session.id, why)

    def _to_lobby(self, session: Session, reason: pb.LeaveReason.ValueType, now: int, ref: int = 0) -> None:
        self._leave(session, reason, now)
        self._enter(session, self._lobby(), now, ref)

    def _crowns_due(self, now: int) -> None:
        for room in list(self.rooms.values()):
            if room.owner_id == 0 and 0 < room.crown_claimable_at_us <= now and room.members:
                self._crown(room, self._heir(room))

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
        self,
        session: Session,
        msg: pb.JoinRoom,
        ref: int,
        now: int,
        *,
        resuming: bool = False,
        verified: str = "",
    ) -> bool:
        """Join (or create) a room. `verified` is a stored password hash the join's password was found to
        match off the loop. False when refused, or when the password is still being checked."""
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
            self._send_state(session, room, now, ref)
            return True
        record = room.record if room is not None else self.persisted.get(name)
        if record is not None and not self._may_enter(
            session, record, room, msg.password, ref, now, resuming, verified
        ):
            return False
        if room is None and msg.HasField("settings"):
            try:
                self._check_settings(msg.settings)
            except validate.Invalid as exc:
                self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
                return False
            if msg.settings.password and not self._may_hash(session, ref, now):
                return False
        if record is None and not self._may_create(session, ref, now):
            return False
        self._leave(session, pb.LEAVE_REASON_LEFT, now)
        if room is None:
            room = self._create_room(name, session, now, msg.settings if msg.HasField("settings") else None)
        self._enter(session, room, now, ref)
        return True

    def _may_create(self, session: Session, ref: int, now: int) -> bool:
        """A new room name (never stored, or forgotten) costs its address one token of a small bucket."""
        self._arm_sweep(now)
        wait = self.room_creations.take(session.scope, now)
        if wait:
            text = "Too many new rooms from your address (joining an existing room still works)"
            self._retry_later(session, ref, wait, text)
            return False
        return True

    def _may_enter(
        self,
        session: Session,
        record: RoomConfig | RoomRecord,
        room: Room | None,
        password: str,
        ref: int,
        now: int,
        resuming: bool,
        verified: str,
    ) -> bool:
        uid = session.user_id
        is_owner = record.owner_id == uid
        if isinstance(record, RoomConfig):
            self._forget_ended_bans(record, now)
            bans: Iterable[BanRecord] = record.bans.values()
        else:
            bans = record.bans
        ban = self._ban_on(bans, session, now, check_address=not is_owner)
        if ban is not None:
            if ban.kick:
                seconds = max(1, -(-(ban.until_us - now) // US))
                text = f"You were kicked from this room; you may come back in {seconds} s."
            else:
                minutes = max(1, (ban.until_us - now + 59 * US) // (60 * US))
                text = f"You are banned from this room for {minutes} more minute(s); try another room."
            self._error(session, ref, pb.ERROR_CODE_BANNED, text)
            return False
        if is_owner or resuming:
            return True
        if room is not None and len(room.members) >= record.user_limit:
            self._error(session, ref, pb.ERROR_CODE_ROOM_FULL, "That room is full; try again later.")
            return False
        if not record.password_hash or (verified and verified == record.password_hash):
            return True
        if not password:
            text = "That room needs a password; check it and join again."
            self._error(session, ref, pb.ERROR_CODE_WRONG_PASSWORD, text)
            return False
        self._verify_password(session, record, password, ref, now)
        return False

    def _ban_on(
        self, bans: Iterable[BanRecord], session: Session, now: int, *, check_address: bool
    ) -> BanRecord | None:
        """The ban that keeps `session` out of the room, if any."""
        for ban in bans:
            if ban.until_us > now and (
                ban.user_id == session.user_id
                or (check_address and ban.address and ban.address == session.scope)
            ):
                return ban
        return None

    @staticmethod
    def _forget_ended_bans(config: RoomConfig, now: int) -> list[int]:
        """Drop a live room's bans that have ended; their user ids."""
        ended = [uid for uid, ban in config.bans.items() if ban.until_us <= now]
        for uid in ended:
            del config.bans[uid]
        return ended

    # -- passwords: checked and hashed off the loop, throttled --------------------------------------------

    def _verify_password(
        self, session: Session, record: RoomConfig | RoomRecord, password: str, ref: int, now: int
    ) -> None:
        name = record.name
        # Both budgets are charged when a check starts and refunded when it succeeds: charging failures
        # only when their verdict lands would let a burst of guesses in flight through together.
        self._arm_sweep(now)
        wait = self.password_failures.take(name, now)
        if wait:
            self._retry_later(session, ref, wait, "Too many wrong passwords for this room lately")
            return
        if not self._may_hash(session, ref, now):
            self.password_failures.give_back(name, now)
            return
        self.password_jobs += 1
        self._out.append(VerifyPassword(session.id, ref, name, password, record.password_hash))

    def _may_hash(self, session: Session, ref: int, now: int) -> bool:
        """Take a password attempt from the session's address, if the server has room for another hash."""
        if self.password_jobs >= self.limits.password_jobs_max:
            self._retry_later(session, ref, US, "The server is busy checking passwords")
            return False
        self._arm_sweep(now)
        wait = self.password_attempts.take(session.scope, now)
        if wait:
            self._retry_later(session, ref, wait, "Too many password attempts from your address")
            return False
        return True

    def password_checked(self, job: VerifyPassword, ok: bool, now: int) -> list[Action]:
        """The verdict on a VerifyPassword: finish the join, or count a wrong password."""
        self.password_jobs -= 1
        session = self.sessions.get(job.session_id)
        if session is None or session.closed:
            return self._finish()
        if ok:
            self.password_attempts.give_back(session.scope, now)
            self.password_failures.give_back(job.room, now)
            self._join(
                session, pb.JoinRoom(name=job.room, password=job.password), job.ref, now, verified=job.stored
            )
        else:
            self.counters["wrong_passwords"] += 1
            log.info("wrong password room=%r user=%d ip=%s", job.room, session.user_id, session.ip)
            text = "That password is wrong; check it and join again."
            self._error(session, job.ref, pb.ERROR_CODE_WRONG_PASSWORD, text)
        return self._finish()

    def password_hashed(self, job: HashPassword, password_hash: str | None, now: int) -> list[Action]:
        """A new password's hash is ready: it replaces the pending marker, unless changed meanwhile.
        None: hashing failed, and the room stays locked by the marker until the owner sets it again."""
        self.password_jobs -= 1
        if password_hash is None:
            return self._finish()
        room = self.rooms.get(job.room)
        pending = pending_hash(job.version)
        if room is not None:
            if room.record.password_hash == pending:
                room.record.password_hash = password_hash
                self._save_room(room)
            return self._finish()
        stored = self.persisted.get(job.room)
        if stored is not None and stored.password_hash == pending:
            stored = dataclasses.replace(stored, password_hash=password_hash)
            self.persisted[job.room] = stored
            self._out.append(Persist(SaveRoom(stored)))
        return self._finish()

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
            r.password_hash = ""
            if change.password:
                self.password_version += 1
                self.password_jobs += 1
                r.password_hash = pending_hash(self.password_version)
                salt = self.options.salt_factory()
                self._out.append(HashPassword(room.name, self.password_version, change.password, salt))
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
        member = room.members.get(user_id)
        if member is not None:
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
        if msg.settings.password and not self._may_hash(session, ref, now):
            return
        self._apply_settings(room, msg.settings)
        self._save_room(room)
        updated = room.updated_pb()
        self._broadcast(room, pb.ServerMessage(room_updated=updated), session.user_id)
        self._to(session, pb.ServerMessage(ref=ref, room_updated=updated))  # the owner's confirmation
        self.dirty_rooms.add(room.name)

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
            self._error(session, ref, pb.ERROR_CODE_NOT_OWNER, self._crown_taken(room, session, now))
        else:
            self._crown(room, session)

    def _crown_taken(self, room: Room, session: Session, now: int) -> str:
        """Why `session` cannot claim the crown now, in one sentence."""
        if room.owner_id == session.user_id:
            return "You already hold the crown."
        if room.owner_id:
            owner = room.owner_session()
            holder = owner.display_name if owner else "Another player"
            return f"{holder} holds the crown; only they can give it away."
        wait_s = -(-(room.crown_claimable_at_us - now) // US)
        heir = self._heir(room)
        return (
            f"The crown waits {wait_s} s more for its owner to come back; "
            f"then it passes to {heir.display_name}, here longest."
        )

    @staticmethod
    def _heir(room: Room) -> Session:
        return min(room.members.values(), key=lambda m: m.joined_room_us)

    def _kick(self, session: Session, msg: pb.KickUser, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        target = self._target(session, room, msg.user_id, ref) if room is not None else None
        if room is None or target is None:
            return
        cooldown = now + self.limits.kick_cooldown_s * US
        room.record.bans[target.user_id] = BanRecord(
            target.user_id, target.display_name, target.scope, cooldown, kick=True
        )
        self._save_room(room)
        removed = pb.Removed(
            reason=pb.REMOVAL_REASON_KICKED,
            room=room.name,
            by_user_id=session.user_id,
            duration_s=self.limits.kick_cooldown_s,  # a kick keeps them out this long: say so
        )
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
        target = room.members.get(msg.user_id)
        known = target or self.by_user.get(msg.user_id)  # online elsewhere: their address is known too
        name = known.display_name if known is not None else f"user {msg.user_id}"
        address = known.scope if known is not None else ""
        room.record.bans[msg.user_id] = BanRecord(msg.user_id, name, address, now + duration * US)
        self._save_room(room)
        log.info("ban room=%r user=%d address=%s for %d s", room.name, msg.user_id, address, duration)
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
            self._error(
                session, ref, pb.ERROR_CODE_USER_NOT_FOUND, f"No ban here matches {what}; /bans lists them."
            )
            return
        for uid in lifted:
            del bans[uid]
        self._save_room(room)
        self._ban_list(session, room, ref, now)

    def _list_bans(self, session: Session, msg: pb.ListBans, ref: int, now: int) -> None:
        room = self._owned_room(session, ref)
        if room is not None:
            self._ban_list(session, room, ref, now)

    def _ban_list(self, session: Session, room: Room, ref: int, now: int) -> None:
        bans = room.record.bans
        if self._forget_ended_bans(room.record, now):
            self._save_room(room)
        entries = [
            pb.BanEntry(
                user_id=ban.user_id, name=ban.name, remaining_s=-(-(ban.until_us - now) // US), kick=ban.kick
            )
            for ban in sorted(bans.values(), key=lambda b: b.until_us)
        ]
        self._to(session, pb.ServerMessage(ref=ref, ban_list=pb.BanList(bans=entries)))

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
        self._broadcast(room, pb.ServerMessage(user_updated=pb.UserUpdated(user=target.user_pb(now))))

    def _close_room(self, name: str, now: int) -> None:
        """Send a room's members to the lobby and delete it, live or only stored (never the lobby)."""
        room = self.rooms.get(name)
        if room is not None:
            for member in list(room.members.values()):
                self._leave(member, pb.LEAVE_REASON_KICKED, now)
                removed = pb.Removed(reason=pb.REMOVAL_REASON_ROOM_CLOSED, room=name)
                self._to(member, pb.ServerMessage(removed=removed))
                self._enter(member, self._lobby(), now)
        # After the members left: the last one out saves the room, and this deletes it for good.
        self.persisted.pop(name, None)
        self._out.append(Persist(DeleteRoom(name)))

    # -- room list -----------------------------------------------------------------------------------

    def _subscribe(self, session: Session, msg: pb.RoomListSubscribe, ref: int, now: int) -> None:
        self._flush_room_list()
        self.subscribers.add(session.user_id)
        rooms = [summary_pb(self.listed[n]) for n in sorted(self.listed)]
        for message in paging.room_list(rooms, ref, self.limits.page_bytes):
            self._to(session, message)

    def _unsubscribe(self, session: Session, msg: pb.RoomListUnsubscribe, ref: int, now: int) -> None:
        self.subscribers.discard(session.user_id)

    def _leave_msg(self, session: Session, msg: pb.LeaveRoom, ref: int, now: int) -> None:
        if session.room is not None and session.room.is_lobby:
            self._send_state(session, session.room, now, ref)
        else:
            self._to_lobby(session, pb.LEAVE_REASON_LEFT, now, ref)
