"""Rooms in Redis: membership, settings, the crown, bans and the room list, changed in one order per room.

    rooms = Rooms(link.redis, "node-a", crown_grace_s=limits.crown_grace_s)
    outcome = await rooms.join("den", user_id, name="ann", address=ip, now_us=now)
    if isinstance(outcome, Refused): ...           # FULL, BANNED (with the ban), LOCKED, GONE
    await rooms.leave("den", user_id, pb.LEAVE_REASON_LEFT, now)
    await rooms.change_settings("den", owner, version, SettingsChange(user_limit=8), now)   # STALE, NOT_OWNER
    await rooms.give_crown("den", owner, to_user, now); await rooms.claim_crown("den", user_id, now)
    await rooms.crown_due("den", now)              # any node's timer; exactly one passes the crown
    await rooms.ban("den", owner, BanRecord(...), now); await rooms.unban("den", owner, [user_id], now)
    await rooms.close_room("den", now); await rooms.update_member("den", user_id, name, profile, now)
    await rooms.mute("den", owner, user_id, until_us, now)     # -1: until they leave; 0 unmutes
    await rooms.remove_node("node-c", now)         # a dead node's members leave every room, once
    await rooms.remove_dead_nodes(now)             # the same for every reaped node still holding members
    snapshot = await rooms.snapshot("den"); seq, listed = await rooms.room_list()

Every change is one Lua script: it checks, changes the room's keys and PUBLISHes the resulting room event as
an EVENT envelope (envelope.EVENT_LUA) on the room's channel, in one atomic step. So every node, the
originator too, sees a room's events in one order, numbered by the room's `seq` (1, 2, 3, ...): a node that
starts holding a room subscribes to its channel, then reads `snapshot` (which carries the seq it is at) and
applies the events numbered after it. A script's reply carries the same events (`Changed.events`), for the
caller's logs and answers; the channel is what a replica applies. Refusals change nothing and publish nothing.

The rules are pianorhythm.server.core.rooms's, on the room as every node shares it:
- join: a ban on the user id, or on the joining address's ban scope (core.address.ban_scope; not for the
  room's owner), refuses; a full room and a password (unless the caller checked it: `verified_hash` is the
  stored hash the password matched) refuse all but the owner and a resuming member. The first member of a
  room that has a stored owner other than them waits `crown_grace_s` for that owner (who gets the crown
  back on entering in time); else the first member is the owner. A user is in one room at a time: joining
  another leaves the previous one (reason LEFT) in the same script.
- leave: the owner leaving starts the grace; when it is over (`crown_due`) the member here longest gets the
  crown, or anyone may claim it. A non-lobby room's record (settings, stored owner, bans) outlives its
  members; an empty room has no membership.
- settings carry a version: a change made against an older version is refused (STALE).
- the room list: a summary per visible room with members (and the lobby), kept in one hash; every script
  that changes a summary publishes the delta on the `pr:rooms` channel, numbered by a global list seq.
- mutes (as the core's Room.mutes): the owner mutes a member until a time, or until they leave (-1); a
  mute until they leave ends when they do, and all end when the room empties or is closed.
- an empty room's record expires `room_expiry_s` after it emptied unless entered again (Redis forgets it,
  as the core's upkeep forgets unused rooms); a closed room is deleted, its seq kept an hour so a
  re-created room is numbered on.

The times are the caller's (`now_us`, as the core's): nodes keep their clocks in sync (NTP).

Event payloads (after the envelope header; integers big-endian, str = u16 length + UTF-8, blob = u32 length
+ bytes):
    head   format u8 (=1) | kind u8 | seq i64 (the room's) | at_us i64
    JOINED   user i64 | owner i64 | away_owner i64 | claimable_at_us i64 | node str | name str | profile blob
    LEFT     user i64 | reason u8 (pb.LeaveReason) | owner i64 | away_owner i64 | claimable_at_us i64 |
             emptied u8
    SETTINGS by i64 | version i64 | visible u8 | user_limit u32 | chat_enabled u8 | owner_only_play u8 |
             password_hash str
    CROWNED  user i64 | by i64 | cause u8 (1 give, 2 claim, 3 due)
    BANNED   by i64 | user i64 | until_us i64 | kick u8 | name str | address str
    UNBANNED by i64 | count u16 | user i64 * count
    CLOSED   by i64                      (then each member's LEFT, reason KICKED, and lobby JOINED)
    UPDATED  user i64 | name str | profile blob
    HASHED   pending str | password_hash str   (a new password's hash replaces its pending marker)
    MUTED    by i64 | user i64 | until_us i64   (-1: until they leave; 0: unmuted)
and on `pr:rooms`:
    LIST     format u8 | kind u8 (=7) | seq i64 (the list's) | count u16 | entries:
             op u8 (1 upsert, 0 removed) | name str [| members u32 | user_limit u32 | locked u8 | lobby u8 |
             owner_name str]
`profile` is the caller's (e.g. the serialized pb.User): stored with the member and handed to every node.

Redis keys (names in keys.py): pr:room-info:{room} (hash: settings, version, seq, owner, crown, away, claim,
used), pr:room-members:{room} (hash user -> member), pr:room-bans:{room} (hash user -> ban),
pr:room-mutes:{room} (hash user -> until), pr:member:{user} (the room they are in), pr:member-scopes
(hash user -> their address's ban scope while they are in a room: what a ban asked by a node that does not
hold them covers; never in an event's member or a snapshot), pr:node-members:{node}
(hash user -> room, for remove_node), pr:room-nodes (set: the nodes holding members), pr:listed (hash room ->
summary), pr:listed-seq.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, NamedTuple

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from pianorhythm.server.cluster import keys
from pianorhythm.server.cluster.envelope import EVENT_LUA
from pianorhythm.server.core.address import ban_scope
from pianorhythm.server.core.models import LOBBY
from pianorhythm.server.core.records import BanRecord, RoomRecord
from pianorhythm.wire import pianorhythm_pb2 as pb

FORMAT: Final = 1
JOINED, LEFT, SETTINGS, CROWNED, BANNED, UNBANNED, LIST, CLOSED, UPDATED, HASHED, MUTED = range(1, 12)
GIVE, CLAIM, DUE = 1, 2, 3
CROWN_GRACE_S: Final = 15.0  # as Limits.crown_grace_s
CLOSED_SEQ_KEPT_MS: Final = 3_600_000  # a closed room's seq outlives it this long (see `exists` below)

# Why a change was refused (Refused.reason).
FULL: Final = "full"
BANNED_HERE: Final = "banned"
LOCKED: Final = "locked"  # a password, and the caller's verified hash is not the room's (now)
GONE: Final = "gone"  # no such room (and the join may not create it), or the lobby for owner powers
STALE: Final = "stale"  # settings changed since the version the change was made against
NOT_OWNER: Final = "not_owner"
NOT_MEMBER: Final = "not_member"
TAKEN: Final = "taken"  # the crown is held, or still waits for its owner
SELF: Final = "self"  # a ban of oneself

_DEFAULTS: Final = RoomRecord("")
ROOM_EXPIRY_S: Final = 30 * 86_400.0  # as Limits.room_expiry_s
_EXPIRY_MS: Final = "__EXPIRY_MS__"
LIST_CHUNK: Final = 500  # rooms per room list delta at most (a dead node's removal may touch many)


class BadEvent(ValueError):
    """A payload that is not a room event of this format (logged and dropped by whoever reads it)."""


@dataclass(frozen=True, slots=True)
class Crown:
    """As pianorhythm.server.core.models.Room: the holder (0 while unclaimed), the owner who left and gets
    it back on returning in time, and when it may be claimed."""

    owner_id: int = 0
    away_owner_id: int = 0
    claimable_at_us: int = 0


@dataclass(frozen=True, slots=True)
class Joined:
    seq: int
    at_us: int  # the member's joined_room_us
    user_id: int
    node: str
    name: str
    profile: bytes
    crown: Crown


@dataclass(frozen=True, slots=True)
class Left:
    seq: int
    at_us: int
    user_id: int
    reason: int  # pb.LeaveReason
    crown: Crown
    emptied: bool


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    seq: int
    at_us: int
    by_user: int
    version: int
    visible: bool
    user_limit: int
    chat_enabled: bool
    owner_only_play: bool
    password_hash: str


@dataclass(frozen=True, slots=True)
class PasswordHashed:
    """A new password's hash replaces the `pending` marker that locked the room meanwhile."""

    seq: int
    at_us: int
    pending: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class Crowned:
    """`user_id` holds the crown now (a Crown(user_id, 0, 0))."""

    seq: int
    at_us: int
    user_id: int
    by_user: int  # 0 when it passed by itself (DUE)
    cause: int  # GIVE, CLAIM or DUE


