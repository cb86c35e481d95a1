"""The core's live state: sessions and rooms. Mutated only by the core's parts (see relay.py)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pianorhythm.clock import DelaySpread
from pianorhythm.server.core.limits import TokenBucket
from pianorhythm.server.core.records import BanRecord, ChatRecord, RoomRecord
from pianorhythm.wire import pianorhythm_pb2 as pb

LOBBY = "lobby"


@dataclass(slots=True, eq=False)
class Session:
    """One connection. `user_id` is 0 until Hello."""

    id: int
    ip: str
    opened_us: int
    notes: TokenBucket
    chat: TokenBucket
    other: TokenBucket
    pings: TokenBucket
    user_id: int = 0
    name: str = ""
    color: str = ""
    status: int = pb.STATUS_ONLINE
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    instrument: int = 0
    room: Room | None = None
    joined_room_us: int = 0
    typing_until_us: int = 0  # 0 = not typing
    subscribed: bool = False
    bad_frames: deque[int] = field(default_factory=deque)
    limited_since_us: int = 0  # start of the current run of rate-limited messages (0 = none)
    limited_last_us: int = 0
    note_error_us: int = -(10**18)  # last time a note error was sent (one per second at most)
    closed: bool = False
    scope: str = ""  # what a ban on this session's address covers (pianorhythm.server.core.address.ban_scope)
    suffix: str = ""  # "#<user id>" while a present member of the room has the same name
    uplink: DelaySpread = field(default_factory=DelaySpread)  # from this session's pings
    uplink_shared_us: int = 0  # the spread the room was last told (User.uplink_spread_us)
    uplink_floor_shared_us: int = 0  # the floor the room was last told (User.uplink_floor_us, 0: unknown)
    uplink_shared_at_us: int | None = None
    node: str = ""  # many nodes: the node this member is connected to, when not this one (a member record)

    @property
    def display_name(self) -> str:
        return self.name + self.suffix

    def user_pb(self, now_us: int) -> pb.User:
        x, y, z = self.position
        room = self.room
        return pb.User(
            id=self.user_id,
            name=self.display_name,
            color=self.color,
            status=self.status,  # type: ignore[arg-type]
            position=pb.Position(x=x, y=y, z=z),
            instrument=self.instrument,
            muted=room is not None and room.is_muted(self.user_id, now_us),
            joined_room_us=self.joined_room_us,
            uplink_spread_us=self.uplink_shared_us,
            uplink_floor_us=self.uplink_floor_shared_us,
        )


@dataclass(slots=True)
class RoomConfig:
    """A live room's settings and bans (user id -> ban), changed in place; `snapshot()` is what is stored."""

    name: str
    visible: bool = True
    password_hash: str = ""
    user_limit: int = 50
    chat_enabled: bool = True
    owner_only_play: bool = False
    owner_id: int = 0
    bans: dict[int, BanRecord] = field(default_factory=dict)
    last_used_us: int = 0

    @classmethod
    def of(cls, record: RoomRecord) -> RoomConfig:
        r = record
        bans = {ban.user_id: ban for ban in r.bans}
        return cls(
            r.name, r.visible, r.password_hash, r.user_limit, r.chat_enabled, r.owner_only_play, r.owner_id,
            bans, r.last_used_us,
        )  # fmt: skip

    def snapshot(self) -> RoomRecord:
        return RoomRecord(
            self.name, self.visible, self.password_hash, self.user_limit, self.chat_enabled,
            self.owner_only_play, self.owner_id, tuple(self.bans.values()), self.last_used_us,
        )  # fmt: skip


@dataclass(slots=True, eq=False)
class Room:
    record: RoomConfig
    is_lobby: bool = False
    members: dict[int, Session] = field(default_factory=dict)  # user id -> session, in join order
    history: deque[ChatRecord] = field(default_factory=lambda: deque(maxlen=50))
    owner_id: int = 0  # 0 while the crown is unclaimed
    away_owner_id: int = 0  # the owner who left; gets the crown back if they return in time
    crown_claimable_at_us: int = 0
    mutes: dict[int, int] = field(default_factory=dict)  # user id -> end (us); -1 = until they leave
    # Note deliveries this room may still fan out (Limits.room_fanout_*). Stamped at time 0, so its first
    # take refills it to the full burst: a room starts with its whole budget whenever it is created.
    fanout: TokenBucket = field(default_factory=lambda: TokenBucket(0, 0))
    active_until_us: int = 0  # a member played less than Limits.room_active_s ago
    seq: int = 0  # many nodes: the last of the room's events applied here (the directory numbers them)
    version: int = 0  # many nodes: its settings' version, which a change is made against
    crown_asked_us: int = 0  # many nodes: the claimable time the crown was last asked to pass at

    @property
    def name(self) -> str:
        return self.record.name

    def is_muted(self, user_id: int, now_us: int) -> bool:
        until = self.mutes.get(user_id)
        return until is not None and (until < 0 or until > now_us)

    def settings_pb(self) -> pb.RoomSettings:
        r = self.record
        return pb.RoomSettings(
            visible=r.visible,
            locked=bool(r.password_hash),
            user_limit=0 if self.is_lobby else r.user_limit,
            chat_enabled=r.chat_enabled,
            owner_only_play=r.owner_only_play,
        )

    def owner_session(self) -> Session | None:
        return self.members.get(self.owner_id) if self.owner_id else None

    def summary(self) -> tuple[str, int, int, bool, str, bool]:
        owner = self.owner_session()
        return (
            self.name,
            len(self.members),
            0 if self.is_lobby else self.record.user_limit,
            bool(self.record.password_hash),
            owner.display_name if owner else "",
            self.is_lobby,
        )

    def updated_pb(self) -> pb.RoomUpdated:
        return pb.RoomUpdated(
            settings=self.settings_pb(),
            owner_id=self.owner_id,
            crown_claimable_at_us=self.crown_claimable_at_us,
        )


def summary_pb(summary: tuple[str, int, int, bool, str, bool]) -> pb.RoomSummary:
    name, count, limit, locked, owner, lobby = summary
    return pb.RoomSummary(
        name=name, member_count=count, user_limit=limit, locked=locked, owner_name=owner, is_lobby=lobby
    )


def chat_pb(record: ChatRecord) -> pb.ChatMessage:
    return pb.ChatMessage(
        id=record.id,
        user_id=record.user_id,
        user_name=record.user_name,
        user_color=record.user_color,
        content=record.content,
        server_time_us=record.server_time_us,
        system=record.user_id == 0,
    )
