"""Room events: every change to a room's shared state (members, settings, crown, bans, mutes) as immutable
data.

RoomOps and ModerationOps check a request (permissions, bans, passwords, limits) and turn it into one of
these; `RoomOps.apply` is the only place a room's shared state changes, and where its members hear of it.
On one node an event is applied as soon as it is made. On many nodes the same events are to come from the
directory in one order per room (a Redis script changes the room's hash and publishes the event on the
room's channel, and every node, the one that made it too, applies what it receives in channel order), so
each carries what applying it needs, its time included, and nothing from the node that made it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pianorhythm.server.core.records import BanRecord

Crown = tuple[int, int, int]
"""A room's crown after an event, as the directory decided it: (owner, away owner, claimable at us)."""


@dataclass(frozen=True, slots=True)
class Member:
    """A room member as every node knows them (from the directory, on many nodes): the node they are
    connected to, and their profile, a serialized pb.User."""

    user_id: int
    node: str
    joined_us: int
    name: str
    profile: bytes


@dataclass(frozen=True, slots=True)
class Joined:
    """On many nodes `member` says who joined and from where, and `crown` what the crown is now."""

    room: str
    user_id: int
    at_us: int
    member: Member | None = None
    crown: Crown | None = None


@dataclass(frozen=True, slots=True)
class Left:
    room: str
    user_id: int
    reason: int  # a pb.LeaveReason
    at_us: int
    crown: Crown | None = None  # on many nodes: the crown after the leave


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    """The room's settings after a change by `by_user` (its owner), who is answered apart."""

    room: str
    by_user: int
    visible: bool
    password_hash: str
    user_limit: int
    chat_enabled: bool
    owner_only_play: bool
    version: int = 0  # on many nodes: the directory's count of the room's settings changes


@dataclass(frozen=True, slots=True)
class PasswordHashed:
    """A new password's hash replaces the `pending` marker that locked the room meanwhile (unless the
    password was changed again since). Members see no change: the room was locked already."""

    room: str
    pending: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class Crowned:
    room: str
    user_id: int


@dataclass(frozen=True, slots=True)
class Banned:
    """A ban, or a kick's cool-down (`ban.kick`), from the room."""

    room: str
    ban: BanRecord
    by_user: int = 0  # on many nodes: who banned (the banned member is told, on their node)


@dataclass(frozen=True, slots=True)
class Unbanned:
    room: str
    user_ids: tuple[int, ...]
    by_user: int = 0  # on many nodes: who lifted them (answered with the ban list, on their node)


@dataclass(frozen=True, slots=True)
class Muted:
    """`user_id` may not chat or show typing here until `until_us`; -1: until they leave, 0: unmuted."""

    room: str
    user_id: int
    until_us: int


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    """Many nodes: a member's name or profile (a serialized pb.User) changed on their node; every node, that
    one too, updates its copy of the member and tells its own clients in the room, in the room's order."""

    room: str
    user_id: int
    name: str
    profile: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """Many nodes: an admin closed the room for good; its members' Left (reason KICKED) and lobby Joined
    events follow."""

    room: str


RoomEvent = (
    Joined
    | Left
    | SettingsChanged
    | PasswordHashed
    | Crowned
    | Banned
    | Unbanned
    | Muted
    | MemberUpdated
    | Closed
)
