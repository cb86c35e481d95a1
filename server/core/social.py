"""Chat, typing and presence."""

from __future__ import annotations

from pianorhythm.server.core import validate
from pianorhythm.server.core.actions import (
    Action,
    AskUpdateMember,
    Broadcast,
    FetchHistory,
    Persist,
    SaveChat,
    SaveUser,
    SendTo,
)
from pianorhythm.server.core.models import Room, Session, chat_pb
from pianorhythm.server.core.records import ChatRecord
from pianorhythm.server.core.rooms import RoomOps
from pianorhythm.server.core.state import CoreState
from pianorhythm.wire import pianorhythm_pb2 as pb

SYSTEM_USER_ID = 0  # chat from the server itself: ChatMessage.system, shown as a notice, under no name


class SocialOps:
    def __init__(self, state: CoreState, room_ops: RoomOps) -> None:
        self.state = state
        self.room_ops = room_ops

    # -- chat ----------------------------------------------------------------------------------------

    def chat(self, session: Session, msg: pb.ChatSend, ref: int, now: int) -> None:
        room = session.room
        if room is None:
            self.state.error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room first.")
            return
        try:
            content = validate.chat_content(
                msg.content, self.state.limits.max_chat_chars, self.state.limits.max_chat_bytes
            )
        except validate.Invalid as exc:
            self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        if not room.record.chat_enabled and not room.is_lobby and room.owner_id != session.user_id:
            self.state.error(session, ref, pb.ERROR_CODE_CHAT_DISABLED, "Chat is turned off in this room.")
            return
        if room.is_muted(session.user_id, now):
            self.state.error(session, ref, pb.ERROR_CODE_MUTED, "You are muted in this room.")
            return
        rate = self.state.limits.chat_messages / self.state.limits.chat_window_s
        if not session.chat.take(1, now, rate, self.state.limits.chat_messages):
            self.state.limited(session, ref, now)
            return
        record = self.new_chat(room, session.user_id, session.display_name, session.color, content, now)
        message = chat_pb(record)
        then: list[Action] = []
        if session.typing_until_us:
            session.typing_until_us = 0
            self.state.typists.discard(session)
            typing = pb.ServerMessage(typing=pb.Typing(user_id=session.user_id, typing=False))
            then.append(Broadcast(room.name, typing.SerializeToString(), session.user_id))
        line = pb.ServerMessage(chat_message=message).SerializeToString()
        then.append(Broadcast(room.name, line, session.user_id, chat=True))
        then.append(
            SendTo((session.user_id,), pb.ServerMessage(ref=ref, chat_message=message).SerializeToString())
        )
        self.state.out.append(Persist(SaveChat((record,)), tuple(then), session.user_id, ref))
        self.state.counters["chat_messages"] += 1

    def new_chat(self, room: Room, uid: int, name: str, color: str, content: str, now: int) -> ChatRecord:
        record = ChatRecord(self.state.next_chat_id, room.name, uid, name, color, content, now)
        self.state.next_chat_id += 1
        room.history.append(record)
        return record

    def unheld_chat(self, room: str, uid: int, name: str, color: str, content: str, now: int) -> ChatRecord:
        """Many nodes: a line for a room this node has no copy of (an admin's broadcast): numbered as any."""
        record = ChatRecord(self.state.next_chat_id, room, uid, name, color, content, now)
        self.state.next_chat_id += 1
        return record

    def typing_start(self, session: Session, msg: pb.TypingStart, ref: int, now: int) -> None:
        room = session.room
        if room is None or room.is_muted(session.user_id, now):
            return
        was_typing = session.typing_until_us != 0
        session.typing_until_us = now + self.state.limits.typing_timeout_ms * 1000
        self.state.typists.add(session)
        if not was_typing:
            typing = pb.ServerMessage(typing=pb.Typing(user_id=session.user_id, typing=True))
            self.state.broadcast(room, typing, session.user_id)

    def typing_stop(self, session: Session, msg: pb.TypingStop, ref: int, now: int) -> None:
        room = session.room
        if room is None or not session.typing_until_us:
            return
        session.typing_until_us = 0
        self.state.typists.discard(session)
        typing = pb.ServerMessage(typing=pb.Typing(user_id=session.user_id, typing=False))
        self.state.broadcast(room, typing, session.user_id)

    def typing_due(self, now: int) -> None:
        for session in list(self.state.typists):
            if session.typing_until_us <= now:
                self.typing_stop(session, pb.TypingStop(), 0, now)

    def typing_deadline(self) -> int | None:
        return min((s.typing_until_us for s in self.state.typists), default=None)

    def history(self, session: Session, msg: pb.ChatHistoryRequest, ref: int, now: int) -> None:
        if session.room is None:
            self.state.error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room first.")
            return
        limit = min(msg.limit or self.state.limits.chat_history, self.state.limits.chat_history)
        self.state.out.append(
            FetchHistory(session.user_id, ref, session.room.name, msg.before_id, msg.after_id, limit)
        )

    # -- presence ------------------------------------------------------------------------------------

    def user_updated(self, session: Session, now: int) -> None:
        room = session.room
        if room is None:
            return
        user = session.user_pb(now)
        if self.state.clustered:
            # Told when the MemberUpdated event comes back, on every node as its copy of the member changes
            # (RoomOps._member_updated): a fan-out now would overtake the other nodes' copies.
            user.name = session.name
            blob = user.SerializeToString()
            self.state.out.append(AskUpdateMember(room.name, session.user_id, session.name, blob))
            return
        self.state.broadcast(room, pb.ServerMessage(user_updated=pb.UserUpdated(user=user)))

    def status(self, session: Session, msg: pb.UpdateStatus, ref: int, now: int) -> None:
        if msg.status not in (pb.STATUS_ONLINE, pb.STATUS_AWAY, pb.STATUS_BUSY):
            self.state.error(
                session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "Status must be online, away or busy."
            )
            return
        session.status = msg.status
        self.user_updated(session, now)

    def position(self, session: Session, msg: pb.UpdatePosition, ref: int, now: int) -> None:
        try:
            session.position = validate.position(msg.position)
        except validate.Invalid as exc:
            self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        self.user_updated(session, now)

    def instrument(self, session: Session, msg: pb.UpdateInstrument, ref: int, now: int) -> None:
        if msg.program > 127:
            self.state.error(
                session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "An instrument is a GM program 0-127."
            )
            return
        session.instrument = msg.program
        self.user_updated(session, now)

    def profile(self, session: Session, msg: pb.UpdateProfile, ref: int, now: int) -> None:
        try:
            name = validate.user_name(msg.name) if msg.HasField("name") else session.name
            color = validate.color(msg.color) if msg.HasField("color") else session.color
        except validate.Invalid as exc:
            self.state.error(session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, str(exc))
            return
        session.name, session.color = name, color
        if session.room is not None:
            session.suffix = self.room_ops.suffix_for(session.room, session, name)
        self.state.out.append(Persist(SaveUser(self.state.user_record(session, now))))
        self.user_updated(session, now)
        self.state.dirty_rooms.update(
            r.name for r in self.state.rooms.values() if r.owner_id == session.user_id
        )
