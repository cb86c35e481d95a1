"""The directory of a node in a cluster (pianorhythm.server.directory.Directory over Redis): identity, user
ids, chat history and per-address connection counts, the same answer from every node.

    directory = RedisDirectory(cluster_node)
    startup = await directory.open()          # nothing to load: every fact is asked for when needed

Chat ids. The core numbers chat lines from its own counter; on many nodes that counter must agree, so the
shell reserves the next ids from Redis (`chat_ids`, the stream's counter `pr:chat-ids`) just before it feeds
the core a message that may write chat, and the core numbers the lines with them. Storing a line then adds
it to the room's stream under that id (`ChatStreams.append_record`) and returns once Redis has it, which is
when the sender is answered. A node numbers and stores its chat one message at a time, so its own lines
reach a stream in id order; two NODES whose lines for one room race (ids reserved in one order, stored in
the other) cannot both store: the later-stored, lower id is refused and its sender told to try again, so the
stream stays in id order and the same from every node.

Connections per address. The check before the WebSocket upgrade cannot wait for Redis, so it asks this
node's own count (`connections_from`: a lower bound of the cluster's, enough to turn away what this node
alone knows is over the cap); the cluster-wide count is then checked and taken in one Redis script by
`admit`, which the shell awaits once the connection is accepted, before it counts as a session. When Redis
cannot be reached, `admit` lets the connection in on the local count (and says so): local play goes on.

Room records and bans are not stored by this directory (`apply` passes SaveRoom and DeleteRoom by, at
debug level) and `open` loads none: on many nodes they belong in the room hashes of server/cluster/rooms.py,
kept by room events; until rooms span nodes, a node's rooms live in its memory only (the README says so).
Users expire in Redis on their own (Identity.expiry_s), so a PruneUsers has nothing left to do.
"""

from __future__ import annotations

import logging
from collections import Counter

from pianorhythm.server.cluster.node import REDIS_ERRORS, ClusterNode
from pianorhythm.server.core.actions import ClearChat, SaveChat, SaveUser, Store
from pianorhythm.server.core.records import ChatRecord, UserRecord
from pianorhythm.server.directory import AddressCounts, Startup

log = logging.getLogger(__name__)


class RedisDirectory:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self._local = AddressCounts()  # connections open on this node, by address
        self._admitted: Counter[str] = Counter()  # of those, the ones counted in Redis (to give back)
        self._releases = 0  # Redis decrements in flight (census: none may leak)

    async def open(self) -> Startup:
        # The core's own chat counter is never used unreserved: the shell reserves ids before chat.
        return Startup(next_chat_id=0)

    async def close(self) -> None:
        """Nothing of its own to close: the ClusterNode it uses is closed by whoever started it."""

    # -- identity ------------------------------------------------------------------------------------

    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        return await self.node.identity.user_by_token(token_hash)

    async def new_user_id(self) -> int:
        return await self.node.identity.new_user_id()

    # -- chat ----------------------------------------------------------------------------------------

    async def chat_ids(self, count: int) -> int | None:
        """The first of `count` chat ids no node uses again (the core numbers its next lines with them)."""
        return await self.node.chat.reserve_ids(count)

    async def recent_chat(self, room: str, limit: int) -> list[ChatRecord]:
        return await self.node.chat.recent(room, limit)

    async def history(
        self, room: str, before_id: int, after_id: int, limit: int
    ) -> tuple[list[ChatRecord], bool]:
        return await self.node.chat.history(room, before_id, after_id, limit)

    # -- writes --------------------------------------------------------------------------------------

    async def apply(self, store: Store) -> None:
        if isinstance(store, SaveChat):
            for record in store.messages:
                await self.node.chat.append_record(record)
        elif isinstance(store, SaveUser):
            await self.node.identity.save_user(store.user, store.token_hash)
        elif isinstance(store, ClearChat):
            await self.node.chat.clear(store.room)
        else:
            log.debug("%s is kept by the room events in Redis, not by the directory", type(store).__name__)

    # -- connections per address ---------------------------------------------------------------------

    def connections_from(self, address: str) -> int:
        return self._local.get(address)

    async def admit(self, address: str, cap: int) -> bool:
        """Count a new connection from `address` across the cluster, unless that makes more than `cap`."""
        try:
            admitted = await self.node.addresses.opened(address, cap)
        except REDIS_ERRORS as exc:
            log.warning(
                "cannot count a connection from %s in Redis (%s); admitted on this node's count", address, exc
            )
            return self._local.get(address) < cap
        if admitted:
            self._admitted[address] += 1
        return admitted

    def connection_opened(self, address: str) -> None:
        self._local.opened(address)

    def connection_closed(self, address: str) -> None:
        self._local.closed(address)

    async def release(self, address: str) -> None:
        """Give back the cluster-wide count `admit` took for a connection from `address` that ended."""
        if self._admitted[address] <= 0:
            del self._admitted[address]
            return
        self._admitted[address] -= 1
        if not self._admitted[address]:
            del self._admitted[address]
        self._releases += 1
        try:
            await self.node.addresses.closed(address)
        except REDIS_ERRORS as exc:
            log.warning(
                "cannot uncount a connection from %s in Redis (%s); it counts against the address until "
                "this node restarts",
                address,
                exc,
            )
        finally:
            self._releases -= 1

    def census(self) -> dict[str, int]:
        return {
            "addresses": len(self._local),
            "addresses_admitted": len(self._admitted),
            "address_releases": self._releases,
        }
