"""One relay node's share of the cluster, started and stopped as one: the link, presence, chat, identity,
rooms and per-address connection counts.

    node = ClusterNode(url, "node-a", secret, on_envelope=deliver, on_node_dead=make_them_leave, ...)
    await node.start()      # LinkError (Redis unreachable) or NodeIdInUse, nothing left running
    node.link.publish(...); await node.chat.append(...); await node.identity.user_by_token(...)
    await node.rooms.join(...); await node.addresses.opened(ip, cap)
    await node.close()      # a clean stop: returns the users still online here

What the relay shell asks of it beside those parts, failures logged here (Redis errors never reach the shell):
`claim_user` and `release_user` (one connection per user across nodes: the node that had the user gets a
message that `replaced_user` reads), `forget_node` (a dead node's per-address counts).

All share the link's Redis client (a small connection pool); the link owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Final

from redis.exceptions import RedisError

from pianorhythm.server.cluster.addresses import AddressCounts
from pianorhythm.server.cluster.chat import CAP, ChatStreams
from pianorhythm.server.cluster.envelope import Envelope
from pianorhythm.server.cluster.identity import EXPIRY_S, Identity
from pianorhythm.server.cluster.link import LINK_ERRORS, EnvelopeHandler, Link
from pianorhythm.server.cluster.presence import REFRESH_S, TTL_S, Presence
from pianorhythm.server.cluster.rooms import CROWN_GRACE_S, Rooms

log = logging.getLogger(__name__)

REDIS_ERRORS: Final = (*LINK_ERRORS, RedisError)  # what a call to Redis raises when it did not happen


class ClusterNode:
    def __init__(
        self,
        url: str,
        node: str,
        secret: str,
        *,
        on_envelope: EnvelopeHandler,
        on_node_dead: Callable[[str, frozenset[int]], None],
        on_node_message: Callable[[Envelope], None] | None = None,
        on_room_list: Callable[[Envelope], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        on_back: Callable[[float], None] | None = None,
        on_reaped: Callable[[], None] | None = None,
        ttl_s: float = TTL_S,
        refresh_s: float = REFRESH_S,
        chat_cap: int = CAP,
        user_expiry_s: float = EXPIRY_S,
        crown_grace_s: float = CROWN_GRACE_S,
    ) -> None:
        self.link = Link(
            url,
            node,
            on_envelope=on_envelope,
            on_node_message=on_node_message,
            on_room_list=on_room_list,
            on_lost=on_lost,
            on_back=on_back,
        )
        redis = self.link.redis
        self.presence = Presence(
            redis, node, on_node_dead=on_node_dead, on_reaped=on_reaped, ttl_s=ttl_s, refresh_s=refresh_s
        )
        self.chat = ChatStreams(redis, node, chat_cap)
        self.identity = Identity(redis, secret, expiry_s=user_expiry_s)
        self.rooms = Rooms(redis, node, crown_grace_s=crown_grace_s)
        self.addresses = AddressCounts(redis, node)
        self._beats: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.link.start()
        try:
            await self.presence.start()
        except BaseException:
            await self.link.close()
            raise
        self._beats = asyncio.create_task(self.presence.run(), name=f"presence-{self.link.node}")

    async def close(self) -> frozenset[int]:
        """Stop beating, leave the node list (the users still online here: see Presence.close), close."""
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
            self._beats = None
        try:
            return await self.presence.close()
        finally:
            await self.link.close()

    async def leave_rooms(self, now_us: int) -> None:
        """This node's members leave every room (the other nodes are told): at a clean stop, and at a start
        after a run that ended without one."""
        try:
            await self.rooms.remove_node(self.link.node, now_us)
        except REDIS_ERRORS as exc:
            log.warning("cannot take this node's players out of their rooms (%s): the other nodes will", exc)

    async def claim_user(self, user_id: int) -> None:
        """The user is online here now; a live node that still had them is told to let its connection go
        (as a newer connection replaces an older one on one node)."""
        try:
            previous = await self.presence.claim(user_id)
        except REDIS_ERRORS as exc:
            log.warning(
                "cannot mark user %d online here (%s): an older connection elsewhere stays", user_id, exc
            )
            return
        if previous is not None:
            log.info("user %d was online on node %r: telling it to let that connection go", user_id, previous)
            self.link.send_to_node(previous, json.dumps({"replaced": user_id}).encode())

    async def release_user(self, user_id: int) -> None:
        """The user's connection here ended (a newer claim elsewhere stands)."""
        try:
            await self.presence.release(user_id)
        except REDIS_ERRORS as exc:
            log.warning(
                "cannot mark user %d offline (%s): their next claim on a node corrects it", user_id, exc
            )

    async def forget_node(self, node: str) -> None:
        """A node stopped (or this node's previous run): its connections count against no address."""
        try:
            await self.addresses.remove_node(node)
        except REDIS_ERRORS as exc:
            log.warning("cannot remove node %r's connections from the per-address counts (%s)", node, exc)

    @staticmethod
    def replaced_user(envelope: Envelope) -> int | None:
        """The user a node message says another node now has (None: not such a message, logged)."""
        try:
            return int(json.loads(envelope.payload)["replaced"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a message from node %r that this node does not understand", envelope.origin)
            return None
