"""The relay core: a state machine fed (session, decoded message, now) that returns actions.

No I/O, no clock, no randomness of its own: time is passed in (server microseconds) and tokens and salts
come from factories in CoreOptions, so every rule can be tested exactly without an event loop.

RelayCore owns connections, Hello and notes, and composes the other parts over one CoreState (state.py):
RoomOps (rooms.py: join, leave, crown, settings, passwords, the room list), ModerationOps (moderation.py:
kick, ban, mute, close), SocialOps (social.py: chat, typing, presence), AdminOps (admin.py), UpkeepOps
(upkeep.py). A part reaches another only through the references it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from pianorhythm.server.core import validate
from pianorhythm.server.core.actions import (
    CLOSE_PROTOCOL_ERROR,
    CLOSE_REPLACED,
    Action,
    Broadcast,
    Close,
    HashPassword,
    Persist,
    SaveUser,
    UserOffline,
    UserOnline,
    VerifyPassword,
)
from pianorhythm.server.core.address import ban_scope
from pianorhythm.server.core.admin import AdminOps, closed_answer
from pianorhythm.server.core.crypto import hash_token
from pianorhythm.server.core.events import Crown, Member, RoomEvent
from pianorhythm.server.core.limits import US, TokenBucket
from pianorhythm.server.core.models import LOBBY, Room, Session
from pianorhythm.server.core.moderation import ModerationOps
from pianorhythm.server.core.records import ChatRecord, RoomRecord, UserRecord
from pianorhythm.server.core.room_list import RoomListOps
from pianorhythm.server.core.rooms import RoomOps
from pianorhythm.server.core.social import SocialOps
from pianorhythm.server.core.state import CoreOptions, CoreState, Summary
from pianorhythm.server.core.upkeep import UpkeepOps
from pianorhythm.wire import pianorhythm_pb2 as pb

# A member's uplink spread and floor go to the room in presence when either moved by SPREAD_STEP_US: at once
# when the floor moved or their sum grew, a shrunk spread at most once per SPREAD_SHARE_US. A few bytes a
# handful of times while the first pings find the path and the clock, then every few seconds at most.
SPREAD_STEP_US: Final = 1_000
SPREAD_SHARE_US: Final = 2_000_000

PALETTE: Final = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4",
    "#46f0f0", "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff",
)  # fmt: skip

_REFUSALS: Final[dict[str, tuple[pb.ErrorCode.ValueType, str]]] = {
    "full": (pb.ERROR_CODE_ROOM_FULL, "That room is full; try again later."),
    "banned": (pb.ERROR_CODE_BANNED, "You are banned from this room; try another room."),
    "locked": (pb.ERROR_CODE_WRONG_PASSWORD, "That room needs a password; check it and join again."),
    "gone": (pb.ERROR_CODE_INVALID_ARGUMENT, "That room is closed; try another room."),
    "not_owner": (pb.ERROR_CODE_NOT_OWNER, "Only the room owner (crown) may do that."),
    "not_member": (pb.ERROR_CODE_USER_NOT_FOUND, "That user is not in this room."),
    "taken": (pb.ERROR_CODE_NOT_OWNER, "The crown is held, or still waits for its owner."),
    "self": (pb.ERROR_CODE_INVALID_ARGUMENT, "You cannot do that to yourself."),
    "stale": (pb.ERROR_CODE_INVALID_ARGUMENT, "The room's settings changed meanwhile; look and try again."),
    "error": (pb.ERROR_CODE_INTERNAL, "The server could not reach its room directory; try again."),
}

Handler = Callable[[Session, Any, int, int], None]


class RelayCore:
    def __init__(self, options: CoreOptions, rooms: Iterable[RoomRecord] = ()) -> None:
        self.options = options
        self.limits = options.limits
        self.state = state = CoreState(options, rooms)
        self.room_ops = RoomOps(state)
        self.moderation = ModerationOps(state, self.room_ops)
        self.social = SocialOps(state, self.room_ops)
        self.admin = AdminOps(state, self.room_ops, self.moderation, self.social)
        self.upkeep = UpkeepOps(state)
        self.room_list_ops = RoomListOps(state)
        self._handlers: dict[str, Handler] = {
            "join_room": self._join_handler,
            "leave_room": self.room_ops.leave_msg,
            "room_list_subscribe": self.room_ops.subscribe,
            "room_list_unsubscribe": self.room_ops.unsubscribe,
            "update_room_settings": self.room_ops.update_settings,
            "give_ownership": self.room_ops.give,
            "claim_crown": self.room_ops.claim,
            "kick_user": self.moderation.kick,
            "ban_user": self.moderation.ban,
            "unban_user": self.moderation.unban,
            "list_bans": self.moderation.list_bans,
            "mute_user": self.moderation.mute,
            "chat_send": self.social.chat,
            "typing_start": self.social.typing_start,
            "typing_stop": self.social.typing_stop,
            "chat_history_request": self.social.history,
            "update_status": self.social.status,
            "update_position": self.social.position,
            "update_instrument": self.social.instrument,
            "update_profile": self.social.profile,
            "server_command": self.admin.command,
        }

    def _measure_uplink(self, session: Session, ping: pb.Ping, now: int) -> None:
        """Each member's uplink spread and floor (pianorhythm.clock has the maths), told to their room."""
        uplink = session.uplink
        uplink.add(ping.client_send_us, now)
        if len(uplink) < 2:
            return  # one ping says nothing of the spread: both figures go together, from the second
        spread, floor = uplink.spread_us, session.uplink_floor_shared_us
        if ping.HasField("stamp_offset_us") and (lowest := uplink.lowest_us) is not None:
            # At least 1 µs: 0 says "unknown" (a lagging slew can put it just below 0). Bad input costs only
            # the sender: a high figure delays their own notes, up to the listeners' ceiling.
            floor = min(max(1, lowest - ping.stamp_offset_us), 0xFFFF_FFFF)
        # Listeners need at once a moved floor (the member's notes are placed from it) and a grown floor +
        # spread (the most a note's uplink takes); a spread that only shrank can wait.
        floor_moved = abs(floor - session.uplink_floor_shared_us)
        grown = (floor + spread) - (session.uplink_floor_shared_us + session.uplink_shared_us)
        moved = max(abs(spread - session.uplink_shared_us), floor_moved)
        last = session.uplink_shared_at_us
        if moved < SPREAD_STEP_US:
            return
        urgent = max(floor_moved, grown) >= SPREAD_STEP_US
        if not urgent and last is not None and now - last < SPREAD_SHARE_US:
            return
        session.uplink_shared_us, session.uplink_floor_shared_us = spread, floor
        session.uplink_shared_at_us = now
        self.social.user_updated(session, now)

    # -- connections ---------------------------------------------------------------------------------

    def open_session(self, ip: str, now: int) -> Session:
        lim = self.limits
        session = Session(
            id=self.state.next_session_id,
            ip=ip,
            opened_us=now,
            notes=TokenBucket(lim.note_burst, now),
            chat=TokenBucket(lim.chat_messages, now),
            other=TokenBucket(lim.other_burst, now),
            pings=TokenBucket(lim.ping_burst, now),
            scope=ban_scope(ip),
        )
        self.state.next_session_id += 1
        self.state.sessions[session.id] = session
        return session

    def disconnect(self, session_id: int, reason: pb.LeaveReason.ValueType, now: int) -> list[Action]:
        """The connection is gone (closed, timed out, too slow): tell its room. Idempotent."""
        session = self.state.sessions.get(session_id)
        if session is not None:
            self._drop(session, reason, now)
        return self.state.finish()

    def _drop(self, session: Session, reason: pb.LeaveReason.ValueType, now: int) -> None:
        del self.state.sessions[session.id]
        session.closed = True
        if not session.user_id:
            return
        room = session.room
        self.room_ops.leave(session, reason, now)
        if self.state.by_user.get(session.user_id) is session:
            del self.state.by_user[session.user_id]
            self.state.subscribers.discard(session.user_id)
            self.state.out.append(UserOffline(session.user_id, session.id))
            last_room = room.name if room is not None and not room.is_lobby else ""
            record = dataclasses.replace(self.state.user_record(session, now), last_room=last_room)
            self.state.out.append(Persist(SaveUser(record)))

    # -- messages ------------------------------------------------------------------------------------

    def handle(
        self,
        session_id: int,
        msg: pb.ClientMessage,
        now: int,
        resumed: UserRecord | None = None,
        new_user_id: int = 0,
    ) -> list[Action]:
        """One decoded client message. For a Hello, `resumed` is the stored user matching its resume token,
        if any, and `new_user_id` the id the directory gave for the user it creates otherwise."""
        session = self.state.sessions.get(session_id)
        if session is None:
            return []
        which = msg.WhichOneof("action")
        ref = msg.ref
        if not session.user_id:
            if which == "hello":
                self._hello(session, msg.hello, ref, now, resumed, new_user_id)
            else:
                self.state.error(session, ref, pb.ERROR_CODE_HELLO_REQUIRED, "hello required")
        elif which == "note_batch":
            self._notes(session, msg.note_batch, ref, now)
        elif which == "ping":
            if session.pings.take(1, now, self.limits.ping_rate, self.limits.ping_burst):
                pong = pb.Pong(
                    client_send_us=msg.ping.client_send_us, server_receive_us=now, server_send_us=now
                )
                self.state.to(session, pb.ServerMessage(ref=ref, pong=pong))
                self._measure_uplink(session, msg.ping, now)
            else:
                self.state.limited(session, ref, now)
        elif not session.other.take(1, now, self.limits.other_rate, self.limits.other_burst):
            self.state.limited(session, ref, now)
        elif which == "hello":
            self.state.error(
                session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, "This connection already said hello."
            )
        elif which is not None and which in self._handlers:
            self._handlers[which](session, getattr(msg, which), ref, now)
        return self.state.finish()

    def bad_frame(self, session_id: int, code: pb.ErrorCode.ValueType, detail: str, now: int) -> list[Action]:
        """A frame failed to decode: answer it, and close the connection after too many in a row."""
        session = self.state.sessions.get(session_id)
        if session is None:
            return []
        window = int(self.limits.bad_frames_window_s * US)
        frames = session.bad_frames
        while frames and frames[0] <= now - window:
            frames.popleft()
        frames.append(now)
        if len(frames) >= self.limits.bad_frames_max:
            self.state.out.append(Close(session.id, CLOSE_PROTOCOL_ERROR, "too many bad frames"))
        else:
            self.state.error(session, 0, code, f"bad frame: {detail}")
        return self.state.finish()

    def _activity(self, room: Room, now: int) -> None:
        """Remember that `room` is in use: the most recently active room and the latest other one."""
        room.active_until_us = now + int(self.limits.room_active_s * US)
        if self.state.active[0] is not room:
            self.state.active = (room, self.state.active[0])

    def _others_active(self, room: Room, now: int) -> bool:
        """Whether a room other than `room` had a member play within Limits.room_active_s."""
        return any(
            other is not None and other is not room and other.active_until_us > now
            for other in self.state.active
        )

    def _note_error(
        self, session: Session, ref: int, code: pb.ErrorCode.ValueType, text: str, now: int
    ) -> None:
        if now - session.note_error_us >= US:
            session.note_error_us = now
            self.state.error(session, ref, code, text)

    def _notes(self, session: Session, batch: pb.NoteBatch, ref: int, now: int) -> None:
        room = session.room
        if room is None:
            self._note_error(session, ref, pb.ERROR_CODE_NOT_IN_ROOM, "Join a room to play.", now)
            return
        # Only playing makes a room active: the budget guards note fan-out, and every connected client
        # sends clock pings, which would make every room with anyone in it look busy.
        self._activity(room, now)
        owner = room.owner_id == session.user_id
        if room.record.owner_only_play and not owner:
            self._note_error(
                session, ref, pb.ERROR_CODE_OWNER_ONLY_PLAY, "Only the owner may play here.", now
            )
            return
        try:
            validate.note_batch(batch, self.limits.max_events_per_batch)
        except validate.Invalid as exc:
            self._note_error(session, ref, pb.ERROR_CODE_INVALID_NOTES, str(exc), now)
            return
        lim = self.limits
        rate, burst = (
            (lim.owner_note_rate, lim.owner_note_burst) if owner else (lim.note_rate, lim.note_burst)
        )
        count = len(batch.events)
        if not session.notes.take(count, now, rate, burst):
            quiet = now - session.note_error_us < US
            if not quiet:
                session.note_error_us = now
            self.state.limited(session, ref, now, quiet=quiet)
            return
        deliveries = len(room.members) - 1
        if self._others_active(room, now):
            budget_rate = budget_burst = lim.room_fanout_shared_rate
        else:
            budget_rate, budget_burst = lim.room_fanout_rate, lim.room_fanout_burst
        if deliveries and not room.fanout.take(min(deliveries, budget_burst), now, budget_rate, budget_burst):
            # The player kept inside its own quota, the room is what is full: give the notes back and say so
            # (at most once a second, like any note error), but never count it as abuse.
            session.notes.tokens += count
            self.state.counters["room_fanout_limited"] += 1
            self._note_error(
                session,
                ref,
                pb.ERROR_CODE_RATE_LIMITED,
                "This room is busy: send fewer, fuller note batches (see Limits.room_fanout_*).",
                now,
            )
            return
        self.state.counters["note_events"] += count
        if deliveries:
            # Filled in place: ServerMessage(notes=RelayedNotes(...)) would copy the events twice.
            message = pb.ServerMessage()
            relayed = message.notes
            relayed.user_id = session.user_id
            relayed.base_time_us = batch.base_time_us
            relayed.events.extend(batch.events)
            relayed.server_receive_us = now
            payload = message.SerializeToString()
            self.state.out.append(Broadcast(room.name, payload, session.user_id))

    # -- hello ---------------------------------------------------------------------------------------

    def _hello(
        self,
        session: Session,
        hello: pb.Hello,
        ref: int,
        now: int,
        resumed: UserRecord | None,
        new_user_id: int,
    ) -> None:
        token_hash: str | None = None
        if resumed is not None:
            token = hello.resume_token
            name, color, uid = resumed.name, resumed.color, resumed.id
            try:
                validate.user_name(name)
            except validate.Invalid:  # stored before the name was reserved
                name = f"player{uid}"
        else:
            try:
                name = validate.user_name(hello.name)
                color = validate.color(hello.color) if hello.color else ""
            except validate.Invalid as exc:
                self.state.error(
                    session, ref, pb.ERROR_CODE_INVALID_ARGUMENT, f"{exc} Fix it and say hello again."
                )
                return
            if not new_user_id:
                raise ValueError("a Hello that creates a user needs a new_user_id from the directory")
            uid = new_user_id
            color = color or PALETTE[uid % len(PALETTE)]
            token = self.options.token_factory()
            token_hash = hash_token(token)
        target = self._resume_target(resumed, now)
        previous = self.state.by_user.get(uid)
        if previous is not None and previous is not session:
            self._drop(previous, pb.LEAVE_REASON_REPLACED, now)
            self.state.out.append(
                Close(previous.id, CLOSE_REPLACED, "replaced by a newer connection of the same user")
            )
        session.user_id, session.name, session.color = uid, name, color
        self.state.by_user[uid] = session
        self.state.out.append(UserOnline(uid, session.id))
        start = len(self.state.out)
        welcome = pb.Welcome(
            user=session.user_pb(now),
            resume_token=token,
            server_time_us=now,
            limits=self.limits.to_pb(),
            resumed=resumed is not None,
            server_version=self.options.server_version,
        )
        self.state.to(session, pb.ServerMessage(ref=ref, welcome=welcome))
        if not target or not self.room_ops.join(session, pb.JoinRoom(name=target), 0, now, resuming=True):
            self.room_ops.enter_lobby(session, now)
        if token_hash is not None:
            then = tuple(self.state.out[start:])
            del self.state.out[start:]
            self.state.out.append(
                Persist(SaveUser(UserRecord(uid, name, color, "", now), token_hash), then, uid, ref)
            )

    def _resume_target(self, resumed: UserRecord | None, now: int) -> str:
        """The room a resuming user goes back to: theirs if they left it under 2 minutes ago."""
        if resumed is None:
            return ""
        window = int(self.limits.resume_room_s * US)
        live = self.state.by_user.get(resumed.id)
        if live is not None and live.room is not None:
            return "" if live.room.is_lobby else live.room.name
        recent = self.state.recent_rooms.get(resumed.id)
        if recent is not None:
            return recent[0] if now - recent[1] < window else ""
        if resumed.last_room and now - resumed.last_seen_us < window:
            return resumed.last_room
        return ""

    def resume_room(self, resumed: UserRecord, now: int) -> str:
        """For the shell: which room's chat to preload before feeding this resuming Hello."""
        return self._resume_target(resumed, now)

    def _join_handler(self, session: Session, msg: pb.JoinRoom, ref: int, now: int) -> None:
        self.room_ops.join(session, msg, ref, now)

    # -- storage preloading and timers ---------------------------------------------------------------

    def needs_chat(self, name: str) -> bool:
        """True when joining `name` would create the room and its chat history is not loaded yet (never on
        many nodes: a replica comes with the room's recent chat, see install_room)."""
        return (
            not self.state.clustered
            and name not in self.state.rooms
            and name not in self.state.preloaded_chat
        )

    def preload_chat(self, name: str, records: list[ChatRecord]) -> None:
        if name not in self.state.rooms:
            if len(self.state.preloaded_chat) > 256:
                self.state.preloaded_chat.pop(next(iter(self.state.preloaded_chat)))
            self.state.preloaded_chat[name] = records

    def start(self, now: int) -> list[Action]:
        if self.state.clustered:  # the lobby is a replica like any room (install_room); the list is shared
            self.room_list_ops.read()
        else:
            self.room_ops.lobby()
        self.upkeep.sweep_stored(now)
        return self.state.finish()

    def tick(self, now: int) -> list[Action]:
        """Run what is due at `now`: typing expiry, crown hand-over, forgetting idle throttles, recent rooms,
        unused rooms and users (upkeep.py)."""
        self.social.typing_due(now)
        self.room_ops.crowns_due(now)
        if self.state.sweep_due is not None and self.state.sweep_due <= now:
            self.state.sweep_due = None
            throttles = (
                self.state.password_attempts,
                self.state.password_failures,
                self.state.room_creations,
            )
            for throttle in throttles:
                throttle.sweep(now)
            if any(throttle.buckets for throttle in throttles):
                self.state.arm_sweep(now)
        self.upkeep.upkeep(now)
        return self.state.finish()

    # -- many nodes: room replicas fed by the directory ----------------------------------------------

    def install_room(
        self,
        record: RoomRecord,
        seq: int,
        crown: Crown,
        members: Iterable[Member],
        now: int,
        version: int = 0,
        mutes: Iterable[tuple[int, int]] = (),
        history: Iterable[ChatRecord] = (),
    ) -> list[Action]:
        """Start following a room from the directory's snapshot at `seq` (its events after it follow);
        `version`: its settings' version; `mutes`: (user, until us) as Muted events left them; `history`:
        the room's recent chat, read from its stream after the snapshot."""
        self.room_ops.install(record, seq, crown, members, now, version, mutes, history)
        return self.state.finish()

    def chat_stored(self, records: Iterable[ChatRecord], sender: int, ref: int) -> list[Action]:
        """Chat lines storage numbered (a SaveChat done): each joins its room's recent chat and goes to the
        room's members here; `sender` (0: nobody, as for an announcement) has theirs as the answer to `ref`.
        On many nodes every node feeds the lines it hears on a room's channel, in the channel's order (the
        stream's): `sender` only where the line was said."""
        self.social.stored(records, sender, ref)
        return self.state.finish()

    def chat_cleared(self, room: str, now: int) -> list[Action]:
        """Another node cleared the room's chat (the admin's clear_chat): so does this node's copy, and its
        members here are sent the room's state without it (to be carried out with no publishing)."""
        followed = self.state.rooms.get(room)
        if followed is not None:
            followed.history.clear()
            for message in self.room_ops.state_messages(followed, now):
                self.state.out.append(Broadcast(room, message.SerializeToString()))
        return self.state.finish()

    def room_list(self, seq: int, rooms: Iterable[Summary], now: int) -> list[Action]:
        """The directory's whole room list, at delta `seq` (see room_list.py), as a ReadRoomList asked."""
        self.room_list_ops.install(seq, rooms)
        return self.state.finish()

    def room_list_delta(
        self, seq: int, upserted: Iterable[Summary], removed: Iterable[str], now: int
    ) -> list[Action]:
        """A room list delta from the directory, numbered `seq` in the list's order."""
        self.room_list_ops.delta(seq, upserted, removed)
        return self.state.finish()

    def reread_room_list(self) -> list[Action]:
        """The link to the directory is back: deltas may have been lost meanwhile, so read the list again."""
        self.room_list_ops.read()
        return self.state.finish()

    def room_closed(self, by_user: int, ref: int, room: str, count: int | None, now: int) -> list[Action]:
        """The directory closed `room` (AskClose), sending `count` members to the lobby (None: it has no such
        room): answer the admin as one node does."""
        session = self.state.by_user.get(by_user)
        if session is not None:
            self.admin.answer(session, ref, closed_answer(room, count))
        return self.state.finish()

    def member_unshared(self, user_id: int, room: str, now: int) -> list[Action]:
        """An AskUpdateMember could not reach the directory: the member's room here is told all the same."""
        session = self.state.by_user.get(user_id)
        if session is not None and session.room is not None and session.room.name == room:
            user = session.user_pb(now)
            self.state.broadcast(session.room, pb.ServerMessage(user_updated=pb.UserUpdated(user=user)))
        return self.state.finish()

    def room_event(self, event: RoomEvent, seq: int, now: int) -> list[Action]:
        """A room event from the directory, in the room's order (numbered `seq`): applied to the replica,
        its members here told. Ignored for a room not followed here, or already in its snapshot."""
        room = self.state.rooms.get(event.room)
        if room is not None and seq > room.seq:
            room.seq = seq
            self.room_ops.apply(event, now)
        return self.state.finish()

    def caught_up(self, name: str, missed: Sequence[RoomEvent], seq: int, now: int) -> list[Action]:
        """A replica that missed events while the link was down, brought to the directory's snapshot at
        `seq`: the difference (`missed`, pianorhythm.server.cluster.core_events.missed_events) applied in
        order, its members here told; its next event on the channel follows the snapshot."""
        room = self.state.rooms.get(name)
        if room is not None and seq >= room.seq:
            for event in missed:
                self.room_ops.apply(event, now)
            room.seq = seq
        return self.state.finish()

    def drop_room(self, name: str) -> list[Action]:
        """The shell stopped following `name` (no member here any more): forget its replica."""
        self.room_ops.drop(name)
        return self.state.finish()

    def follows(self, name: str) -> bool:
        return name in self.state.rooms

    def needs(self, name: str) -> bool:
        """Whether this node must follow room `name`: a member here, or a join of it asked."""
        room = self.state.rooms.get(name)
        if room is not None and any(not m.node for m in room.members.values()):
            return True
        return any(pending[0] == name for pending in self.state.pending_joins.values())

    def join_refused(self, user_id: int, room: str, reason: str, now: int) -> list[Action]:
        """The directory refused an AskJoin (`reason`: full, banned, locked, gone, or error when it could not
        be asked); a user left in no room goes to the lobby."""
        ref = 0
        pending = self.state.pending_joins.get(user_id)
        if pending is not None and pending[0] == room:
            del self.state.pending_joins[user_id]
            ref = pending[1]
        session = self.state.by_user.get(user_id)
        if session is None:
            return self.state.finish()
        code, text = _REFUSALS.get(reason, _REFUSALS["error"])
        self.state.error(session, ref, code, text)
        if session.room is None and room != LOBBY:
            self.room_ops.enter_lobby(session, now)
        return self.state.finish()

    def refused(self, user_id: int, ref: int, reason: str, now: int) -> list[Action]:
        """The directory refused an owner's change (AskCrown, AskBan, AskUnban, AskSettings, AskMute, or an
        AskClose it could not be asked): tell
        `user_id` why."""
        self.state.pending_unbans.pop(user_id, None)
        self.state.pending_settings.pop(user_id, None)
        session = self.state.by_user.get(user_id)
        if session is not None:
            code, text = _REFUSALS.get(reason, _REFUSALS["error"])
            self.state.error(session, ref, code, text)
        return self.state.finish()

    def password_checked(self, job: VerifyPassword, ok: bool, now: int) -> list[Action]:
        """The verdict on a VerifyPassword (see RoomOps.password_checked)."""
        return self.room_ops.password_checked(job, ok, now)

    def password_hashed(self, job: HashPassword, password_hash: str | None, now: int) -> list[Action]:
        """A HashPassword's result (see RoomOps.password_hashed)."""
        return self.room_ops.password_hashed(job, password_hash, now)

    def census(self) -> dict[str, int]:
        return self.state.census()

    def next_deadline(self) -> int | None:
        due = [
            self.social.typing_deadline(),
            self.room_ops.crown_deadline(),
            self.state.sweep_due,
            self.upkeep.upkeep_deadline(),
        ]
        return min(d for d in due if d is not None)
