"""Which nodes are alive and which users are online where; the clean-up after a node that died.

    presence = Presence(link.redis, "node-a", on_node_dead=make_them_leave, on_reaped=rejoin_everyone)
    await presence.start()              # NodeIdInUse if a live node has this id
    beats = asyncio.create_task(presence.run())
    previous = await presence.claim(user_id)    # a live node that held the user: tell it to drop them
    await presence.release(user_id)             # the user's connection here ended

Each node holds `pr:node:{node}` with a TTL (10 s) and refreshes it every few seconds (3 s); every beat also
sweeps: a node listed in `pr:nodes` whose key has lapsed is dead, and one script both claims the clean-up
(it takes the node out of `pr:nodes`, so of all the survivors sweeping at once exactly one gets its users)
and clears the node's `pr:online:{user}` entries. That survivor's `on_node_dead(node, users)` makes those
users leave their rooms. A script is one atomic step in Redis, so no separate lock (and no lock expiry to
choose) is needed. A node finds its own previous incarnation at start the same way, for when no survivor did.

`pr:online:{user}` has no TTL of its own (refreshing one per user each beat would cost a write per user per
beat): a claim checks that the node named there is alive, and the survivor clears them with their node.

A node whose own key lapsed while it was alive (stalled past the TTL, or cut off from Redis that long) may
have been cleaned up by a survivor: the next beat registers it again and calls `on_reaped`, so the caller
claims its users again (or lets them go).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pianorhythm.server.cluster import keys
from pianorhythm.server.cluster.link import LINK_ERRORS, stop_if_cancelled

log = logging.getLogger(__name__)

TTL_S: Final = 10.0
REFRESH_S: Final = 3.0

# KEYS: node key, nodes set. ARGV: start token, TTL (ms), node id.
# 1: refreshed; 0: it had lapsed and was cleaned up, registered again; 2: it had lapsed, nothing was
# cleaned, registered again; -1: another process holds this node id.
_BEAT: Final = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  return 1
end
if held then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2 - redis.call('SADD', KEYS[2], ARGV[3]) * 2
"""

# KEYS: the dead node's key, its users set, nodes set. ARGV: node id, online key prefix.
# Its users (possibly none), or nil when the node is alive or someone else cleaned it up already.
_REAP: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('SREM', KEYS[3], ARGV[1]) == 0 then return false end
local users = redis.call('SMEMBERS', KEYS[2])
for _, user in ipairs(users) do
  if redis.call('GET', ARGV[2] .. user) == ARGV[1] then redis.call('DEL', ARGV[2] .. user) end
end
redis.call('DEL', KEYS[2])
return users
"""

# KEYS: the user's online key, this node's users set. ARGV: node id, user id, node key prefix,
# node users prefix. The node that held the user before, when it is another one and alive.
_CLAIM: Final = """
local before = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if before and before ~= ARGV[1] then
  redis.call('SREM', ARGV[4] .. before, ARGV[2])
  if redis.call('EXISTS', ARGV[3] .. before) == 1 then return before end
end
return false
"""

# KEYS: the user's online key, this node's users set. ARGV: node id, user id.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
"""


class NodeIdInUse(Exception):
    """Another live node registered this node id (the message says how to fix it)."""


