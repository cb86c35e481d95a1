"""Chat, typing and presence."""

from __future__ import annotations

from pianorhythm.server.core import validate
from pianorhythm.server.core.actions import (
    Action,
    Broadcast,
    FetchHistory,
    Persist,
    SaveChat,
    SaveUser,
    SendTo,
)
from pianorhythm.server.core.limits import US
from pianorhythm.server.core.models import Room, Session, chat_pb
from pianorhythm.server.core.records import ChatRecord, UserRecord
from pianorhythm.server.core.rooms import RoomOps
from pianorhythm.wire import pianorhythm_pb2 as pb

SYSTEM_USER_ID = 0  # chat from the server itself: ChatMessage.system, shown as a notice, under no name


class SocialOps(RoomOps):
    # -- chat ----------------------------------------------------------------------------------------

    def _chat(self, session: Session, msg: pb.ChatSend, ref: int, now: int) -> None:
        room = session.room
        if room is None:
            self._error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room first.")
            return
        try:
            content = validate.chat_content(
                msg.content, self.limits.max_chat_chars, self.limits.max_chat_bytes
            )
        except validate.Invalid as exc:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        if not room.record.chat_enabled and not room.is_lobby and room.owner_id != session.user_id:
            self._error(session, ref, pb.ERROR_CODE_CHAT_DISABLED, "Chat is turned off in this room.")
            return
        if room.is_muted(session.user_id, now):
            self._error(session, ref, pb.ERROR_CODE_MUTED, "You are muted in this room.")
            return
        rate = self.limits.chat_messages / self.limits.chat_window_s
        if not session.chat.take(1, now, rate, self.limits.chat_messages):
            self._limited(session, ref, now)
            return
        record = self._new_chat(room, session.user_id, session.display_name, session.color, content, now)
        message = chat_pb(record)
        then: list[Action] = []
        if session.typing_until_us:
            session.typing_until_us = 0
            self.typists.discard(session)
            typing = pb.ServerMessage(typing=pb.Typing(user_id=session.user_id, typing=False))
            then.append(Broadcast(room.name, typing.SerializeToString(), session.user_id))
        then.append(
            Broadcast(room.name, pb.ServerMessage(chat_message=message).SerializeToString(), session.user_id)
        )
        then.append(
            SendTo((session.user_id,), pb.ServerMessage(ref=ref, chat_message=message).SerializeToString())
        )
        self._out.append(Persist(SaveChat((record,)), tuple(then), session.id, ref))
        self.counters["chat_messages"] += 1

    def _new_chat(self, room: Room, uid: int, name: str, color: str, content: str, now: int) -> ChatRecord:
        record = ChatRecord(self.next_chat_id, room.name, uid, name, color, content, now)
        self.next_chat_id += 1
        room.history.append(record)
        return record

    def _typing_start(self, session: Session, msg: pb.TypingStart, ref: int, now: int) -> None:
        room = session.room
        if room is None or room.is_muted(session.user_id, now):
            return
        was_typing = session.typing_until_us != 0
        session.typing_until_us = now + self.limits.typing_timeout_ms * 1000
        self.typists.add(session)
        if not was_typing:
            typing = pb.ServerMessage(typing=pb.Typing(user_id=session.user_id, typing=True))
            self._broadcast(room, typing, session.user_id)

    def _typing_stop(self, session: Session, msg: pb.TypingStop, ref: int, now: int) -> None:
        room = session.room
        if room is None or not session.typing_until_us:
            return
        session.typing_until_us = 0
        self.typists.discard(session)
        typing = pb.ServerMessage(typing=pb.Typing(user_id=session.user_id, typing=False))
        self._broadcast(room, typing, session.user_id)

    def _typing_due(self, now: int) -> None:
        for session in list(self.typists):
            if session.typing_until_us <= now:
                self._typing_stop(session, pb.TypingStop(), 0, now)

    def _typing_deadline(self) -> int | None:
        return min((s.typing_until_us for s in self.typists), default=None)

    def _history(self, session: Session, msg: pb.ChatHistoryRequest, ref: int, now: int) -> None:
        if session.room is None:
            self._error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room first.")
            return
        limit = min(msg.limit or self.limits.chat_history, self.limits.chat_history)
        self._out.append(FetchHistory(session.id, ref, session.room.name, msg.before_id, msg.after_id, limit))

    # -- presence ------------------------------------------------------------------------------------

    def _user_updated(self, session: Session, now: int) -> None:
        if session.room is not None:
            update = pb.ServerMessage(user_updated=pb.UserUpdated(user=session.user_pb(now)))
            self._broadcast(session.room, update)

    def _status(self, session: Session, msg: pb.UpdateStatus, ref: int, now: int) -> None:
        if msg.status not in (pb.STATUS_ONLINE, pb.STATUS_AWAY, pb.STATUS_BUSY):
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "Status must be online, away or busy.")
            return
        session.status = msg.status
        self._user_updated(session, now)

    def _position(self, session: Session, msg: pb.UpdatePosition, ref: int, now: int) -> None:
        try:
            session.position = validate.position(msg.position)
        except validate.Invalid as exc:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        self._user_updated(session, now)

    def _instrument(self, session: Session, msg: pb.UpdateInstrument, ref: int, now: int) -> None:
        if msg.program > 127:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "An instrument is a GM program 0-127.")
            return
        session.instrument = msg.program
        self._user_updated(session, now)

    def _profile(self, session: Session, msg: pb.UpdateProfile, ref: int, now: int) -> None:
        try:
            name = validate.user_name(msg.name) if msg.HasField("name") else session.name
            color = validate.color(msg.color) if msg.HasField("color") else session.color
        except validate.Invalid as exc:
            self._error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        session.name, session.color = name, color
        if session.room is not None:
            session.suffix = self._suffix_for(session.room, session, name)
        self._out.append(Persist(SaveUser(self._user_record(session, now))))
        self._user_updated(session, now)
        self.dirty_rooms.update(r.name for r in self.rooms.values() if r.owner_id == session.user_id)

    def _user_record(self, session: Session, now: int) -> UserRecord:
        room = session.room
        last = room.name if room is not None and not room.is_lobby else ""
        return UserRecord(session.user_id, session.name, session.color, last, now)

    def stats(self, now: int) -> dict[str, object]:
        return {
            "uptime_s": round((now - self.options.started_us) / US, 1),
            "connections": len(self.sessions),
            "users": len(self.by_user),
            "rooms": len(self.rooms),
            **self.census(),
            **self.counters,
        }
