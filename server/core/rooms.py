"""Rooms: join and leave (and creating rooms), the crown, settings, passwords, the room list; and `apply`,
where every room event (events.py) changes a room."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from google.protobuf.message import DecodeError

from pianorhythm.server.core import paging, validate
from pianorhythm.server.core.actions import (
    Action,
    AskCrown,
    AskCrownDue,
    AskJoin,
    AskLeave,
    AskPasswordHashed,
    AskSettings,
    HashPassword,
    Persist,
    RoomEntered,
    RoomLeft,
    SaveRoom,
    SendTo,
    VerifyPassword,
)
from pianorhythm.server.core.crypto import pending_hash
from pianorhythm.server.core.events import (
    Banned,
    Closed,
    Crown,
    Crowned,
    Joined,
    Left,
    Member,
    MemberUpdated,
    PasswordHashed,
    RoomEvent,
    SettingsChanged,
    Unbanned,
)
from pianorhythm.server.core.limits import US, TokenBucket
from pianorhythm.server.core.models import LOBBY, Room, RoomConfig, Session, chat_pb, summary_pb
from pianorhythm.server.core.records import BanRecord, ChatRecord, RoomRecord
from pianorhythm.server.core.state import CoreState
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger("server.rooms")


class RoomOps:
    def __init__(self, state: CoreState) -> None:
        self.state = state

    # -- lifecycle -----------------------------------------------------------------------------------

    def lobby(self) -> Room:
        room = self.state.rooms.get(LOBBY)
        if room is None:
            room = Room(RoomConfig(LOBBY, user_limit=0), is_lobby=True)
            room.history.extend(self.state.preloaded_chat.pop(LOBBY, []))
            self.state.rooms[LOBBY] = room
            self.state.dirty_rooms.add(LOBBY)
        return room

    def create_room(
        self, name: str, creator: Session, now: int, change: pb.RoomSettingsChange | None
    ) -> Room:
        stored = self.state.persisted.get(name)
        if stored is not None:
            room = Room(RoomConfig.of(stored))
            if stored.owner_id and stored.owner_id != creator.user_id:
                room.away_owner_id = stored.owner_id
                room.crown_claimable_at_us = now + int(self.state.limits.crown_grace_s * US)
            else:
                room.owner_id = creator.user_id
        else:
            room = Room(RoomConfig(name, owner_id=creator.user_id), owner_id=creator.user_id)
            if change is not None:
                self.set_settings(room.record, self.settings_after(room.record, change, creator.user_id))
        room.record.owner_id = room.owner_id or room.away_owner_id
        room.record.last_used_us = now
        room.history.extend(self.state.preloaded_chat.pop(name, []))
        self.state.rooms[name] = room
        self.state.save_room(room)
        return room

    def enter(self, session: Session, room: Room, now: int, ref: int = 0) -> None:
        self.apply(Joined(room.name, session.user_id, now), now)
        self.send_state(session, room, now, ref)

    def enter_lobby(self, session: Session, now: int, ref: int = 0) -> None:
        if self.state.clustered:
            self.ask_join(session, LOBBY, ref, now)
        else:
            self.enter(session, self.lobby(), now, ref)

    # -- many nodes: room changes are asked of the directory, and applied when their events come back --

    def ask_join(
        self,
        session: Session,
        name: str,
        ref: int,
        now: int,
        *,
        resuming: bool = False,
        verified: str = "",
        settings: SettingsChanged | None = None,
        password: str = "",
    ) -> None:
        self.state.pending_joins[session.user_id] = (name, ref)
        profile = session.user_pb(now)
        profile.name = session.name
        uid, blob = session.user_id, profile.SerializeToString()
        self.state.out.append(
            AskJoin(name, uid, session.name, session.ip, blob, resuming, verified, settings, password)
        )

    def install(
        self,
        record: RoomRecord,
        seq: int,
        crown: Crown,
        members: Iterable[Member],
        now: int,
        version: int = 0,
        mutes: Iterable[tuple[int, int]] = (),
        history: Iterable[ChatRecord] = (),
    ) -> None:
        """A room's replica from the directory's snapshot (at `seq`), with its mutes (user, until) and its
        recent chat (the room's stream, read after the snapshot): its members here get its state (their
        joins were answered by it), the others become member records."""
        if record.name in self.state.rooms:
            return
        room = Room(RoomConfig.of(record), is_lobby=record.name == LOBBY, seq=seq, version=version)
        self.set_crown(room, crown)
        room.mutes.update(mutes)
        room.history.extend(history)
        self.state.rooms[room.name] = room
        arrived: list[Session] = []
        for member in members:
            session = self._arriving(room, Joined(room.name, member.user_id, member.joined_us, member))
            self._seat(room, session, member.joined_us)
            if not session.node:
                arrived.append(session)
        for session in arrived:
            self.send_state(session, room, now, self._answered(session.user_id, room.name))
        self.state.dirty_rooms.add(room.name)
        log.info("replica room=%r seq=%d members=%d here=%d", room.name, seq, len(room.members), len(arrived))

    def drop(self, name: str) -> None:
        """This node no longer follows `name` (no member here, none asked to join): forget its replica."""
        room = self.state.rooms.get(name)
        if room is not None and all(m.node for m in room.members.values()):
            del self.state.rooms[name]
            self.state.dirty_rooms.add(name)

    def ban_list(self, session: Session, room: Room, ref: int, now: int) -> None:
        bans = room.record.bans
        ended = tuple(uid for uid, ban in bans.items() if ban.until_us <= now)
        if ended and not self.state.clustered:  # on many nodes the directory's copy is not changed for it
            self.apply(Unbanned(room.name, ended), now)
        entries = [
            pb.BanEntry(
                user_id=ban.user_id, name=ban.name, remaining_s=-(-(ban.until_us - now) // US), kick=ban.kick
            )
            for ban in sorted(bans.values(), key=lambda b: b.until_us)
            if ban.until_us > now
        ]
        self.state.to(session, pb.ServerMessage(ref=ref, ban_list=pb.BanList(bans=entries)))

    def _member_updated(self, room: Room, event: MemberUpdated, now: int) -> None:
        """Many nodes: this node's copy of a member on another node follows the event (a member here is up to
        date already), and only then are the clients here told: one who joins meanwhile gets the member as
        the others were told."""
        member = room.members.get(event.user_id)
        if member is None:
            return
        if member.node:
            fresh = remote_member(
                Member(event.user_id, member.node, member.joined_room_us, event.name, event.profile)
            )
            member.name, member.color, member.status = fresh.name, fresh.color, fresh.status
            member.position, member.instrument = fresh.position, fresh.instrument
            member.uplink_shared_us = fresh.uplink_shared_us
            member.suffix = self.suffix_for(room, member, member.name)
            self.state.dirty_rooms.add(room.name)
        self.state.broadcast(room, pb.ServerMessage(user_updated=pb.UserUpdated(user=member.user_pb(now))))

    def closed(self, room: Room) -> None:
        """Many nodes: an admin closed the room: its members here hear it; the directory moves them to the
        lobby (their Left and Joined events follow), which this node then follows for them."""
        for member in room.members.values():
            if not member.node:
                removed = pb.Removed(reason=pb.REMOVAL_REASON_ROOM_CLOSED, room=room.name)
                self.state.to(member, pb.ServerMessage(removed=removed))
                self.state.pending_joins[member.user_id] = (LOBBY, 0)
        room.record.bans.clear()

    def remember_chat(self, room: Room, record: ChatRecord) -> None:
        """A stored chat line joins the room's recent chat, in id order (the stream's), once: on many nodes
        a replica installed from a snapshot may already hold it."""
        history = room.history
        if not history or record.id > history[-1].id:
            history.append(record)
        elif all(line.id != record.id for line in history) and (
            len(history) < (history.maxlen or 0) or record.id > history[0].id
        ):
            lines = sorted((*history, record), key=lambda line: line.id)
            history.clear()
            history.extend(lines)

    def removed(self, room: Room, event: Banned, now: int) -> None:
        """Many nodes: a member here banned or kicked hears it; the directory moves them to the lobby (its
        Left and Joined events follow), which this node then follows for them."""
        ban = event.ban
        target = room.members.get(ban.user_id)
        if target is None or target.node:
            return
        reason = pb.REMOVAL_REASON_KICKED if ban.kick else pb.REMOVAL_REASON_BANNED
        seconds = max(1, -(-(ban.until_us - now) // US))
        removed = pb.Removed(reason=reason, room=room.name, by_user_id=event.by_user, duration_s=seconds)
        self.state.to(target, pb.ServerMessage(removed=removed))
        self.state.pending_joins[target.user_id] = (LOBBY, 0)

    def _answered(self, user_id: int, name: str) -> int:
        """The ref of `user_id`'s join of `name`, now answered (0: a join nobody here asked for)."""
        pending = self.state.pending_joins.get(user_id)
        if pending is None or pending[0] != name:
            return 0
        del self.state.pending_joins[user_id]
        return pending[1]

    def _arriving(self, room: Room, event: Joined) -> Session:
        """Who `event` seats: the session here, or (many nodes) a record of a member on another node."""
        member = event.member
        if member is None:
            return self.state.by_user[event.user_id]
        session = self.state.by_user.get(event.user_id) if member.node == self.state.options.node else None
        if session is None:
            return remote_member(member)
        if session.room is not None and session.room is not room:
            # Its Left from there, published first, comes on another channel: it is here now.
            before = session.room
            self._left(before, Left(before.name, session.user_id, pb.LEAVE_REASON_LEFT, event.at_us))
        return session

    def _seat(self, room: Room, session: Session, joined_us: int) -> None:
        session.room = room
        session.joined_room_us = joined_us
        session.suffix = self.suffix_for(room, session, session.name)
        room.members[session.user_id] = session
        if not session.node:
            self.state.out.append(RoomEntered(room.name, session.user_id, session.id))
            self.state.recent_rooms.pop(session.user_id, None)

    @staticmethod
    def set_crown(room: Room, crown: Crown) -> bool:
        """Take the crown as the directory says it is; True when that changed it."""
        changed = (room.owner_id, room.away_owner_id, room.crown_claimable_at_us) != crown
        room.owner_id, room.away_owner_id, room.crown_claimable_at_us = crown
        room.record.owner_id = room.owner_id or room.away_owner_id
        return changed

    # -- room events: the only place a room's shared state changes (see events.py) -------------------

    def apply(self, event: RoomEvent, now: int) -> None:
        """Change the room as `event` says and tell its members. `event.room` is live: a join creates the
        room first (create_room), and the last one out deletes it."""
        room = self.state.rooms[event.room]
        if isinstance(event, Joined):
            self._joined(room, event, now)
        elif isinstance(event, Left):
            self._left(room, event)
        elif isinstance(event, SettingsChanged):
            self.set_settings(room.record, event)
            room.version = event.version
            self.state.save_room(room)
            self.state.broadcast(room, pb.ServerMessage(room_updated=room.updated_pb()), event.by_user)
            self.state.dirty_rooms.add(room.name)
            by = self.state.by_user.get(event.by_user)
            if self.state.clustered and by is not None:  # the owner's confirmation
                ref = self.state.pending_settings.pop(by.user_id, 0)
                self.state.to(by, pb.ServerMessage(ref=ref, room_updated=room.updated_pb()))
        elif isinstance(event, PasswordHashed):
            if room.record.password_hash == event.pending:
                room.record.password_hash = event.password_hash
                self.state.save_room(room)
        elif isinstance(event, Crowned):
            room.owner_id, room.away_owner_id, room.crown_claimable_at_us = event.user_id, 0, 0
            room.record.owner_id = event.user_id
            self.state.save_room(room)
            self.state.room_updated(room)
        elif isinstance(event, Banned):
            room.record.bans[event.ban.user_id] = event.ban
            self.state.save_room(room)
            if self.state.clustered:
                self.removed(room, event, now)
        elif isinstance(event, MemberUpdated):
            self._member_updated(room, event, now)
        elif isinstance(event, Closed):
            self.closed(room)
        elif isinstance(event, Unbanned):
            for uid in event.user_ids:
                room.record.bans.pop(uid, None)
            self.state.save_room(room)
            by = self.state.by_user.get(event.by_user)
            if self.state.clustered and by is not None and by.room is room:
                self.ban_list(by, room, self.state.pending_unbans.pop(by.user_id, 0), now)
        else:
            if event.until_us:
                room.mutes[event.user_id] = event.until_us
            else:
                room.mutes.pop(event.user_id, None)
            member = room.members.get(event.user_id)
            if member is not None:
                self.state.broadcast(
                    room, pb.ServerMessage(user_updated=pb.UserUpdated(user=member.user_pb(now)))
                )

    def _joined(self, room: Room, event: Joined, now: int) -> None:
        session = self._arriving(room, event)
        self._seat(room, session, event.at_us)
        if event.crown is not None:
            restored = self.set_crown(room, event.crown)
        else:
            restored = room.owner_id == 0 and room.away_owner_id == session.user_id
            if restored:
                room.owner_id, room.away_owner_id, room.crown_claimable_at_us = session.user_id, 0, 0
        joined = pb.ServerMessage(user_joined=pb.UserJoined(user=session.user_pb(now)))
        self.state.broadcast(room, joined, session.user_id)
        if restored:
            self.state.broadcast(room, pb.ServerMessage(room_updated=room.updated_pb()), session.user_id)
        self.state.dirty_rooms.add(room.name)
        log.info(
            "join room=%r user=%d name=%r session=%d node=%s",
            room.name, session.user_id, session.name, session.id, session.node or "here",
        )  # fmt: skip
        if self.state.clustered and not session.node:
            self.send_state(session, room, now, self._answered(session.user_id, room.name))

    def _left(self, room: Room, event: Left) -> None:
        uid, now = event.user_id, event.at_us
        session = room.members.pop(uid, None)
        if session is None:  # many nodes: seen leaving already (see _arriving)
            if event.crown is not None and self.set_crown(room, event.crown):
                self.state.room_updated(room)
            return
        session.room = None
        session.typing_until_us = 0
        self.state.typists.discard(session)
        session.suffix = ""
        if room.mutes.get(uid) == -1:
            del room.mutes[uid]
        if not session.node:
            self.state.out.append(RoomLeft(room.name, uid))
            if not room.is_lobby:
                self.state.recent_rooms.pop(uid, None)  # re-inserted at the end: the map stays oldest first
                self.state.recent_rooms[uid] = (room.name, now)
        reason = pb.LeaveReason.ValueType(event.reason)
        self.state.broadcast(room, pb.ServerMessage(user_left=pb.UserLeft(user_id=uid, reason=reason)))
        if event.crown is not None:
            if self.set_crown(room, event.crown):
                self.state.broadcast(room, pb.ServerMessage(room_updated=room.updated_pb()))
        elif room.owner_id == uid:
            room.owner_id, room.away_owner_id = 0, uid
            room.crown_claimable_at_us = now + int(self.state.limits.crown_grace_s * US)
            self.state.broadcast(room, pb.ServerMessage(room_updated=room.updated_pb()))
        if not room.members and not room.is_lobby and not self.state.clustered:
            del self.state.rooms[room.name]
            room.record.last_used_us = now
            self.state.save_room(room)
        self.state.dirty_rooms.add(room.name)
        why = pb.LeaveReason.Name(reason).removeprefix("LEAVE_REASON_").lower()
        log.info("leave room=%r user=%d session=%d reason=%s", room.name, uid, session.id, why)

    def suffix_for(self, room: Room, session: Session, name: str) -> str:
        """ "#<user id>" when another present member already shows `name` (case-insensitive), else "". By
        user id: a member who moved node is seated over their own record from the other node."""
        folded = name.casefold()
        taken = any(
            m.display_name.casefold() == folded for m in room.members.values() if m.user_id != session.user_id
        )
        return f"#{session.user_id}" if taken else ""

    def state_messages(self, room: Room, now: int, ref: int = 0) -> list[pb.ServerMessage]:
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
        return paging.room_state(head, users, chat, ref, self.state.limits.page_bytes)

    def send_state(self, session: Session, room: Room, now: int, ref: int = 0) -> None:
        """Queue the room's state for `session`, its pages back to back (nothing can come between)."""
        users = (session.user_id,)
        for message in self.state_messages(room, now, ref):
            self.state.out.append(SendTo(users, message.SerializeToString()))

    def leave(self, session: Session, reason: pb.LeaveReason.ValueType, now: int) -> None:
        if self.state.clustered:
            pending = self.state.pending_joins.pop(session.user_id, None)
            rooms = {pending[0]} if pending is not None else set()
            if session.room is not None:
                rooms.add(session.room.name)
            for name in sorted(rooms):
                self.state.out.append(AskLeave(name, session.user_id, reason))
            return
        if session.room is not None:
            self.apply(Left(session.room.name, session.user_id, reason, now), now)

    def to_lobby(self, session: Session, reason: pb.LeaveReason.ValueType, now: int, ref: int = 0) -> None:
        if self.state.clustered:  # the directory leaves the room in the same step
            self.ask_join(session, LOBBY, ref, now)
            return
        self.leave(session, reason, now)
        self.enter(session, self.lobby(), now, ref)

    def crowns_due(self, now: int) -> None:
        for room in list(self.state.rooms.values()):
            if room.owner_id == 0 and 0 < room.crown_claimable_at_us <= now and room.members:
                if not self.state.clustered:
                    self.crown(room, self.heir(room), now)
                elif room.crown_asked_us != room.crown_claimable_at_us:  # once; the directory passes it
                    room.crown_asked_us = room.crown_claimable_at_us
                    self.state.out.append(AskCrownDue(room.name))

    def crown(self, room: Room, session: Session, now: int) -> None:
        self.apply(Crowned(room.name, session.user_id), now)

    def crown_deadline(self) -> int | None:
        due = [
            r.crown_claimable_at_us
            for r in self.state.rooms.values()
            if r.owner_id == 0 and r.crown_claimable_at_us and r.crown_asked_us != r.crown_claimable_at_us
        ]
        return min(due) if due else None

    # -- joining -------------------------------------------------------------------------------------

    def join(
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
            self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return False
        if name == LOBBY:
            if session.room is None or not session.room.is_lobby:
                self.to_lobby(session, pb.LEAVE_REASON_LEFT, now, ref)
            return True
        room = self.state.rooms.get(name)
        if room is not None and room is session.room:
            self.send_state(session, room, now, ref)
            return True
        record = room.record if room is not None else self.state.persisted.get(name)
        if record is not None and not self.may_enter(
            session, record, room, msg.password, ref, now, resuming, verified
        ):
            return False
        if room is None and msg.HasField("settings"):
            try:
                self.check_settings(msg.settings)
            except validate.Invalid as exc:
                self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
                return False
            if msg.settings.password and not self.may_hash(session, ref, now):
                return False
        if self.state.clustered:  # the directory checks again, on the room as every node shares it
            settings, password = None, ""
            if room is None and msg.HasField("settings"):  # used if the join creates the room
                settings = self.settings_after(RoomConfig(name), msg.settings, session.user_id)
            if room is None and msg.password and not verified:  # checked by the shell if it is locked
                if not self.may_hash(session, ref, now):
                    return False
                password = msg.password
            self.ask_join(
                session,
                name,
                ref,
                now,
                resuming=resuming,
                verified=verified,
                settings=settings,
                password=password,
            )
            return True
        if record is None and not self.may_create(session, ref, now):
            return False
        self.leave(session, pb.LEAVE_REASON_LEFT, now)
        if room is None:
            room = self.create_room(name, session, now, msg.settings if msg.HasField("settings") else None)
        self.enter(session, room, now, ref)
        return True

    def may_create(self, session: Session, ref: int, now: int) -> bool:
        """A new room name (never stored, or forgotten) costs its address one token of a small bucket."""
        self.state.arm_sweep(now)
        wait = self.state.room_creations.take(session.scope, now)
        if wait:
            text = "Too many new rooms from your address (joining an existing room still works)"
            self.state.retry_later(session, ref, wait, text)
            return False
        return True

    def may_enter(
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
            self.forget_ended_bans(record, now)
            bans: Iterable[BanRecord] = record.bans.values()
        else:
            bans = record.bans
        ban = self.ban_on(bans, session, now, check_address=not is_owner)
        if ban is not None:
            if ban.kick:
                seconds = max(1, -(-(ban.until_us - now) // US))
                text = f"You were kicked from this room; you may come back in {seconds} s."
            else:
                minutes = max(1, (ban.until_us - now + 59 * US) // (60 * US))
                text = f"You are banned from this room for {minutes} more minute(s); try another room."
            self.state.error(session, ref, pb.ERROR_CODE_BANNED, text)
            return False
        if is_owner or resuming:
            return True
        if room is not None and len(room.members) >= record.user_limit:
            self.state.error(session, ref, pb.ERROR_CODE_ROOM_FULL, "That room is full; try again later.")
            return False
        if not record.password_hash or (verified and verified == record.password_hash):
            return True
        if not password:
            text = "That room needs a password; check it and join again."
            self.state.error(session, ref, pb.ERROR_CODE_WRONG_PASSWORD, text)
            return False
        self.verify_password(session, record, password, ref, now)
        return False

    def ban_on(
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
    def forget_ended_bans(config: RoomConfig, now: int) -> None:
        """Drop a live room's bans that have ended. Not a room event: every copy of the room can tell, from
        the time alone, and the room is stored without them when it is next saved."""
        for uid in [uid for uid, ban in config.bans.items() if ban.until_us <= now]:
            del config.bans[uid]

    # -- passwords: checked and hashed off the loop, throttled --------------------------------------------

    def verify_password(
        self, session: Session, record: RoomConfig | RoomRecord, password: str, ref: int, now: int
    ) -> None:
        name = record.name
        # Both budgets are charged when a check starts and refunded when it succeeds: charging failures
        # only when their verdict lands would let a burst of guesses in flight through together.
        self.state.arm_sweep(now)
        wait = self.state.password_failures.take(name, now)
        if wait:
            self.state.retry_later(session, ref, wait, "Too many wrong passwords for this room lately")
            return
        if not self.may_hash(session, ref, now):
            self.state.password_failures.give_back(name, now)
            return
        self.state.password_jobs += 1
        self.state.out.append(VerifyPassword(session.id, ref, name, password, record.password_hash))

    def may_hash(self, session: Session, ref: int, now: int) -> bool:
        """Take a password attempt from the session's address, if the server has room for another hash."""
        if self.state.password_jobs >= self.state.limits.password_jobs_max:
            self.state.retry_later(session, ref, US, "The server is busy checking passwords")
            return False
        self.state.arm_sweep(now)
        wait = self.state.password_attempts.take(session.scope, now)
        if wait:
            self.state.retry_later(session, ref, wait, "Too many password attempts from your address")
            return False
        return True

    def password_checked(self, job: VerifyPassword, ok: bool, now: int) -> list[Action]:
        """The verdict on a VerifyPassword: finish the join, or count a wrong password."""
        self.state.password_jobs -= 1
        session = self.state.sessions.get(job.session_id)
        if session is None or session.closed:
            return self.state.finish()
        if ok:
            self.state.password_attempts.give_back(session.scope, now)
            self.state.password_failures.give_back(job.room, now)
            self.join(
                session, pb.JoinRoom(name=job.room, password=job.password), job.ref, now, verified=job.stored
            )
        else:
            self.state.counters["wrong_passwords"] += 1
            log.info("wrong password room=%r user=%d ip=%s", job.room, session.user_id, session.ip)
            text = "That password is wrong; check it and join again."
            self.state.error(session, job.ref, pb.ERROR_CODE_WRONG_PASSWORD, text)
        return self.state.finish()

    def password_hashed(self, job: HashPassword, password_hash: str | None, now: int) -> list[Action]:
        """A new password's hash is ready: it replaces the pending marker, unless changed meanwhile.
        None: hashing failed, and the room stays locked by the marker until the owner sets it again."""
        self.state.password_jobs -= 1
        if password_hash is None:
            return self.state.finish()
        room = self.state.rooms.get(job.room)
        pending = pending_hash(job.version)
        if self.state.clustered:  # followed here or not: the directory holds the marker
            self.state.out.append(AskPasswordHashed(job.room, pending, password_hash))
            return self.state.finish()
        if room is not None:
            self.apply(PasswordHashed(room.name, pending, password_hash), now)
            return self.state.finish()
        stored = self.state.persisted.get(job.room)
        if stored is not None and stored.password_hash == pending:
            stored = dataclasses.replace(stored, password_hash=password_hash)
            self.state.persisted[job.room] = stored
            self.state.out.append(Persist(SaveRoom(stored)))
        return self.state.finish()

    # -- settings ------------------------------------------------------------------------------------

    def check_settings(self, change: pb.RoomSettingsChange) -> None:
        if change.HasField("password") and change.password:
            validate.password(change.password)
        if change.HasField("user_limit"):
            validate.user_limit(change.user_limit)

    def settings_after(self, r: RoomConfig, change: pb.RoomSettingsChange, by_user: int) -> SettingsChanged:
        """The room's settings once `change` is made; a new password is hashed off the loop meanwhile, and
        until then a pending marker locks the room."""
        password_hash = r.password_hash
        if change.HasField("password"):
            password_hash = ""
            if change.password:
                self.state.password_version += 1
                self.state.password_jobs += 1
                password_hash = pending_hash(self.state.password_version)
                salt = self.state.options.salt_factory()
                self.state.out.append(
                    HashPassword(r.name, self.state.password_version, change.password, salt)
                )
        return SettingsChanged(
            r.name,
            by_user,
            visible=change.visible if change.HasField("visible") else r.visible,
            password_hash=password_hash,
            user_limit=change.user_limit if change.HasField("user_limit") else r.user_limit,
            chat_enabled=change.chat_enabled if change.HasField("chat_enabled") else r.chat_enabled,
            owner_only_play=(
                change.owner_only_play if change.HasField("owner_only_play") else r.owner_only_play
            ),
        )

    @staticmethod
    def set_settings(r: RoomConfig, event: SettingsChanged) -> None:
        r.visible, r.password_hash, r.user_limit = event.visible, event.password_hash, event.user_limit
        r.chat_enabled, r.owner_only_play = event.chat_enabled, event.owner_only_play

    def owned_room(self, session: Session, ref: int) -> Room | None:
        room = session.room
        if room is None:
            self.state.error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room first.")
            return None
        if room.is_lobby or room.owner_id != session.user_id:
            self.state.error(
                session, ref, pb.ERROR_CODE_NOT_OWNER, "Only the room owner (crown) may do that."
            )
            return None
        return room

    def target(self, session: Session, room: Room, user_id: int, ref: int) -> Session | None:
        if user_id == session.user_id:
            self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "You cannot do that to yourself.")
            return None
        member = room.members.get(user_id)
        if member is not None:
            return member
        self.state.error(session, ref, pb.ERROR_CODE_USER_NOT_FOUND, "That user is not in this room.")
        return None

    def update_settings(self, session: Session, msg: pb.UpdateRoomSettings, ref: int, now: int) -> None:
        room = self.owned_room(session, ref)
        if room is None:
            return
        try:
            self.check_settings(msg.settings)
        except validate.Invalid as exc:
            self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        if msg.settings.password and not self.may_hash(session, ref, now):
            return
        if self.state.clustered:  # answered when the SettingsChanged event comes back
            e = self.settings_after(room.record, msg.settings, session.user_id)
            self.state.pending_settings[session.user_id] = ref
            self.state.out.append(
                AskSettings(
                    room.name, e.by_user, room.version, e.visible, e.password_hash, e.user_limit,
                    e.chat_enabled, e.owner_only_play, ref,
                )
            )  # fmt: skip
            return
        self.apply(self.settings_after(room.record, msg.settings, session.user_id), now)
        self.state.to(session, pb.ServerMessage(ref=ref, room_updated=room.updated_pb()))  # the confirmation

    def give(self, session: Session, msg: pb.GiveOwnership, ref: int, now: int) -> None:
        room = self.owned_room(session, ref)
        target = self.target(session, room, msg.user_id, ref) if room is not None else None
        if room is not None and target is not None:
            if self.state.clustered:
                self.state.out.append(AskCrown(room.name, session.user_id, target.user_id, ref))
            else:
                self.crown(room, target, now)

    def claim(self, session: Session, msg: pb.ClaimCrown, ref: int, now: int) -> None:
        room = session.room
        if room is None or room.is_lobby:
            self.state.error(
                session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room other than the lobby first."
            )
        elif room.owner_id or now < room.crown_claimable_at_us:
            self.state.error(session, ref, pb.ERROR_CODE_NOT_OWNER, self.crown_taken(room, session, now))
        elif self.state.clustered:
            self.state.out.append(AskCrown(room.name, session.user_id, 0, ref))
        else:
            self.crown(room, session, now)

    def crown_taken(self, room: Room, session: Session, now: int) -> str:
        """Why `session` cannot claim the crown now, in one sentence."""
        if room.owner_id == session.user_id:
            return "You already hold the crown."
        if room.owner_id:
            owner = room.owner_session()
            holder = owner.display_name if owner else "Another player"
            return f"{holder} holds the crown; only they can give it away."
        wait_s = -(-(room.crown_claimable_at_us - now) // US)
        heir = self.heir(room)
        return (
            f"The crown waits {wait_s} s more for its owner to come back; "
            f"then it passes to {heir.display_name}, here longest."
        )

    @staticmethod
    def heir(room: Room) -> Session:
        return min(room.members.values(), key=lambda m: m.joined_room_us)

    # -- room list -----------------------------------------------------------------------------------

    def subscribe(self, session: Session, msg: pb.RoomListSubscribe, ref: int, now: int) -> None:
        self.state.flush_room_list()
        self.state.subscribers.add(session.user_id)
        rooms = [summary_pb(self.state.listed[n]) for n in sorted(self.state.listed)]
        for message in paging.room_list(rooms, ref, self.state.limits.page_bytes):
            self.state.to(session, message)

    def unsubscribe(self, session: Session, msg: pb.RoomListUnsubscribe, ref: int, now: int) -> None:
        self.state.subscribers.discard(session.user_id)

    def leave_msg(self, session: Session, msg: pb.LeaveRoom, ref: int, now: int) -> None:
        if session.room is not None and session.room.is_lobby:
            self.send_state(session, session.room, now, ref)
        else:
            self.to_lobby(session, pb.LEAVE_REASON_LEFT, now, ref)


def remote_member(member: Member) -> Session:
    """A member connected to another node, as this node shows them (from their profile, a pb.User)."""
    user = pb.User()
    try:
        user.ParseFromString(member.profile)
    except DecodeError:
        log.warning(
            "member %d on node %s has an unreadable profile; shown by name only", member.user_id, member.node
        )
    position = (user.position.x, user.position.y, user.position.z)
    session = Session(
        id=0, ip="", opened_us=member.joined_us, notes=TokenBucket(0, 0), chat=TokenBucket(0, 0),
        other=TokenBucket(0, 0), pings=TokenBucket(0, 0), user_id=member.user_id, name=member.name,
        color=user.color, status=user.status, position=position, instrument=user.instrument, node=member.node,
    )  # fmt: skip
    session.uplink_shared_us = user.uplink_spread_us
    return session
