"""Drives RelayCore directly with an injected clock: no event loop, no sockets."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from typing import Any

from pianorhythm.server.core import (
    Broadcast,
    Close,
    CoreOptions,
    FetchHistory,
    Limits,
    Persist,
    RelayCore,
    Reply,
    RoomEntered,
    RoomLeft,
    SendTo,
    UserOffline,
    UserOnline,
)
from pianorhythm.server.core.actions import (
    Action,
    Ask,
    HashPassword,
    ReadRoomList,
    SaveChat,
    VerifyPassword,
)
from pianorhythm.server.core.crypto import check_password, hash_password
from pianorhythm.server.core.records import UserRecord
from pianorhythm.wire import pianorhythm_pb2 as pb

START_US = 1_700_000_000_000_000
SEC = 1_000_000


class Harness:
    """Set `defer_passwords` and password jobs wait in `password_jobs` until `run_password_jobs()` (as the
    shell's worker thread would take its time); otherwise they run at once, with the real hashing.

    `node="a"` makes the core one of many nodes: its room changes collect in `asks`, and the test plays the
    directory (install_room, room_event, join_refused)."""

    def __init__(self, **limits: Any) -> None:
        admin_token = limits.pop("admin_token", "secret")  # "" for a server started without one
        node = limits.pop("node", "")
        self.now = START_US
        self.defer_passwords = False
        self.password_jobs: list[VerifyPassword | HashPassword] = []
        counter = itertools.count(1)
        self.core = RelayCore(
            CoreOptions(
                Limits(**limits),
                started_us=START_US,
                admin_token=admin_token,
                server_version="test",
                token_factory=lambda: f"token-{next(counter)}",
                salt_factory=lambda: b"\x01" * 16,
                node=node,
            )
        )
        self.inbox: dict[int, list[pb.ServerMessage]] = defaultdict(list)
        self.closed: dict[int, tuple[int, str]] = {}
        self.stored: list[Any] = []
        self.history_requests: list[FetchHistory] = []
        self.chat_ids = itertools.count(1)  # storage's chat ids
        self.fail_chat = False  # storage refuses chat (the shell tells the sender: not the core's part)
        self.asks: list[Ask] = []
        self.broadcasts: list[Broadcast] = []  # every Broadcast carried out (many nodes: also published)
        self.list_reads = 0  # ReadRoomList actions (many nodes)
        self.users: dict[str, UserRecord] = {}  # token -> record, as the shell's storage would hold
        self.user_ids = itertools.count(1)  # the directory's user ids
        # The shell's delivery maps, kept by the core's Route actions: user -> session, room -> members.
        self.online: dict[int, int] = {}
        self.members: dict[str, dict[int, int]] = defaultdict(dict)
        self.run(self.core.start(self.now))

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * SEC)

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            assert immutable(action), f"{action!r} holds data the core may still change"
            if isinstance(action, Broadcast):
                self.broadcasts.append(action)
                members = self.members[action.room]
                self.deliver([s for u, s in members.items() if u != action.except_user], action.payload)
            elif isinstance(action, SendTo):
                self.deliver([self.online[u] for u in action.users if u in self.online], action.payload)
            elif isinstance(action, Reply):
                self.deliver([action.session_id], action.payload)
            elif isinstance(action, UserOnline):
                self.online[action.user_id] = action.session_id
            elif isinstance(action, UserOffline):
                if self.online.get(action.user_id) == action.session_id:
                    del self.online[action.user_id]
            elif isinstance(action, RoomEntered):
                self.members[action.room][action.user_id] = action.session_id
            elif isinstance(action, RoomLeft):
                del self.members[action.room][action.user_id]
            elif isinstance(action, Close):
                self.closed[action.session_id] = (action.code, action.reason)
            elif isinstance(action, Persist):
                self.stored.append(action.store)
                self.run(list(action.then))
            elif isinstance(action, SaveChat):
                self.stored.append(action)
                if not self.fail_chat:  # storage numbers each line (on many nodes: its room's channel
                    # brings it back, numbered, to this node as to every other)
                    lines = [dataclasses.replace(line, id=next(self.chat_ids)) for line in action.lines]
                    self.run(self.core.chat_stored(lines, action.sender, action.ref))
            elif isinstance(action, FetchHistory):
                self.history_requests.append(action)
            elif isinstance(action, Ask):
                self.asks.append(action)
            elif isinstance(action, ReadRoomList):
                self.list_reads += 1
            elif isinstance(action, VerifyPassword | HashPassword):
                self.password_jobs.append(action)
                if not self.defer_passwords:
                    self.run_password_jobs()

    def deliver(self, sids: list[int], payload: bytes) -> None:
        for sid in sids:
            message = pb.ServerMessage()
            message.ParseFromString(payload)
            self.inbox[sid].append(message)

    def run_password_jobs(self) -> None:
        while self.password_jobs:
            job = self.password_jobs.pop(0)
            if isinstance(job, VerifyPassword):
                ok = check_password(job.password, job.stored)
                self.run(self.core.password_checked(job, ok, self.now))
            else:
                self.run(self.core.password_hashed(job, hash_password(job.password, job.salt), self.now))

    def open(self, ip: str = "10.0.0.1") -> int:
        return self.core.open_session(ip, self.now).id

    def send(self, sid: int, resumed: UserRecord | None = None, ref: int = 0, **action: Any) -> None:
        """Feed one message; a first Hello that resumes no user gets a new id, as the shell asks for one."""
        session = self.core.state.sessions.get(sid)
        greeting = "hello" in action and session is not None and not session.user_id
        new_user_id = next(self.user_ids) if greeting and resumed is None else 0
        self.run(self.core.handle(sid, pb.ClientMessage(ref=ref, **action), self.now, resumed, new_user_id))

    def connect(self, name: str, token: str = "") -> int:
        sid = self.open()
        resumed = self.users.get(token) if token else None
        self.send(sid, resumed, hello=pb.Hello(name=name, resume_token=token))
        welcome = self.take(sid, "welcome")[0].welcome
        self.users[welcome.resume_token] = UserRecord(welcome.user.id, welcome.user.name, welcome.user.color)
        return sid

    def user_id(self, sid: int) -> int:
        return self.core.state.sessions[sid].user_id

    def take(self, sid: int, kind: str | None = None) -> list[pb.ServerMessage]:
        """Remove and return the messages of `kind` (all if None) queued for `sid`."""
        inbox = self.inbox[sid]
        picked = [m for m in inbox if kind is None or m.WhichOneof("event") == kind]
        self.inbox[sid] = [m for m in inbox if m not in picked]
        return picked

    def kinds(self, sid: int) -> list[str]:
        return [str(m.WhichOneof("event")) for m in self.inbox[sid]]

    def clear(self, *sids: int) -> None:
        for sid in sids:
            self.inbox[sid] = []

    def disconnect(self, sid: int, reason: int = pb.LEAVE_REASON_DISCONNECTED) -> None:
        self.run(self.core.disconnect(sid, reason, self.now))  # type: ignore[arg-type]

    def tick(self) -> None:
        self.run(self.core.tick(self.now))


def immutable(value: object) -> bool:
    """Whether `value` is plain immutable data all the way down: what an action may carry, since the shell
    (or another thread or node) reads it after the core has moved on."""
    if value is None or isinstance(value, int | float | str | bytes):
        return True
    if isinstance(value, tuple | frozenset):
        return all(immutable(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        params = vars(type(value))["__dataclass_params__"]
        return bool(params.frozen) and all(
            immutable(getattr(value, f.name)) for f in dataclasses.fields(value)
        )
    return False


def notes(*events: tuple[int, int, int], base: int = 0) -> pb.NoteBatch:
    """(offset_us, key, velocity) triples -> a NoteBatch."""
    return pb.NoteBatch(
        base_time_us=base,
        events=[pb.NoteEvent(offset_us=o, note=pb.Note(key=k, velocity=v)) for o, k, v in events],
    )
