"""What the relay core asks its shell to do. Frozen, plain data: the core never performs I/O itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pianorhythm.server.core.events import SettingsChanged
from pianorhythm.server.core.records import BanRecord, ChatRecord, RoomRecord, UserRecord

# WebSocket close codes the core closes connections with.
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_POLICY: Final = 1008
CLOSE_REPLACED: Final = 4001
CLOSE_SLOW: Final = 4008


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Enqueue one serialized ServerMessage for every member of `room` but `except_user` (0: none left out).

    Addressed to the room, not to sessions: the shell resolves it against the room's members on this node
    at the moment it carries the action out (on many nodes it also publishes it to the room's channel)."""

    room: str
    payload: bytes
    except_user: int = 0
    chat: bool = False  # the room's chat cleared: other nodes clear their copies (RelayCore.chat_cleared)


@dataclass(frozen=True, slots=True)
class SendTo:
    """Enqueue one serialized ServerMessage for each of `users` (the same bytes for all of them)."""

    users: tuple[int, ...]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to a connection that has no user yet (errors before Hello)."""

    session_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class UserOnline:
    """From here on, messages to `user_id` go to `session_id` (after Hello)."""

    user_id: int
    session_id: int


@dataclass(frozen=True, slots=True)
class UserOffline:
    """`user_id` no longer has a connection here (its session left or was replaced)."""

    user_id: int
    session_id: int


@dataclass(frozen=True, slots=True)
class RoomEntered:
    """`user_id` (connected here as `session_id`) is now a member of `room`: broadcasts to it reach them."""

    room: str
    user_id: int
    session_id: int


@dataclass(frozen=True, slots=True)
class RoomLeft:
    room: str
    user_id: int


@dataclass(frozen=True, slots=True)
class AskJoin:
    """Many nodes: ask the directory to move `user_id` into `room` (leaving their room, in the same step).
    The Joined event comes back on the room's channel to every node, this one too (RelayCore.room_event);
    a refusal is handed to RelayCore.join_refused."""

    room: str
    user_id: int
    name: str
    address: str
    profile: bytes  # the member's serialized pb.User, for the other nodes
    resuming: bool = False
    verified: str = ""  # the stored password hash the join's password matched
    settings: SettingsChanged | None = None  # the room's settings if this join creates it
    # The join's password when this node has no copy of the room to check it against (then the shell
    # checks it against the directory's hash, off the loop, if the room turns out to be locked).
    password: str = ""


@dataclass(frozen=True, slots=True)
class AskLeave:
    """Many nodes: ask the directory to take `user_id` out of `room` (the Left event comes back)."""

    room: str
    user_id: int
    reason: int  # a pb.LeaveReason


@dataclass(frozen=True, slots=True)
class AskCrownDue:
    """Many nodes: the crown of `room` waited long enough; the directory passes it (once, whichever node
    asks) and the Crowned event comes back."""

    room: str


@dataclass(frozen=True, slots=True)
class AskCrown:
    """Many nodes: `by_user` gives the crown of `room` to `to_user`, or claims it (`to_user` 0). A refusal
    is handed to RelayCore.refused with `ref`."""

    room: str
    by_user: int
    to_user: int
    ref: int


@dataclass(frozen=True, slots=True)
class AskBan:
    """Many nodes: `by_user` bans (or kicks: `ban.kick`) from `room`; the directory moves the member to the
    lobby, and the Banned, Left and Joined events come back."""

    room: str
    by_user: int
    ban: BanRecord
    ref: int


@dataclass(frozen=True, slots=True)
class AskUnban:
    room: str
    by_user: int
    user_ids: tuple[int, ...]
    ref: int


@dataclass(frozen=True, slots=True)
class AskSettings:
    """Many nodes: the owner's new settings for `room` (all of them), made against settings `version`."""

    room: str
    by_user: int
    version: int
    visible: bool
    password_hash: str
    user_limit: int
    chat_enabled: bool
    owner_only_play: bool
    ref: int


@dataclass(frozen=True, slots=True)
class AskPasswordHashed:
    """Many nodes: a new password's hash is ready to replace its `pending` marker in `room`."""

    room: str
    pending: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class AskUpdateMember:
    """Many nodes: a member's name or profile changed here; the directory keeps it for the other nodes."""

    room: str
    user_id: int
    name: str
    profile: bytes


