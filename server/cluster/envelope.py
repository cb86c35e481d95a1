"""What travels on a room's Redis channel: a small fixed binary header, then the payload bytes untouched.

    version u8 | kind u8 | origin length u8 | except_user u64 (big-endian) | origin node id | payload

`DATA` is fan-out (notes, typing, presence frames already encoded for clients): the node that published it
ignores it, since it delivered to its own members before publishing. `CHAT` says an admin cleared the room's
chat (a ServerMessage with the room's state, bare when the clearing node has no copy of the room): the
originator ignores it too, and the nodes that receive it clear their copy of the room's recent chat and send
their members the room's state as they have it. `EVENT` is a room event in the room's one order (a Redis
script applies a change and publishes it): every node applies it, the originator too. `LINE` is a chat line in
the room's one order (the script that stores it publishes it, pianorhythm.server.cluster.chat): every node
sends it to its members, the originator too, and `except_user` is its sender. No JSON and no copy of the
payload beyond the one concatenation on the note path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

VERSION: Final = 1
DATA: Final = 0
EVENT: Final = 1
CHAT: Final = 2
LINE: Final = 3
_HEADER: Final = struct.Struct("!BBBQ")
HEADER_BYTES: Final = _HEADER.size
MAX_NODE_ID_BYTES: Final = 255


# For the Redis scripts that change a room and publish the change in the same step: prepend this to the
# script and publish `event_envelope(origin, payload)` on the room's channel.
EVENT_LUA: Final = f"""
local function event_envelope(origin, payload)
  return struct.pack('>BBB', {VERSION}, {EVENT}, #origin) .. string.rep('\\0', 8) .. origin .. payload
end
"""


class BadEnvelope(ValueError):
    """Bytes on a room channel that are not an envelope of this version (logged and dropped by the link)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    origin: str  # the publishing node's id
    except_user: int  # 0: deliver to every local member
    payload: bytes
    kind: int = DATA


def node_id_bytes(node: str) -> bytes:
    """The node id as it goes in a header; refuses one that cannot (empty or over 255 UTF-8 bytes)."""
    raw = node.encode()
    if not raw or len(raw) > MAX_NODE_ID_BYTES:
        raise ValueError(f"A node id must be 1-{MAX_NODE_ID_BYTES} UTF-8 bytes, got {node!r}.")
    return raw


def pack(origin: bytes, except_user: int, payload: bytes, kind: int = DATA) -> bytes:
    """`origin` as returned by node_id_bytes (the link keeps its own, so the note path encodes nothing)."""
    return _HEADER.pack(VERSION, kind, len(origin), except_user) + origin + payload


def unpack(data: bytes) -> Envelope:
    if len(data) < HEADER_BYTES:
        raise BadEnvelope(f"{len(data)} bytes is shorter than the {HEADER_BYTES}-byte header")
    version, kind, origin_len, except_user = _HEADER.unpack_from(data)
    if version != VERSION:
        raise BadEnvelope(f"envelope version {version}, this node speaks {VERSION}")
    if kind not in (DATA, EVENT, CHAT, LINE):
        raise BadEnvelope(f"unknown envelope kind {kind}")
    end = HEADER_BYTES + origin_len
    if len(data) < end:
        raise BadEnvelope("the origin node id runs past the end")
    try:
        origin = data[HEADER_BYTES:end].decode()
    except UnicodeDecodeError as e:
        raise BadEnvelope("the origin node id is not UTF-8") from e
    return Envelope(origin, except_user, data[end:], kind)