class Presence:
    def __init__(
        self,
        redis: aioredis.Redis,
        node: str,
        *,
        on_node_dead: Callable[[str, frozenset[int]], None],
        on_reaped: Callable[[], None] | None = None,
        ttl_s: float = TTL_S,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.redis = redis
        self.node = node
        self.ttl_s = ttl_s
        self.refresh_s = refresh_s
        self._on_node_dead = on_node_dead
        self._on_reaped = on_reaped
        self._token = secrets.token_hex(8)  # this run of the node, told apart from another with its id
        self._node_key = keys.node(node)
        self._users_key = keys.node_users(node)
        self._beat = redis.register_script(_BEAT)
        self._reap = redis.register_script(_REAP)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._failing = False

    # -- this node ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Clean up after this node's previous run if nobody did, then register."""
        previous = await self._reap_node(self.node)
        if previous:
            log.warning(
                "cleaned up after this node's previous run: %d users were online on it", len(previous)
            )
            self._on_node_dead(self.node, previous)
        if await self._beat_once() == -1:
            raise NodeIdInUse(
                f"Another node named {self.node!r} is running on this Redis (or stopped less than "
                f"{self.ttl_s:g} s ago): give each node its own --node-id."
            )

    async def close(self) -> frozenset[int]:
        """A clean stop: this node leaves the node list and the users still online here are online nowhere
        (returned; the caller makes them leave their rooms first, as on one node)."""
        await self.redis.delete(self._node_key)
        users = await self._reap_node(self.node) or frozenset()
        log.info("left the node list; %d users were still online here", len(users))
        return users

    async def run(self) -> None:
        """Beat every `refresh_s` until cancelled: refresh this node's key, then clean up dead nodes."""
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.beat()
            except (*LINK_ERRORS, RedisError) as e:
                if not self._failing:
                    log.warning("could not refresh this node's presence in Redis (%s); retrying", e)
                self._failing = True
                continue
            finally:
                stop_if_cancelled()
            if self._failing:
                log.warning("this node's presence in Redis is refreshed again")
            self._failing = False

    async def beat(self) -> None:
        state = await self._beat_once()
        if state == -1:
            log.error(
                "another process registered this node id %r: give each node its own --node-id", self.node
            )
        if state in (-1, 0):
            if state == 0:
                log.warning("this node's presence lapsed and another node cleaned up after it")
            if self._on_reaped is not None:
                self._on_reaped()
        await self.sweep()

    async def _beat_once(self) -> int:
        ttl_ms = int(self.ttl_s * 1000)
        return int(await self._beat(keys=[self._node_key, keys.NODES], args=[self._token, ttl_ms, self.node]))

    # -- other nodes -------------------------------------------------------------------------------------

    async def sweep(self) -> dict[str, frozenset[int]]:
        """Clean up every node whose key lapsed and that no other node cleaned up; node -> its users."""
        # redis-py types smembers() for its sync and async clients at once; on this one it is awaitable.
        members = await cast(Awaitable[set[bytes]], self.redis.smembers(keys.NODES))
        nodes = sorted(m.decode() for m in members)
        cleaned: dict[str, frozenset[int]] = {}
        for node in nodes:
            if node == self.node:
                continue
            users = await self._reap_node(node)
            if users is None:
                continue
            cleaned[node] = users
            log.warning(
                "node %r stopped refreshing its presence; %d users were online on it", node, len(users)
            )
            self._on_node_dead(node, users)
        return cleaned

    async def _reap_node(self, node: str) -> frozenset[int] | None:
        reply = await self._reap(
            keys=[keys.node(node), keys.node_users(node), keys.NODES], args=[node, keys.ONLINE]
        )
        return None if reply is None else frozenset(int(u) for u in reply)

    # -- users -------------------------------------------------------------------------------------------

    async def claim(self, user_id: int) -> str | None:
        """The user is online on this node now; returns the live node that had them, to be told to let
        their older connection go (None when no other live node had them)."""
        before = await self._claim(
            keys=[keys.online(user_id), self._users_key],
            args=[self.node, user_id, keys.NODE, keys.NODE_USERS],
        )
        return None if before is None else _text(before)

    async def release(self, user_id: int) -> None:
        """The user's connection here ended (a claim made since by another node stands)."""
        await self._release(keys=[keys.online(user_id), self._users_key], args=[self.node, user_id])

    async def where(self, user_id: int) -> str | None:
        """The node the user is online on, if any."""
        node = await self.redis.get(keys.online(user_id))
        return None if node is None else _text(node)


def _text(reply: object) -> str:
    """A name from a reply (this client gets bytes)."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)