@dataclass(frozen=True, slots=True)
class AskMute:
    """Many nodes: `by_user` mutes `user_id` in `room` until `until_us` (-1: until they leave, 0: unmutes);
    the Muted event comes back. A refusal is handed to RelayCore.refused with `ref`."""

    room: str
    by_user: int
    user_id: int
    until_us: int
    ref: int


@dataclass(frozen=True, slots=True)
class AskClose:
    """Many nodes: an admin (`by_user`) closes `room` for good; its members everywhere go to the lobby. The
    outcome is handed to RelayCore.room_closed, which answers `ref`."""

    room: str
    by_user: int
    ref: int


@dataclass(frozen=True, slots=True)
class ReadRoomList:
    """Many nodes: read the directory's whole room list (RelayCore.room_list); its deltas meanwhile wait."""


Ask = (
    AskJoin
    | AskLeave
    | AskCrownDue
    | AskCrown
    | AskBan
    | AskUnban
    | AskSettings
    | AskPasswordHashed
    | AskUpdateMember
    | AskMute
    | AskClose
)


Route = UserOnline | UserOffline | RoomEntered | RoomLeft
"""Who is where, in the order the core decided it: the shell keeps its delivery maps by these."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close a session's connection with a WebSocket close code (after flushing what is queued)."""

    session_id: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SaveUser:
    user: UserRecord
    token_hash: str | None = None  # set when the user is new (or its token changed)


@dataclass(frozen=True, slots=True)
class SaveRoom:
    room: RoomRecord


@dataclass(frozen=True, slots=True)
class DeleteRoom:
    name: str


@dataclass(frozen=True, slots=True)
class ClearChat:
    room: str


@dataclass(frozen=True, slots=True)
class PruneUsers:
    """Delete the users last seen before `before_us`, except those in `keep` (online now)."""

    before_us: int
    keep: frozenset[int] = frozenset()


Store = SaveUser | SaveRoom | DeleteRoom | ClearChat | PruneUsers


@dataclass(frozen=True, slots=True)
class Persist:
    """Run `store` and wait for it to be durable, then carry out `then`.

    If storage fails, `user_id` (0: nobody) gets an INTERNAL error (echoing `ref`) and `then` is dropped.
    """

    store: Store
    then: tuple[Action, ...] = ()
    user_id: int = 0
    ref: int = 0


@dataclass(frozen=True, slots=True)
class SaveChat:
    """Store chat `lines`, each numbered where it is stored (their `id` here is 0), then feed the numbered
    records to `RelayCore.chat_stored(records, sender, ref)`, which acknowledges them to `sender` (0: an
    announcement, nobody) with `ref` and sends them to the room. On many nodes the store puts each line on
    its room's channel in the same step, and every node (this one too) feeds it to chat_stored as it comes.

    If storing fails, `user_id` (the sender, or the admin who announced) gets an INTERNAL error echoing
    `ref`, and nothing is sent."""

    lines: tuple[ChatRecord, ...]
    sender: int
    user_id: int
    ref: int


@dataclass(frozen=True, slots=True)
class FetchHistory:
    """Answer a ChatHistoryRequest from storage (the shell builds the ChatHistoryPage)."""

    user_id: int
    ref: int
    room: str
    before_id: int
    after_id: int
    limit: int


@dataclass(frozen=True, slots=True)
class VerifyPassword:
    """Check `password` against the room's `stored` hash off the event loop (it is slow on purpose), then
    hand the verdict to `RelayCore.password_checked`, which finishes or refuses the join."""

    session_id: int
    ref: int
    room: str
    password: str
    stored: str


@dataclass(frozen=True, slots=True)
class HashPassword:
    """Hash a room's new password off the event loop, then hand it to `RelayCore.password_hashed`.

    Until then the room's stored hash is a pending marker that locks it and matches no password."""

    room: str
    version: int
    password: str
    salt: bytes


@dataclass(frozen=True, slots=True)
class MemoryReport:
    """The admin "memory" command: run a full garbage collection, answer `ref` with the memory in use."""

    user_id: int
    ref: int


Action = (
    Broadcast
    | SendTo
    | Reply
    | Route
    | Ask
    | Close
    | Persist
    | SaveChat
    | FetchHistory
    | VerifyPassword
    | HashPassword
    | MemoryReport
    | ReadRoomList
    | Store
)