@dataclass(frozen=True, slots=True)
class Banned:
    seq: int
    at_us: int
    by_user: int
    ban: BanRecord


@dataclass(frozen=True, slots=True)
class Unbanned:
    seq: int
    at_us: int
    by_user: int
    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Closed:
    """The room is closed for good: its members' Left (reason KICKED) and lobby Joined events follow."""

    seq: int
    at_us: int
    by_user: int


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    seq: int
    at_us: int
    user_id: int
    name: str
    profile: bytes


@dataclass(frozen=True, slots=True)
class Muted:
    """`user_id` may not chat here until `until_us` (-1: until they leave; 0: unmuted)."""

    seq: int
    at_us: int
    by_user: int
    user_id: int
    until_us: int


RoomEvent = (
    Joined
    | Left
    | SettingsChanged
    | PasswordHashed
    | Crowned
    | Banned
    | Unbanned
    | Closed
    | MemberUpdated
    | Muted
)


class RoomSummary(NamedTuple):
    """A room as listed: equal to the core's summary tuple (models.Room.summary)."""

    name: str
    member_count: int
    user_limit: int
    locked: bool
    owner_name: str
    is_lobby: bool


@dataclass(frozen=True, slots=True)
class ListDelta:
    seq: int
    upserted: tuple[RoomSummary, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    node: str
    joined_us: int
    order: int  # the room seq of their join: ties on joined_us go to the earlier
    name: str
    profile: bytes


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """A room as Redis holds it at event `seq`: apply the events numbered after it."""

    record: RoomRecord
    version: int
    seq: int
    crown: Crown
    members: tuple[Member, ...]  # in join order
    mutes: tuple[tuple[int, int], ...] = ()  # (user, until us), by user


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """The settings to change (None: unchanged), as pb.RoomSettingsChange; the password already hashed
    ("" removes it)."""

    visible: bool | None = None
    password_hash: str | None = None
    user_limit: int | None = None
    chat_enabled: bool | None = None
    owner_only_play: bool | None = None


@dataclass(frozen=True, slots=True)
class Changed:
    """Done: the events published, each with its room, in the order published (none: nothing to do)."""

    events: tuple[tuple[str, RoomEvent], ...] = ()


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    ban: BanRecord | None = None  # BANNED_HERE: the ban that keeps them out
    version: int = 0  # STALE: the version now
    crown: Crown | None = None  # TAKEN, NOT_OWNER, NOT_MEMBER from the crown scripts: the crown now


Outcome = Changed | Refused

_FIELDS: Final = {
    "visible": "visible", "password_hash": "pw", "user_limit": "limit", "chat_enabled": "chat",
    "owner_only_play": "oop",
}  # fmt: skip

_PRELUDE: Final = (
    EVENT_LUA
    + f"""
local FMT, JOINED, LEFT, SETTINGS, CROWNED = {FORMAT}, {JOINED}, {LEFT}, {SETTINGS}, {CROWNED}
local BANNED, UNBANNED, LIST = {BANNED}, {UNBANNED}, {LIST}
local CLOSED, UPDATED, HASHED, MUTED = {CLOSED}, {UPDATED}, {HASHED}, {MUTED}
local P_INFO, P_MEMBERS, P_BANS = '{keys.ROOM_INFO}', '{keys.ROOM_MEMBERS}', '{keys.ROOM_BANS}'
local P_MUTES = '{keys.ROOM_MUTES}'
local P_MEMBER, P_NODE_MEMBERS, P_CHANNEL = '{keys.MEMBER}', '{keys.NODE_MEMBERS}', '{keys.ROOM_CHANNEL}'
local SCOPES = '{keys.MEMBER_SCOPES}'
local LISTED, LISTED_SEQ, LIST_CHANNEL = '{keys.LISTED}', '{keys.LISTED_SEQ}', '{keys.ROOM_LIST_CHANNEL}'
local ROOM_NODES, P_NODE, NODES = '{keys.ROOM_NODES}', '{keys.NODE}', '{keys.NODES}'
local LOBBY = '{LOBBY}'
local LEAVE_LEFT, LEAVE_KICKED = {pb.LEAVE_REASON_LEFT}, {pb.LEAVE_REASON_KICKED}
local EXPIRY_MS = {_EXPIRY_MS}  -- Rooms fills in room_expiry_s
local LIST_CHUNK = {LIST_CHUNK}
"""
    + """
local ORIGIN = ARGV[1]  -- every script's first argument: the node calling it
local OUT = {'ok'}
local DIRTY = {}

local function D(n) return string.format('%d', n) end
local function s2(s) return struct.pack('>H', #s) .. s end
local function s4(s) return struct.pack('>I4', #s) .. s end
local function take(blob, pos, fmt)
  local n
  n, pos = struct.unpack(fmt, blob, pos)
  return string.sub(blob, pos, pos + n - 1), pos + n
end
local function num(key, field) return tonumber(redis.call('HGET', key, field) or '0') end
-- A closed room keeps only its seq for a while (a node still holding it must not see seq 1 again).
local function exists(room) return redis.call('HEXISTS', P_INFO .. room, 'version') == 1 end

local function member(blob)
  local joined, order, pos = struct.unpack('>i8i8', blob)
  local node, name, profile
  node, pos = take(blob, pos, '>H')
  name, pos = take(blob, pos, '>H')
  profile = take(blob, pos, '>I4')
  return {joined = joined, order = order, node = node, name = name, profile = profile}
end
local function member_blob(joined, order, node, name, profile)
  return struct.pack('>i8i8', joined, order) .. s2(node) .. s2(name) .. s4(profile)
end

local function crown_state(info) return num(info, 'crown'), num(info, 'away'), num(info, 'claim') end
local function set_crown(info, crown, away, claim)
  redis.call('HSET', info, 'crown', D(crown), 'away', D(away), 'claim', D(claim))
end

local function head(kind, room, now)
  local seq = redis.call('HINCRBY', P_INFO .. room, 'seq', 1)
  return struct.pack('>BBi8i8', FMT, kind, seq, now), seq
end
local function emit(room, body)
  redis.call('PUBLISH', P_CHANNEL .. room, event_envelope(ORIGIN, body))
  OUT[#OUT + 1] = room
  OUT[#OUT + 1] = body
  DIRTY[room] = true
end

local function settings_event(room, by, now)
  local h = redis.call('HMGET', P_INFO .. room, 'version', 'visible', 'limit', 'chat', 'oop', 'pw')
  emit(room, head(SETTINGS, room, now) .. struct.pack('>i8i8BI4BB', by, tonumber(h[1]), tonumber(h[2]),
    tonumber(h[3]), tonumber(h[4]), tonumber(h[5])) .. s2(h[6]))
end

-- A room's keys, created with the settings given as field/value pairs from ARGV[first] on.
local function create(room, by, now, first)
  local info = P_INFO .. room
  redis.call('HSET', info, 'version', '1', 'owner', '0', 'used', D(now))
  for i = first, #ARGV, 2 do redis.call('HSET', info, ARGV[i], ARGV[i + 1]) end
  settings_event(room, by, now)
end

local function leave(room, user, reason, now, grace)
  local info, members = P_INFO .. room, P_MEMBERS .. room
  local blob = redis.call('HGET', members, user)
  if not blob then return end
  local m = member(blob)
  redis.call('HDEL', members, user)
  if redis.call('GET', P_MEMBER .. user) == room then
    redis.call('DEL', P_MEMBER .. user)
    redis.call('HDEL', SCOPES, user)
  end
  if redis.call('HGET', P_NODE_MEMBERS .. m.node, user) == room then
    redis.call('HDEL', P_NODE_MEMBERS .. m.node, user)
  end
  local uid = tonumber(user)
  local crown, away, claim = crown_state(info)
  local emptied = redis.call('HLEN', members) == 0
  if emptied then
    redis.call('DEL', P_MUTES .. room)  -- as on one node, where the emptied room goes with its mutes
  elseif redis.call('HGET', P_MUTES .. room, user) == '-1' then
    redis.call('HDEL', P_MUTES .. room, user)  -- muted until they leave
  end
  if room ~= LOBBY then
    if crown == uid then crown, away, claim = 0, uid, now + grace end
    if emptied then
      crown, away, claim = 0, 0, 0
      redis.call('HSET', info, 'used', D(now))
      redis.call('PEXPIRE', info, EXPIRY_MS)  -- nobody entered it for that long: forgotten, as on one node
      redis.call('PEXPIRE', P_BANS .. room, EXPIRY_MS)
    end
    set_crown(info, crown, away, claim)
  end
  emit(room, head(LEFT, room, now) ..
    struct.pack('>i8Bi8i8i8B', uid, tonumber(reason), crown, away, claim, emptied and 1 or 0))
end

-- A JOINED event's fields after its head.
local function joined_fields(uid, crown, away, claim, node, name, profile)
  return struct.pack('>i8i8i8i8', uid, crown, away, claim) .. s2(node) .. s2(name) .. s4(profile)
end

-- `scope`: the ban scope of the member's address, kept while they are in a room so that an owner's ban
-- made on another node (whose copy of the member has no address) covers it too.
local function enter(room, user, node, name, profile, now, grace, scope)
  local info, members = P_INFO .. room, P_MEMBERS .. room
  local uid = tonumber(user)
  local crown, away, claim = crown_state(info)
  if room ~= LOBBY then
    if redis.call('HLEN', members) == 0 then
      local stored = num(info, 'owner')
      if stored ~= 0 and stored ~= uid then
        crown, away, claim = 0, stored, now + grace
      else
        crown, away, claim = uid, 0, 0
        redis.call('HSET', info, 'owner', user)
      end
      redis.call('HSET', info, 'used', D(now))
      redis.call('PERSIST', info)
      redis.call('PERSIST', P_BANS .. room)
    elseif crown == 0 and away == uid then
      crown, away, claim = uid, 0, 0
    end
    set_crown(info, crown, away, claim)
  end
  local body, seq = head(JOINED, room, now)
  redis.call('HSET', members, user, member_blob(now, seq, node, name, profile))
  redis.call('SET', P_MEMBER .. user, room)
  if scope ~= '' then redis.call('HSET', SCOPES, user, scope) end
  redis.call('HSET', P_NODE_MEMBERS .. node, user, room)
  redis.call('SADD', ROOM_NODES, node)
  emit(room, body .. joined_fields(uid, crown, away, claim, node, name, profile))
end

-- Every member `node` holds leaves their room.
local function remove_members(node, reason, now, grace)
  local held = redis.call('HGETALL', P_NODE_MEMBERS .. node)
  for i = 1, #held, 2 do
    local user, room = held[i], held[i + 1]
    local blob = redis.call('HGET', P_MEMBERS .. room, user)
    if blob and member(blob).node == node then leave(room, user, reason, now, grace) end
  end
  redis.call('DEL', P_NODE_MEMBERS .. node)
  redis.call('SREM', ROOM_NODES, node)
end

local function to_lobby(user, node, name, profile, now, grace, scope)
  if not exists(LOBBY) then
    redis.call('HSET', P_INFO .. LOBBY, 'version', '1', 'owner', '0', 'used', D(now), 'visible', '1',
      'pw', '', 'limit', '0', 'chat', '1', 'oop', '0')
    settings_event(LOBBY, 0, now)
  end
  enter(LOBBY, user, node, name, profile, now, grace, scope)
end

local function summary(room)
  local info, members = P_INFO .. room, P_MEMBERS .. room
  if not exists(room) or redis.call('HGET', info, 'visible') == '0' then return false end
  local lobby = room == LOBBY
  local count = redis.call('HLEN', members)
  if count == 0 and not lobby then return false end
  local owner, crown = '', num(info, 'crown')
  if crown ~= 0 then
    local blob = redis.call('HGET', members, D(crown))
    if blob then owner = member(blob).name end
  end
  local locked = (redis.call('HGET', info, 'pw') or '') ~= ''
  return struct.pack('>I4I4BB', count, lobby and 0 or num(info, 'limit'), locked and 1 or 0, lobby and 1 or 0)
    .. s2(owner)
end

-- Publish the list delta of every room this script touched, then the reply.
local function finish()
  local names = {}
  for room in pairs(DIRTY) do names[#names + 1] = room end
  table.sort(names)
  local entries = {}
  for _, room in ipairs(names) do
    local after, before = summary(room), redis.call('HGET', LISTED, room)
    if after and after ~= before then
      redis.call('HSET', LISTED, room, after)
      entries[#entries + 1] = struct.pack('>B', 1) .. s2(room) .. after
    elseif not after and before then
      redis.call('HDEL', LISTED, room)
      entries[#entries + 1] = struct.pack('>B', 0) .. s2(room)
    end
  end
  for first = 1, #entries, LIST_CHUNK do  -- a delta holds at most LIST_CHUNK rooms (a u16 counts them)
    local last = math.min(first + LIST_CHUNK - 1, #entries)
    local seq = redis.call('INCR', LISTED_SEQ)
    redis.call('PUBLISH', LIST_CHANNEL, event_envelope(ORIGIN,
      struct.pack('>BBi8H', FMT, LIST, seq, last - first + 1) .. table.concat(entries, '', first, last)))
  end
  return OUT
end
"""
)

# ARGV: node, room, user, name, profile, ban scope, now, grace, resuming, verified hash, create,
# then the new room's settings as field/value pairs.
_JOIN: Final = (
    _PRELUDE
    + """
local room, user, now, grace = ARGV[2], ARGV[3], tonumber(ARGV[7]), tonumber(ARGV[8])
local uid = tonumber(user)
local info, members = P_INFO .. room, P_MEMBERS .. room
local current = redis.call('GET', P_MEMBER .. user)
if current == room then
  -- Already a member (reconnected, perhaps to another node): held by this node from now on, and every node
  -- is told so (the node that asked waits for this event to answer its player).
  local m = member(redis.call('HGET', members, user))
  redis.call('HDEL', P_NODE_MEMBERS .. m.node, user)
  redis.call('HSET', members, user, member_blob(m.joined, m.order, ORIGIN, ARGV[4], ARGV[5]))
  redis.call('HSET', P_NODE_MEMBERS .. ORIGIN, user, room)
  redis.call('SADD', ROOM_NODES, ORIGIN)
  if ARGV[6] ~= '' then redis.call('HSET', SCOPES, user, ARGV[6]) end
  local crown, away, claim = crown_state(info)
  local body = head(JOINED, room, now)
  emit(room, body .. joined_fields(uid, crown, away, claim, ORIGIN, ARGV[4], ARGV[5]))
  return finish()
end
local found = exists(room)
if room ~= LOBBY then
  if not found and ARGV[11] ~= '1' then return {'no', 'gone'} end
  if found then
    local is_owner = num(info, 'owner') == uid
    local bans = P_BANS .. room
    local all = redis.call('HGETALL', bans)
    for i = 1, #all, 2 do
      local until_us, kick, pos = struct.unpack('>i8B', all[i + 1])
      local name, address
      name, pos = take(all[i + 1], pos, '>H')
      address = take(all[i + 1], pos, '>H')
      if until_us <= now then
        redis.call('HDEL', bans, all[i])
      elseif tonumber(all[i]) == uid or (not is_owner and address ~= '' and address == ARGV[6]) then
        return {'no', 'banned', all[i], all[i + 1]}
      end
    end
    if not is_owner and ARGV[9] ~= '1' then
      if redis.call('HLEN', members) >= num(info, 'limit') then return {'no', 'full'} end
      local pw = redis.call('HGET', info, 'pw') or ''
      if pw ~= '' and pw ~= ARGV[10] then return {'no', 'locked'} end
    end
  end
end
if current then leave(current, user, LEAVE_LEFT, now, grace) end
if room == LOBBY then
  to_lobby(user, ORIGIN, ARGV[4], ARGV[5], now, grace, ARGV[6])
else
  if not found then create(room, uid, now, 12) end
  enter(room, user, ORIGIN, ARGV[4], ARGV[5], now, grace, ARGV[6])
end
return finish()
"""
)

# ARGV: node, room, user, reason, now, grace.
_LEAVE: Final = (
    _PRELUDE
    + """
-- Only the node that holds the member may take them out: a player who moved to another node (a newer
-- connection there) is not taken out by the old node's connection closing.
local blob = redis.call('HGET', P_MEMBERS .. ARGV[2], ARGV[3])
if blob and member(blob).node ~= ORIGIN then return OUT end
leave(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
return finish()
"""
)

# ARGV: node, room, by, expected version, now, then field/value pairs.
_SETTINGS: Final = (
    _PRELUDE
    + """
local room, by, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local info = P_INFO .. room
if room == LOBBY or not exists(room) then return {'no', 'gone'} end
if num(info, 'crown') ~= by then return {'no', 'not_owner'} end
local version = num(info, 'version')
if version ~= tonumber(ARGV[4]) then return {'no', 'stale', version} end
for i = 6, #ARGV, 2 do redis.call('HSET', info, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', info, 'version', D(version + 1))
settings_event(room, by, now)
return finish()
"""
)

# ARGV: node, room, cause (give, claim, due), by, to, now.
_CROWN: Final = (
    _PRELUDE
    + """
local room, cause, by, to, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6])
local info, members = P_INFO .. room, P_MEMBERS .. room
local crown, away, claim = crown_state(info)
local heir
if cause == 1 then
  if room == LOBBY or crown ~= by then return {'no', 'not_owner', crown, away, claim} end
  if to == by or redis.call('HEXISTS', members, D(to)) == 0 then
    return {'no', 'not_member', crown, away, claim}
  end
  heir = to
elseif cause == 2 then
  if room == LOBBY or redis.call('HEXISTS', members, D(by)) == 0 then
    return {'no', 'not_member', crown, away, claim}
  end
  if crown ~= 0 or now < claim then return {'no', 'taken', crown, away, claim} end
  heir = by
else
  if room == LOBBY or crown ~= 0 or claim == 0 or claim > now then return OUT end
  local all, best = redis.call('HGETALL', members), nil
  for i = 1, #all, 2 do
    local m = member(all[i + 1])
    if not best or m.joined < best.joined or (m.joined == best.joined and m.order < best.order) then
      best = m
      heir = tonumber(all[i])
    end
  end
  if not heir then return OUT end
end
set_crown(info, heir, 0, 0)
redis.call('HSET', info, 'owner', D(heir))
emit(room, head(CROWNED, room, now) .. struct.pack('>i8i8B', heir, by, cause))
return finish()
"""
)

# ARGV: node, room, by, user, name, address scope, until, kick, now, grace, the user's leave reason.
_BAN: Final = (
    _PRELUDE
    + """
local room, by, user, now, grace = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[9]), tonumber(ARGV[10])
local info, members = P_INFO .. room, P_MEMBERS .. room
if room == LOBBY or not exists(room) then return {'no', 'gone'} end
if num(info, 'crown') ~= by then return {'no', 'not_owner'} end
if tonumber(user) == by then return {'no', 'self'} end
-- The asking node knows the address of its own connections only: for a user on another node, the scope
-- stored when they joined.
local stored = redis.call('HGET', SCOPES, user) or ''
local scope = ARGV[6] ~= '' and ARGV[6] or stored
local ban = struct.pack('>i8B', tonumber(ARGV[7]), tonumber(ARGV[8])) .. s2(ARGV[5]) .. s2(scope)
redis.call('HSET', P_BANS .. room, user, ban)
emit(room, head(BANNED, room, now) .. struct.pack('>i8i8', by, tonumber(user)) .. ban)
local blob = redis.call('HGET', members, user)
if blob then
  local m = member(blob)
  leave(room, user, ARGV[11], now, grace)
  to_lobby(user, m.node, m.name, m.profile, now, grace, stored)
end
return finish()
"""
)

# ARGV: node, room, by, now, user ids.
_UNBAN: Final = (
    _PRELUDE
    + """
local room, by, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local info = P_INFO .. room
if room == LOBBY or not exists(room) then return {'no', 'gone'} end
if num(info, 'crown') ~= by then return {'no', 'not_owner'} end
local lifted = {}
for i = 5, #ARGV do
  if redis.call('HDEL', P_BANS .. room, ARGV[i]) == 1 then
    lifted[#lifted + 1] = struct.pack('>i8', tonumber(ARGV[i]))
  end
end
if #lifted > 0 then
  emit(room, head(UNBANNED, room, now) .. struct.pack('>i8H', by, #lifted) .. table.concat(lifted))
end
return finish()
"""
)

# ARGV: node, room, by, now, grace.
_CLOSE: Final = (
    _PRELUDE
    + f"""
local CLOSED_SEQ_KEPT_MS = {CLOSED_SEQ_KEPT_MS}
"""
    + """
local room, by, now, grace = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if room == LOBBY or not exists(room) then return {'no', 'gone'} end
emit(room, head(CLOSED, room, now) .. struct.pack('>i8', by))
local all, present = redis.call('HGETALL', P_MEMBERS .. room), {}
for i = 1, #all, 2 do
  local m = member(all[i + 1])
  m.user = all[i]
  present[#present + 1] = m
end
table.sort(present, function(x, y) return x.order < y.order end)
for _, m in ipairs(present) do
  local scope = redis.call('HGET', SCOPES, m.user) or ''
  leave(room, m.user, LEAVE_KICKED, now, grace)
  to_lobby(m.user, m.node, m.name, m.profile, now, grace, scope)
end
local info = P_INFO .. room
local seq = redis.call('HGET', info, 'seq')
redis.call('DEL', info, P_BANS .. room, P_MUTES .. room)
redis.call('HSET', info, 'seq', seq)
redis.call('PEXPIRE', info, CLOSED_SEQ_KEPT_MS)
DIRTY[room] = true
return finish()
"""
)

# ARGV: node, room, pending marker, hash, now.
_HASHED: Final = (
    _PRELUDE
    + """
local room = ARGV[2]
if not exists(room) or redis.call('HGET', P_INFO .. room, 'pw') ~= ARGV[3] then return OUT end
redis.call('HSET', P_INFO .. room, 'pw', ARGV[4])
emit(room, head(HASHED, room, tonumber(ARGV[5])) .. s2(ARGV[3]) .. s2(ARGV[4]))
return finish()
"""
)

# ARGV: node, room, user, name, profile, now.
_UPDATE: Final = (
    _PRELUDE
    + """
local room, user = ARGV[2], ARGV[3]
local blob = redis.call('HGET', P_MEMBERS .. room, user)
if not blob then return OUT end
local m = member(blob)
redis.call('HSET', P_MEMBERS .. room, user, member_blob(m.joined, m.order, m.node, ARGV[4], ARGV[5]))
emit(room, head(UPDATED, room, tonumber(ARGV[6])) .. struct.pack('>i8', tonumber(user)) .. s2(ARGV[4])
  .. s4(ARGV[5]))
return finish()
"""
)

# ARGV: node, room, by, user, until (-1: until they leave, 0: unmute), now.
_MUTE: Final = (
    _PRELUDE
    + """
local room, by, user, until_us = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
if room == LOBBY or not exists(room) then return {'no', 'gone'} end
if num(P_INFO .. room, 'crown') ~= by then return {'no', 'not_owner'} end
if tonumber(user) == by then return {'no', 'self'} end
if redis.call('HEXISTS', P_MEMBERS .. room, user) == 0 then return {'no', 'not_member'} end
if until_us == 0 then
  redis.call('HDEL', P_MUTES .. room, user)
else
  redis.call('HSET', P_MUTES .. room, user, D(until_us))
end
emit(room, head(MUTED, room, tonumber(ARGV[6])) .. struct.pack('>i8i8i8', by, tonumber(user), until_us))
return finish()
"""
)

# ARGV: node, the dead node, reason, now, grace.
_REMOVE_NODE: Final = (
    _PRELUDE
    + """
remove_members(ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return finish()
"""
)

# ARGV: node, reason, now, grace.
_REMOVE_DEAD: Final = (
    _PRELUDE
    + """
for _, node in ipairs(redis.call('SMEMBERS', ROOM_NODES)) do
  if redis.call('EXISTS', P_NODE .. node) == 0 and redis.call('SISMEMBER', NODES, node) == 0 then
    remove_members(node, ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
  end
end
return finish()
"""
)

# KEYS: info, members, bans, mutes. {info pairs, member pairs, ban pairs, mute pairs} or nil (no such room).
_SNAPSHOT: Final = """
if redis.call('HEXISTS', KEYS[1], 'version') == 0 then return false end
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4])}
"""

# KEYS: listed, listed seq. {seq, room/summary pairs}.
_LIST: Final = """
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HGETALL', KEYS[1])}
"""

_HEAD: Final = struct.Struct("!BBqq")
_LIST_HEAD: Final = struct.Struct("!BBqH")


class Rooms:
    def __init__(
        self,
        redis: aioredis.Redis,
        node: str,
        *,
        crown_grace_s: float = CROWN_GRACE_S,
        room_expiry_s: float = ROOM_EXPIRY_S,
    ) -> None:
        self.redis = redis
        self.node = node
        self.grace_us = int(crown_grace_s * 1_000_000)
        expiry_ms = str(int(room_expiry_s * 1000))

        def script(body: str) -> AsyncScript:
            return redis.register_script(body.replace(_EXPIRY_MS, expiry_ms))

        self._join = script(_JOIN)
        self._leave = script(_LEAVE)
        self._settings = script(_SETTINGS)
        self._crown = script(_CROWN)
        self._ban = script(_BAN)
        self._unban = script(_UNBAN)
        self._close = script(_CLOSE)
        self._update = script(_UPDATE)
        self._mute = script(_MUTE)
        self._hashed = script(_HASHED)
        self._remove_node = script(_REMOVE_NODE)
        self._remove_dead = script(_REMOVE_DEAD)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._list = redis.register_script(_LIST)

    async def join(
        self,
        room: str,
        user_id: int,
        *,
        name: str,
        address: str,
        now_us: int,
        profile: bytes = b"",
        resuming: bool = False,
        verified_hash: str = "",
        create: bool = True,
        settings: SettingsChange | None = None,
    ) -> Outcome:
        """Enter `room` from this node (leaving the user's previous room), creating it with `settings`
        when it does not exist and `create`. `address` is the client's address or its ban scope (the scope
        is what a ban on an address covers)."""
        initial = _pairs(_DEFAULTS, settings or SettingsChange())
        reply = await self._join(
            args=[
                self.node, room, user_id, name, profile, ban_scope(address), now_us, self.grace_us,
                int(resuming), verified_hash, int(create), *initial,
            ]
        )  # fmt: skip
        return _outcome(reply)

    async def leave(self, room: str, user_id: int, reason: int, now_us: int) -> Changed:
        """The user leaves `room` (nothing when they are not in it); `reason` a pb.LeaveReason."""
        reply = await self._leave(args=[self.node, room, user_id, reason, now_us, self.grace_us])
        return _changed(reply)

    async def change_settings(
        self, room: str, by_user: int, version: int, change: SettingsChange, now_us: int
    ) -> Outcome:
        """Change settings made against `version` (the SettingsChanged or snapshot version the owner saw)."""
        pairs = _pairs(None, change)
        return _outcome(await self._settings(args=[self.node, room, by_user, version, now_us, *pairs]))

    async def password_hashed(self, room: str, pending: str, password_hash: str, now_us: int) -> Changed:
        """A password set as the `pending` marker (core.crypto.pending_hash) was hashed: the hash replaces
        the marker, unless the password was changed again since (then nothing)."""
        return _changed(await self._hashed(args=[self.node, room, pending, password_hash, now_us]))

    async def give_crown(self, room: str, by_user: int, to_user: int, now_us: int) -> Outcome:
        return _outcome(await self._crown(args=[self.node, room, GIVE, by_user, to_user, now_us]))

    async def claim_crown(self, room: str, user_id: int, now_us: int) -> Outcome:
        return _outcome(await self._crown(args=[self.node, room, CLAIM, user_id, 0, now_us]))

    async def crown_due(self, room: str, now_us: int) -> Changed:
        """Pass an unclaimed crown whose grace is over to the member here longest (else nothing)."""
        return _changed(await self._crown(args=[self.node, room, DUE, 0, 0, now_us]))

    async def ban(self, room: str, by_user: int, ban: BanRecord, now_us: int) -> Outcome:
        """Ban (or, `ban.kick`, kick) `ban.user_id`: a member is moved to the lobby (left reason BANNED or
        KICKED). `ban.address` is the user's address or its scope, when this node knows it; else the scope
        stored when the user joined (from any node) is banned with them."""
        reason = pb.LEAVE_REASON_KICKED if ban.kick else pb.LEAVE_REASON_BANNED
        scope = ban_scope(ban.address) if ban.address else ""
        reply = await self._ban(
            args=[
                self.node, room, by_user, ban.user_id, ban.name, scope, ban.until_us, int(ban.kick), now_us,
                self.grace_us, reason,
            ]
        )  # fmt: skip
        return _outcome(reply)

    async def unban(self, room: str, by_user: int, user_ids: Iterable[int], now_us: int) -> Outcome:
        """Lift the bans of `user_ids`; the Unbanned event (none when no ban matched) says which were."""
        return _outcome(await self._unban(args=[self.node, room, by_user, now_us, *user_ids]))

    async def close_room(self, room: str, now_us: int, by_user: int = 0) -> Outcome:
        """Close a room for good (not the lobby), as the core's admin close: a Closed event, then each member
        leaves (reason KICKED) for the lobby; its record and bans are deleted, so a join that may not create
        it is refused GONE."""
        return _outcome(await self._close(args=[self.node, room, by_user, now_us, self.grace_us]))

    async def update_member(self, room: str, user_id: int, name: str, profile: bytes, now_us: int) -> Changed:
        """A member's shown name and profile changed (status, instrument...): stored for the nodes that read
        the room later, and a MemberUpdated event in the room's order (nothing when they are not in it)."""
        return _changed(await self._update(args=[self.node, room, user_id, name, profile, now_us]))

    async def mute(self, room: str, by_user: int, user_id: int, until_us: int, now_us: int) -> Outcome:
        """The owner mutes a member until `until_us` (-1: until they leave; 0 unmutes): a Muted event, kept
        for the nodes that read the room later (NOT_OWNER, NOT_MEMBER, SELF, GONE refused)."""
        return _outcome(await self._mute(args=[self.node, room, by_user, user_id, until_us, now_us]))

    async def remove_node(
        self, node: str, now_us: int, reason: int = pb.LEAVE_REASON_DISCONNECTED
    ) -> Changed:
        """Every member held by `node` leaves their room, once: for Presence.on_node_dead's node, and for
        this node's own users at a clean stop."""
        return _changed(await self._remove_node(args=[self.node, node, reason, now_us, self.grace_us]))

    async def remove_dead_nodes(self, now_us: int, reason: int = pb.LEAVE_REASON_DISCONNECTED) -> Changed:
        """Every member held by a node that is neither alive (`pr:node:{node}`) nor still listed in
        `pr:nodes` (so not yet reaped by Presence) leaves their room: what a survivor that reaped a node
        does at once, and what any node's beat can repeat, so that members of a node whose reaper died
        too are not left behind. Cheap when there is nothing to do."""
        return _changed(await self._remove_dead(args=[self.node, reason, now_us, self.grace_us]))

    async def snapshot(self, room: str) -> RoomSnapshot | None:
        reply = await self._snapshot(
            keys=[
                prefix + room
                for prefix in (keys.ROOM_INFO, keys.ROOM_MEMBERS, keys.ROOM_BANS, keys.ROOM_MUTES)
            ]
        )
        if reply is None:
            return None
        info_pairs, member_pairs, ban_pairs, mute_pairs = reply
        info = {k.decode(): v for k, v in _pairs_of(info_pairs)}

        def number(field: str) -> int:
            return int(info.get(field, b"0"))

        bans = tuple(
            sorted((_ban(int(u), _Reader(b, 0)) for u, b in _pairs_of(ban_pairs)), key=lambda b: b.until_us)
        )
        record = RoomRecord(
            room, bool(number("visible")), info.get("pw", b"").decode(), number("limit"),
            bool(number("chat")), bool(number("oop")), number("owner"), bans, number("used"),
        )  # fmt: skip
        members = sorted((_member(int(u), b) for u, b in _pairs_of(member_pairs)), key=lambda m: m.order)
        crown = Crown(number("crown"), number("away"), number("claim"))
        mutes = tuple(sorted((int(u), int(until)) for u, until in _pairs_of(mute_pairs)))
        return RoomSnapshot(record, number("version"), number("seq"), crown, tuple(members), mutes)

    async def room_list(self) -> tuple[int, tuple[RoomSummary, ...]]:
        """The list's seq and every listed room, by name: apply the deltas numbered after the seq."""
        seq, pairs = await self._list(keys=[keys.LISTED, keys.LISTED_SEQ])
        rooms = [_summary(name.decode(), _Reader(blob, 0)) for name, blob in _pairs_of(pairs)]
        return int(seq), tuple(sorted(rooms))


# -- decoding ------------------------------------------------------------------------------------------


def decode_event(payload: bytes) -> RoomEvent:
    """A room event from a room channel envelope's payload (or a script's reply)."""
    r = _Reader(payload, 0)
    fmt, kind, seq, at = r.take(_HEAD)
    if fmt != FORMAT:
        raise BadEvent(f"room event format {fmt}, this node reads {FORMAT}")
    if kind == JOINED:
        user, owner, away, claim = r.unpack("!qqqq")
        return Joined(seq, at, user, r.text(), r.text(), r.blob(), Crown(owner, away, claim))
    if kind == LEFT:
        user, reason, owner, away, claim, emptied = r.unpack("!qBqqqB")
        return Left(seq, at, user, reason, Crown(owner, away, claim), bool(emptied))
    if kind == SETTINGS:
        by, version, visible, limit, chat, oop = r.unpack("!qqBIBB")
        return SettingsChanged(seq, at, by, version, bool(visible), limit, bool(chat), bool(oop), r.text())
    if kind == CROWNED:
        user, by, cause = r.unpack("!qqB")
        return Crowned(seq, at, user, by, cause)
    if kind == HASHED:
        return PasswordHashed(seq, at, r.text(), r.text())
    if kind == BANNED:
        by, user = r.unpack("!qq")
        return Banned(seq, at, by, _ban(user, r))
    if kind == UNBANNED:
        by, count = r.unpack("!qH")
        return Unbanned(seq, at, by, r.unpack(f"!{count}q"))
    if kind == CLOSED:
        (by,) = r.unpack("!q")
        return Closed(seq, at, by)
    if kind == UPDATED:
        (user,) = r.unpack("!q")
        return MemberUpdated(seq, at, user, r.text(), r.blob())
    if kind == MUTED:
        by, user, until = r.unpack("!qqq")
        return Muted(seq, at, by, user, until)
    raise BadEvent(f"unknown room event kind {kind}")


def decode_list_delta(payload: bytes) -> ListDelta:
    """A room list delta from a `pr:rooms` envelope's payload."""
    r = _Reader(payload, 0)
    fmt, kind, seq, count = r.take(_LIST_HEAD)
    if fmt != FORMAT or kind != LIST:
        raise BadEvent(f"not a room list delta of format {FORMAT} (format {fmt}, kind {kind})")
    upserted: list[RoomSummary] = []
    removed: list[str] = []
    for _ in range(count):
        (op,) = r.unpack("!B")
        name = r.text()
        if op:
            upserted.append(_summary(name, r))
        else:
            removed.append(name)
    return ListDelta(seq, tuple(upserted), tuple(removed))


class _Reader:
    """Reads a payload front to back; anything short or not UTF-8 is a BadEvent."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, shape: struct.Struct) -> tuple[int, ...]:
        try:
            values = shape.unpack_from(self.data, self.pos)
        except struct.error as e:
            raise BadEvent(f"room event cut short: {e}") from e
        self.pos += shape.size
        return tuple(values)

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return self.take(struct.Struct(fmt))

    def blob(self, fmt: str = "!I") -> bytes:
        (n,) = self.unpack(fmt)
        if self.pos + n > len(self.data):
            raise BadEvent("a string runs past the end of the room event")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def text(self) -> str:
        try:
            return self.blob("!H").decode()
        except UnicodeDecodeError as e:
            raise BadEvent("a string in a room event is not UTF-8") from e


def _ban(user_id: int, r: _Reader) -> BanRecord:
    until, kick = r.unpack("!qB")
    return BanRecord(user_id, r.text(), r.text(), until, bool(kick))


def _summary(name: str, r: _Reader) -> RoomSummary:
    count, limit, locked, lobby = r.unpack("!IIBB")
    return RoomSummary(name, count, limit, bool(locked), r.text(), bool(lobby))


def _member(user_id: int, blob: bytes) -> Member:
    r = _Reader(blob, 0)
    joined, order = r.unpack("!qq")
    return Member(user_id, r.text(), joined, order, r.text(), r.blob())


def _pairs(base: RoomRecord | None, change: SettingsChange) -> list[str | int]:
    """The settings as field/value pairs for a script: all of them over `base`, else only those changed."""
    pairs: list[str | int] = []
    for f in fields(SettingsChange):
        value = getattr(change, f.name)
        if value is None and base is not None:
            value = getattr(base, f.name)
        if value is not None:
            pairs += [_FIELDS[f.name], int(value) if isinstance(value, bool) else value]
    return pairs


def _pairs_of(flat: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


# Script replies: lists of bytes and integers (this client does not decode).
def _changed(reply: Sequence[Any]) -> Changed:
    body = reply[1:]
    return Changed(tuple((room.decode(), decode_event(event)) for room, event in _pairs_of(body)))


def _outcome(reply: Sequence[Any]) -> Outcome:
    if reply[0] == b"ok":
        return _changed(reply)
    reason = reply[1].decode()
    if reason == BANNED_HERE:
        return Refused(reason, ban=_ban(int(reply[2]), _Reader(reply[3], 0)))
    if reason == STALE:
        return Refused(reason, version=int(reply[2]))
    if len(reply) == 5:
        return Refused(reason, crown=Crown(int(reply[2]), int(reply[3]), int(reply[4])))
    return Refused(reason)
