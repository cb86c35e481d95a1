"""Chat in Redis: a capped stream per room, the same from every node, and each line on its room's channel.

    streams = ChatStreams(link.redis, "node-a")
    record = await streams.append(line, sender, ref)   # `line` numbered: stored and published
    page, more = await streams.history("lobby", before_id=0, after_id=0, limit=50)

A chat id is the protocol's ChatMessage.id: one counter (`pr:chat-ids`) for every room and node, so ids
increase with time across the server as the protocol says. A line is stored as the stream entry `0-{id}`,
and one script takes the id, adds the entry and publishes the line on the room's channel (an envelope of
kind LINE, see `line_payload`): Redis runs scripts one at a time, so a room's stream and its channel hold
its lines in id order whichever nodes said them at the same instant, and nothing is refused for it. Every
node, the one the line was said on too, sends the room's members the lines in the channel's order
(RelayCore.chat_stored); the sender is answered there, once the line is in the stream.
The stream keeps exactly the last `cap` lines: trimming exactly costs Redis next to nothing at chat rates
(one entry marked deleted per append), and "the last 1,000" is then the same answer on every node.
`history` pages as pianorhythm.server.storage.Storage.history does, so the core cannot tell them apart.
"""

from __future__ import annotations

import dataclasses
from typing import Final, cast

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError

from pianorhythm.server.cluster import keys
from pianorhythm.server.cluster.envelope import LINE, node_id_bytes, pack
from pianorhythm.server.core.models import chat_pb
from pianorhythm.server.core.records import ChatRecord
from pianorhythm.wire import pianorhythm_pb2 as pb

CAP: Final = 1000

# KEYS: the room's stream, the chat id counter. ARGV: cap, user id, name, colour, content, server time (µs),
# the room's channel, the envelope's header, the rest of its payload (after the id).
_APPEND: Final = """
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], '0-' .. id,
           'u', ARGV[2], 'n', ARGV[3], 'c', ARGV[4], 'm', ARGV[5], 't', ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[8] .. id .. ' ' .. ARGV[9])
return id
"""

Entry = tuple[bytes, dict[bytes, bytes]]


class BadLine(ValueError):
    """A LINE envelope's payload that is not `{id} {ref} {ChatMessage}` (logged and dropped)."""


class ChatStreams:
    def __init__(self, redis: aioredis.Redis, node: str, cap: int = CAP) -> None:
        self.redis = redis
        self.cap = cap
        self._origin = node_id_bytes(node)
        self._append = redis.register_script(_APPEND)

    async def append(self, line: ChatRecord, sender: int, ref: int) -> ChatRecord:
        """Store `line` (its id is taken here) and publish it on its room's channel, for `sender` (0: none)
        to be answered with `ref`; returns it numbered once Redis has it. Raises redis errors: not stored."""
        chat_id = await self._append(
            keys=[keys.chat(line.room), keys.CHAT_IDS],
            args=[
                self.cap, line.user_id, line.user_name, line.user_color, line.content, line.server_time_us,
                keys.room_channel(line.room), pack(self._origin, sender, b"", LINE), line_payload(line, ref),
            ],
        )  # fmt: skip
        return dataclasses.replace(line, id=int(chat_id))

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


def line_payload(line: ChatRecord, ref: int) -> bytes:
    """A LINE envelope's payload but its leading `{id} ` (the script puts that in front): the ref the sender
    is answered with, then the line as a ChatMessage without its id."""
    return b"%d " % ref + chat_pb(line).SerializeToString()


def decode_line(room: str, payload: bytes) -> tuple[ChatRecord, int]:
    """The line a LINE envelope carries, and the ref its sender is answered with."""
    parts = payload.split(b" ", 2)
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise BadLine("no id and ref in front of the line")
    try:
        message = pb.ChatMessage.FromString(parts[2])
    except DecodeError as exc:
        raise BadLine(f"not a ChatMessage ({exc})") from exc
    record = ChatRecord(
        int(parts[0]), room, message.user_id, message.user_name, message.user_color, message.content,
        message.server_time_us,
    )  # fmt: skip
    return record, int(parts[1])
