"""The relay core's one state object, and the helpers every part uses to answer (pianorhythm.server.core.relay
composes the parts: rooms, moderation, social, admin, upkeep)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pianorhythm.server.core import paging
from pianorhythm.server.core.actions import (
    CLOSE_POLICY,
    Action,
    Broadcast,
    Close,
    Persist,
    Reply,
    SaveRoom,
    SendTo,
)
from pianorhythm.server.core.limits import US, KeyedBuckets, Limits
from pianorhythm.server.core.models import Room, Session, summary_pb
from pianorhythm.server.core.records import ChatRecord, RoomRecord, UserRecord
from pianorhythm.wire import pianorhythm_pb2 as pb

SWEEP_US = 60 * US  # how often throttle buckets that refilled are forgotten

Summary = tuple[str, int, int, bool, str, bool]
"""A room as listed (models.Room.summary): name, members, limit, locked, owner's name, lobby."""


@dataclass(frozen=True, slots=True)
class CoreOptions:
    limits: Limits
    started_us: int
    admin_token: str = ""
    server_version: str = ""
    token_factory: Callable[[], str] = lambda: ""
    salt_factory: Callable[[], bytes] = lambda: b"\x00" * 16
    # This node's id when many nodes share rooms through a directory (Redis): room changes are then asked
    # for (Ask actions) and applied when their events come back. Empty: one node, changes applied at once.
    node: str = ""


