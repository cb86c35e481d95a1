"""The directory: what every relay node must agree on, behind one interface the shell is given.

The relay core holds no I/O; the shell asks the directory for facts (the user a resume token names, a new
user id, the stored rooms, the chat to preload) and hands them to the core, and carries the core's store
actions out through it. On one node it is SQLite (pianorhythm.server.storage.Storage); on many it will be
Redis, with the same methods: user ids from INCR, rooms and bans in hashes, chat in capped streams.

Per-address connection counts are answered at once, from what this node knows (checked before the
WebSocket upgrade, where there is no time to wait): on one node that is the whole truth. On many nodes that
check is a lower bound, and `admit` (awaited once the connection is accepted) takes the cluster-wide count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from pianorhythm.server.core.actions import SaveChat, Store
from pianorhythm.server.core.records import ChatRecord, RoomRecord, UserRecord


@dataclass(slots=True)
class Startup:
    """What the core starts from: the stored rooms (with their bans)."""

    rooms: list[RoomRecord] = field(default_factory=list)


class Directory(Protocol):
    async def open(self) -> Startup: ...

    async def close(self) -> None: ...

    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        """The stored user a resume token (hashed) names, if any."""
        ...

    async def new_user_id(self) -> int:
        """An id no user ever had, here or on another node; never handed out twice."""
        ...

    async def apply(self, store: Store) -> None:
        """Make `store` durable (users, rooms and their bans, chat); returns once it is."""
        ...

    async def save_chat(self, save: SaveChat) -> list[ChatRecord]:
        """Store `save.lines`, each numbered as it is stored (one counter for every room and node, so a
        room's lines are stored in id order); returns them numbered once they are durable. On many nodes
        the same step puts each line on its room's channel (see pianorhythm.server.cluster.chat)."""
        ...

    async def recent_chat(self, room: str, limit: int) -> list[ChatRecord]: ...

    async def history(
        self, room: str, before_id: int, after_id: int, limit: int
    ) -> tuple[list[ChatRecord], bool]:
        """A page of a room's chat, oldest first, and whether there is more beyond it."""
        ...

    def connections_from(self, address: str) -> int:
        """How many connections `address` (a ban scope or client address) has open now."""
        ...

    def connection_opened(self, address: str) -> None: ...

    def connection_closed(self, address: str) -> None: ...

    async def admit(self, address: str, cap: int) -> bool:
        """Whether a connection from `address`, accepted on this node's count, is also within `cap` across
        every node (counted there if so; `release` gives it back)."""
        ...

    async def release(self, address: str) -> None: ...

    def census(self) -> dict[str, int]:
        """The size of every map the directory holds in memory (none may leak)."""
        ...


class AddressCounts:
    """Open connections by client address, on this node: forgets an address when its count drops to 0."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def get(self, address: str) -> int:
        return self._counts[address]

    def opened(self, address: str) -> None:
        self._counts[address] += 1

    def closed(self, address: str) -> None:
        self._counts[address] -= 1
        if self._counts[address] <= 0:
            del self._counts[address]

    def __len__(self) -> int:
        return len(self._counts)
