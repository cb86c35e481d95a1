"""The directory of a node in a cluster (pianorhythm.server.directory.Directory over Redis): identity, user
ids, chat history and per-address connection counts, the same answer from every node.

    directory = RedisDirectory(cluster_node)
    startup = await directory.open()          # nothing to load: every fact is asked for when needed

Chat ids. A line is numbered where it is stored: `save_chat` runs one script per line that takes the next
id from the counter, adds the line to its room's stream and publishes it on the room's channel
(pianorhythm.server.cluster.chat), so a room's lines are in id order in its stream and on its channel, and
every node, this one too, sends them to its members as they come on the channel (RelayShell.on_envelope).

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
        return Startup()

    async def close(self) -> None:
        """Nothing of its own to close: the ClusterNode it uses is closed by whoever started it."""

    # -- identity ------------------------------------------------------------------------------------

    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        return await self.node.identity.user_by_token(token_hash)

    async def new_user_id(self) -> int:
        return await self.node.identity.new_user_id()

    # -- chat ----------------------------------------------------------------------------------------

    async def save_chat(self, save: SaveChat) -> list[ChatRecord]:
        return [await self.node.chat.append(line, save.sender, save.ref) for line in save.lines]

    async def recent_chat(self, room: str, limit: int) -> list[ChatRecord]:
        return await self.node.chat.recent(room, limit)

    async def history(
        self, room: str, before_id: int, after_id: int, limit: int
    ) -> tuple[list[ChatRecord], bool]:
        return await self.node.chat.history(room, before_id, after_id, limit)

    # -- writes --------------------------------------------------------------------------------------

    async def apply(self, store: Store) -> None:
        if isinstance(store, SaveUser):
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