class CoreState:
    """Everything the core knows, mutated only by its parts. Actions collect in `out` until an entry point
    of RelayCore returns them (`finish`)."""

    def __init__(self, options: CoreOptions, rooms: Iterable[RoomRecord] = ()) -> None:
        self.options = options
        self.limits = options.limits
        self.sessions: dict[int, Session] = {}
        self.by_user: dict[int, Session] = {}
        self.rooms: dict[str, Room] = {}
        self.persisted: dict[str, RoomRecord] = {r.name: r for r in rooms}
        self.preloaded_chat: dict[str, list[ChatRecord]] = {}
        self.subscribers: set[int] = set()  # user ids
        self.typists: set[Session] = set()  # sessions shown as typing: the timer looks at these only
        self.listed: dict[str, Summary] = {}  # what subscribers last saw
        self.dirty_rooms: set[str] = set()
        self.recent_rooms: dict[int, tuple[str, int]] = {}  # user id -> (room, left at us), oldest first
        self.store_sweep_due_us = 0  # next sweep of stored rooms and users (upkeep.py)
        self.next_session_id = 1
        self.counters: Counter[str] = Counter()
        lim = self.limits
        # Password guessing: attempts by address (ban scope), failures by room, hashes in flight.
        self.password_attempts = KeyedBuckets(lim.password_attempts_per_min / 60, lim.password_attempts_burst)
        self.password_failures = KeyedBuckets(lim.password_failures_per_min / 60, lim.password_failures_burst)
        # Room names never seen before (or forgotten), by address (ban scope).
        self.room_creations = KeyedBuckets(lim.new_rooms_per_min / 60, lim.new_room_burst)
        self.password_jobs = 0
        self.password_version = 0
        self.sweep_due: int | None = None  # when idle throttle buckets are next forgotten
        self.active: tuple[Room | None, Room | None] = (None, None)  # see RelayCore._activity
        self.out: list[Action] = []
        self.clustered = bool(options.node)
        self.pending_joins: dict[int, tuple[str, int]] = {}  # many nodes: user -> (room, ref) asked for
        self.pending_unbans: dict[int, int] = {}  # many nodes: user -> ref of the unban they asked for
        self.pending_settings: dict[int, int] = {}  # many nodes: user -> ref of the settings they changed
        # Many nodes: the room list is the directory's (room_list.py): the seq of its last delta applied here
        # (None while the whole list is being read), and the deltas that came meanwhile.
        self.list_seq: int | None = None
        self.list_waiting: list[tuple[int, tuple[Summary, ...], tuple[str, ...]]] = []

    def every_room(self) -> list[str]:
        """The rooms an admin's broadcast reaches: those here and, on many nodes, every room the directory
        lists (rooms whose members are all on other nodes; a hidden one is not listed, so not reached)."""
        names = list(self.rooms)
        if self.clustered:
            names += sorted(name for name in self.listed if name not in self.rooms)
        return names

    # -- output helpers ------------------------------------------------------------------------------

    def broadcast(self, room: Room, message: pb.ServerMessage, except_user: int = 0) -> None:
        """To the room's members but `except_user`; skipped when that leaves nobody."""
        members = room.members
        if len(members) > (1 if except_user in members else 0):
            self.out.append(Broadcast(room.name, message.SerializeToString(), except_user))

    def to(self, session: Session, message: pb.ServerMessage) -> None:
        payload = message.SerializeToString()
        if session.user_id:
            self.out.append(SendTo((session.user_id,), payload))
        else:
            self.out.append(Reply(session.id, payload))

    def error(self, session: Session, ref: int, code: pb.ErrorCode.ValueType, text: str) -> None:
        self.to(session, pb.ServerMessage(ref=ref, error=pb.Error(code=code, message=text)))

    def arm_sweep(self, now: int) -> None:
        if self.sweep_due is None:
            self.sweep_due = now + SWEEP_US

    def retry_later(self, session: Session, ref: int, wait_us: int, text: str) -> None:
        """RATE_LIMITED with the time to wait, in the sentence and in retry_after_ms."""
        seconds = max(1, -(-wait_us // US))
        error = pb.Error(
            code=pb.ERROR_CODE_RATE_LIMITED,
            message=f"{text}; try again in {seconds} s.",
            retry_after_ms=max(1, -(-wait_us // 1000)),
        )
        self.to(session, pb.ServerMessage(ref=ref, error=error))
        self.counters["rate_limited"] += 1

    def save_room(self, room: Room) -> None:
        # On many nodes the directory's scripts keep the room's record with every change.
        if not room.is_lobby and not self.clustered:
            snapshot = room.record.snapshot()
            self.persisted[room.name] = snapshot
            self.out.append(Persist(SaveRoom(snapshot)))

    def room_updated(self, room: Room) -> None:
        self.broadcast(room, pb.ServerMessage(room_updated=room.updated_pb()))
        self.dirty_rooms.add(room.name)

    # -- room list deltas ----------------------------------------------------------------------------

    def flush_room_list(self) -> None:
        if not self.dirty_rooms:
            return
        dirty, self.dirty_rooms = self.dirty_rooms, set()
        if self.clustered:  # the directory's deltas say what changed, for rooms on every node (room_list.py)
            return
        if not self.subscribers:
            for name in dirty:
                self.refresh_listing(name)
            return
        upserted: list[pb.RoomSummary] = []
        removed: list[str] = []
        for name in sorted(dirty):
            before = self.listed.get(name)
            after = self.refresh_listing(name)
            if after is None and before is not None:
                removed.append(name)
            elif after is not None and after != before:
                upserted.append(summary_pb(after))
        self.tell_subscribers(upserted, removed)

    def tell_subscribers(self, upserted: list[pb.RoomSummary], removed: list[str]) -> None:
        if self.subscribers and (upserted or removed):
            users = tuple(sorted(self.subscribers))
            for delta in paging.room_list_deltas(upserted, removed, self.limits.page_bytes):
                self.out.append(SendTo(users, delta.SerializeToString()))

    def refresh_listing(self, name: str) -> Summary | None:
        room = self.rooms.get(name)
        if room is None or not room.record.visible:
            self.listed.pop(name, None)
            return None
        summary = room.summary()
        self.listed[name] = summary
        return summary

    def census(self) -> dict[str, int]:
        """The size of every map that grows with sessions, users, rooms or addresses: none may leak."""
        return {
            "sessions": len(self.sessions),
            "users_online": len(self.by_user),
            "rooms": len(self.rooms),
            "rooms_stored": len(self.persisted),
            "typing": len(self.typists),
            "recent_rooms": len(self.recent_rooms),
            "preloaded_chats": len(self.preloaded_chat),
            "room_list_subscribers": len(self.subscribers),
            "rooms_listed": len(self.listed),
            "throttled_addresses": len(self.password_attempts.buckets) + len(self.room_creations.buckets),
            "throttled_rooms": len(self.password_failures.buckets),
        }

    def finish(self) -> list[Action]:
        self.flush_room_list()
        out, self.out = self.out, []
        return out

    def limited(self, session: Session, ref: int, now: int, *, quiet: bool = False) -> None:
        if not session.limited_since_us or now - session.limited_last_us > US:
            session.limited_since_us = now
        session.limited_last_us = now
        self.counters["rate_limited"] += 1
        if now - session.limited_since_us >= self.limits.abuse_close_s * US:
            self.out.append(Close(session.id, CLOSE_POLICY, "rate limits exceeded for too long"))
        elif not quiet:
            self.error(session, ref, pb.ERROR_CODE_RATE_LIMITED, "rate limited")

    def user_record(self, session: Session, now: int) -> UserRecord:
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
