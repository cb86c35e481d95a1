"""Chat history in Redis: a capped stream per room, the same from every node.

    streams = ChatStreams(link.redis)
    record = await streams.append("lobby", user_id, name, color, "hi", now_us)   # answer the sender after
    page, more = await streams.history("lobby", before_id=0, after_id=0, limit=50)

A chat id is the protocol's ChatMessage.id: one counter (`pr:chat-ids`) for every room and node, so ids
increase with time across the server as the protocol says. A line is stored as the stream entry `0-{id}`;
one script takes the id and adds the entry, so a room's entries are in id order whichever node wrote them.
The stream keeps exactly the last `cap` lines: trimming exactly costs Redis next to nothing at chat rates
(one entry marked deleted per append), and "the last 1,000" is then the same answer on every node.
`history` pages as pianorhythm.server.storage.Storage.history does, so the core cannot tell them apart.
"""

from __future__ import annotations

from typing import Final, cast

import redis.asyncio as aioredis

from pianorhythm.server.cluster import keys
from pianorhythm.server.core.records import ChatRecord

CAP: Final = 1000

# KEYS: the room's stream, the chat id counter. ARGV: cap, user id, name, colour, content, server time (µs).
_APPEND: Final = """
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], '0-' .. id,
           'u', ARGV[2], 'n', ARGV[3], 'c', ARGV[4], 'm', ARGV[5], 't', ARGV[6])
return id
"""

# KEYS: the room's stream. ARGV: cap, chat id, user id, name, colour, content, server time (µs).
# 1 when stored; 0 when the stream already holds a line with a higher id (nothing stored).
_APPEND_AT: Final = """
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top and tonumber(string.match(top[1], '-(%d+)$')) >= tonumber(ARGV[2]) then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], '0-' .. ARGV[2],
           'u', ARGV[3], 'n', ARGV[4], 'c', ARGV[5], 'm', ARGV[6], 't', ARGV[7])
return 1
"""

Entry = tuple[bytes, dict[bytes, bytes]]


class OutOfOrder(Exception):
    """A line reached its room's stream after a line with a higher id (reserved later on another node)."""


class ChatStreams:
    def __init__(self, redis: aioredis.Redis, cap: int = CAP) -> None:
        self.redis = redis
        self.cap = cap
        self._append = redis.register_script(_APPEND)
        self._append_at = redis.register_script(_APPEND_AT)

    async def append(
        self, room: str, user_id: int, user_name: str, user_color: str, content: str, server_time_us: int
    ) -> ChatRecord:
        """Store a line; returns once Redis has it (with its chat id). Raises redis errors: not stored."""
        chat_id = await self._append(
            keys=[keys.chat(room), keys.CHAT_IDS],
            args=[self.cap, user_id, user_name, user_color, content, server_time_us],
        )
        return ChatRecord(int(chat_id), room, user_id, user_name, user_color, content, server_time_us)

    async def reserve_ids(self, count: int) -> int:
        """The first of `count` chat ids no other call gets (for lines numbered before they are stored)."""
        return int(await self.redis.incrby(keys.CHAT_IDS, count)) - count + 1

    async def append_record(self, record: ChatRecord) -> None:
        """Store a line numbered from `reserve_ids`; returns once Redis has it. OutOfOrder when the room's
        stream holds a higher id already (not stored: the stream stays in id order); redis errors."""
        stored = await self._append_at(
            keys=[keys.chat(record.room)],
            args=[
                self.cap, record.id, record.user_id, record.user_name, record.user_color, record.content,
                record.server_time_us,
            ],
        )  # fmt: skip
        if not int(stored):
            raise OutOfOrder(f"chat line {record.id} of room {record.room!r} came after a later one")

    async def history(
        self, room: str, before_id: int, after_id: int, limit: int
    ) -> tuple[list[ChatRecord], bool]:
        """Up to `limit` lines oldest first, and whether more remain: newer than `after_id` when it is set,
        else older than `before_id` (0: the newest)."""
        stream = keys.chat(room)
        if after_id:
            entries = _entries(await self.redis.xrange(stream, f"(0-{after_id}", "+", count=limit + 1))
            return [_record(room, e) for e in entries[:limit]], len(entries) > limit
        newest = f"(0-{before_id}" if before_id else "+"
        entries = _entries(await self.redis.xrevrange(stream, newest, "-", count=limit + 1))
        return [_record(room, e) for e in reversed(entries[:limit])], len(entries) > limit

    async def recent(self, room: str, limit: int) -> list[ChatRecord]:
        records, _ = await self.history(room, 0, 0, limit)
        return records

    async def clear(self, room: str) -> None:
        await self.redis.delete(keys.chat(room))


def _entries(reply: object) -> list[Entry]:
    # redis-py types replies for either decode mode; this client (decode_responses off) gets bytes.
    return cast(list[Entry], reply)


def _record(room: str, entry: Entry) -> ChatRecord:
    entry_id, fields = entry
    return ChatRecord(
        id=int(entry_id.partition(b"-")[2]),
        room=room,
        user_id=int(fields[b"u"]),
        user_name=fields[b"n"].decode(),
        user_color=fields[b"c"].decode(),
        content=fields[b"m"].decode(),
        server_time_us=int(fields[b"t"]),
    )
