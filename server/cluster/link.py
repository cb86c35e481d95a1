"""A node's link to Redis: one command client and one pub/sub connection, kept up through blips.

    link = Link(url, "node-a", on_envelope=deliver, on_room_list=apply_delta, on_lost=..., on_back=...)
    await link.start()                  # LinkError if Redis cannot be reached now
    link.join("lobby")                  # subscribed while this node has local members there
    link.publish("lobby", user_id, frame)   # fire and forget: queued, sent in order, never awaited
    ...
    await link.close()

Publishing never waits for Redis: messages queue and one task sends them in batches (a pipeline per batch),
so a publisher's messages reach every subscriber in the order published. While the link is down, publishing
drops (counted and logged when the link is back): a note replayed seconds late is worse than none, and a
batch that failed mid-way cannot be retried without sending some of it twice.

When the pub/sub connection breaks the link says so once (WARNING, and `on_lost`), retries with exponential
backoff, subscribes again to every room it holds, then says so once more with how long it was down (and
`on_back(seconds)`: chat published meanwhile did not reach this node, so its clients' history may have a gap).
Local delivery never depends on the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pianorhythm.server.cluster import keys
from pianorhythm.server.cluster.envelope import (
    CHAT,
    DATA,
    BadEnvelope,
    Envelope,
    node_id_bytes,
    pack,
    unpack,
)

log = logging.getLogger(__name__)

# What a lost connection raises: redis-py's own errors, or the socket's when it breaks mid-call (builtin
# TimeoutError, of a wait that got no answer, is an OSError).
LINK_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
MAX_CONNECTIONS: Final = 16  # per node: pub/sub, publishing, and commands from many sessions at once
COMMAND_TIMEOUT_S: Final = 5.0  # a command with no answer in this long fails (a frozen or unreachable Redis)
POOL_WAIT_S: Final = 5.0  # a command waits this long for a free connection, then fails as a lost link
PING_INTERVAL_S: Final = 5.0  # an idle pub/sub connection is pinged; one silent this long again is lost
MAX_PENDING: Final = 10_000  # queued publishes; past it (Redis far slower than the room) they are dropped

EnvelopeHandler = Callable[[str, Envelope], None]


@dataclass(slots=True)
class _Held:
    room: str
    members: int  # local members holding the room's channel


class LinkError(Exception):
    """Redis could not be reached when the node started (the message says where and how to fix it)."""


def client(url: str, max_connections: int = MAX_CONNECTIONS) -> aioredis.Redis:
    """A command client for `url` that fails fast: redis-py's own retries would repeat a command that may
    have run (a chat line stored twice); the callers decide, and the link owns reconnecting. Commands
    share a few connections (the pub/sub one among them); past that they wait for one rather than fail."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=2,
        socket_timeout=COMMAND_TIMEOUT_S,
        socket_keepalive=True,
    )
    return aioredis.Redis.from_pool(pool)


class Link:
    def __init__(
        self,
        url: str,
        node: str,
        *,
        on_envelope: EnvelopeHandler,
        on_node_message: Callable[[Envelope], None] | None = None,
        on_room_list: Callable[[Envelope], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        on_back: Callable[[float], None] | None = None,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        max_pending: int = MAX_PENDING,
        ping_interval_s: float = PING_INTERVAL_S,
    ) -> None:
        self.url = url
        self.node = node
        self._origin = node_id_bytes(node)
        self.redis = client(url)
        self._on_envelope = on_envelope
        self._on_node_message = on_node_message
        self._on_room_list = on_room_list
        self._on_lost = on_lost
        self._on_back = on_back
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_pending = max_pending
        self._ping_interval = ping_interval_s
        self._node_channel = keys.node_channel(node).encode()
        # Held for the link's life: this node's own channel, and the room list's when it is wanted.
        self._fixed = {self._node_channel}
        if on_room_list is not None:
            self._fixed.add(keys.ROOM_LIST_CHANNEL.encode())
        self._rooms: dict[bytes, _Held] = {}  # by channel
        self._confirmed: set[bytes] = set()  # channels Redis confirmed on the current connection
        # (Un)subscriptions sent and not answered yet, by channel: until Redis answers, what it confirmed
        # may be about to change (a room let go and held again within ms: its UNSUBSCRIBE is in flight).
        self._in_flight: Counter[bytes] = Counter()
        self._pubsub: PubSub | None = None
        self._up = False
        self._lost_at = 0.0
        self._dropped = 0  # publishes lost since the last report
        self._outgoing: list[tuple[bytes, bytes]] = []
        self._wake_publisher = asyncio.Event()
        self._wake_sync = asyncio.Event()
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            pubsub = await self._connect()
        except LINK_ERRORS as e:
            await self.redis.aclose()
            raise LinkError(
                f"Could not reach Redis at {_shown(self.url)} ({_reason(e)}); "
                "start redis-server there or fix --redis."
            ) from e
        self._up = True
        self._tasks = [
            asyncio.create_task(self._run(pubsub), name=f"redis-link-{self.node}"),
            asyncio.create_task(self._publisher(), name=f"redis-publish-{self.node}"),
            asyncio.create_task(self._sync_rooms(), name=f"redis-rooms-{self.node}"),
        ]
        for task in self._tasks:
            task.add_done_callback(_said_if_failed)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._drop_pubsub()
        await self.redis.aclose()

    @property
    def up(self) -> bool:
        return self._up

    # -- rooms -------------------------------------------------------------------------------------------

    def join(self, room: str) -> None:
        """One more local member in `room`: the first one subscribes this node to the room's channel."""
        channel = keys.room_channel(room).encode()
        held = self._rooms.get(channel)
        if held is None:
            self._rooms[channel] = _Held(room, 1)
            self._wake_sync.set()
        else:
            held.members += 1

    def leave(self, room: str) -> None:
        """One local member fewer in `room`: the last one unsubscribes (a leave without a join is ignored)."""
        channel = keys.room_channel(room).encode()
        held = self._rooms.get(channel)
        if held is None:
            return
        held.members -= 1
        if held.members <= 0:
            del self._rooms[channel]
            self._wake_sync.set()

    def rooms(self) -> dict[str, int]:
        """Room -> local holders, as joined."""
        return {held.room: held.members for held in self._rooms.values()}

    async def settled(self) -> None:
        """Wait until Redis confirmed exactly the rooms held, with no change in flight (messages published
        from then on arrive)."""
        async with self._changed:
            await self._changed.wait_for(self._in_sync)

    def _in_sync(self) -> bool:
        return self._up and not self._in_flight and self._confirmed == set(self._rooms) | self._fixed

    # -- publishing --------------------------------------------------------------------------------------

    def publish(self, room: str, except_user: int, payload: bytes, chat: bool = False) -> None:
        """Send `payload` to the other nodes' members of `room` (all but `except_user`); never waits.
        `chat`: the room's chat was cleared (envelope.CHAT): the other nodes clear their copies and tell
        their members."""
        kind = CHAT if chat else DATA
        self._queue(keys.room_channel(room).encode(), pack(self._origin, except_user, payload, kind))

    def send_to_node(self, node: str, payload: bytes) -> None:
        """A message for one node (e.g. "your connection of user X was replaced"); never waits."""
        self._queue(keys.node_channel(node).encode(), pack(self._origin, 0, payload))

    def _queue(self, channel: bytes, data: bytes) -> None:
        if not self._up or len(self._outgoing) >= self._max_pending:
            self._dropped += 1
            return
        self._outgoing.append((channel, data))
        self._wake_publisher.set()

    async def _publisher(self) -> None:
        while True:
            await self._wake_publisher.wait()
            self._wake_publisher.clear()
            while self._outgoing:
                batch, self._outgoing = self._outgoing, []
                pipe = self.redis.pipeline(transaction=False)
                for channel, data in batch:
                    pipe.publish(channel, data)
                try:
                    await pipe.execute()
                except LINK_ERRORS as e:
                    self._dropped += len(batch)
                    log.debug("publishing %d messages failed: %s", len(batch), e)
                except RedisError:
                    self._dropped += len(batch)
                    log.exception("Redis refused %d published messages", len(batch))
                stop_if_cancelled()

    # -- the pub/sub connection --------------------------------------------------------------------------

    async def _connect(self) -> PubSub:
        pubsub = self.redis.pubsub()
        self._pubsub = pubsub
        self._confirmed = set()
        self._in_flight.clear()
        # Up means Redis answered, not just that a socket opened (a frozen server still accepts), and
        # confirmed every channel: the rooms held are subscribed again before the link says it is back.
        wanted = [*self._fixed, *self._rooms]
        async with asyncio.timeout(self._ping_interval):
            await self._subscribe(pubsub, wanted)
            while self._in_flight:
                message = await pubsub.get_message(timeout=self._ping_interval)
                if message is not None:
                    await self._handle(message)
        return pubsub

    async def _subscribe(self, pubsub: PubSub, channels: Collection[bytes]) -> None:
        self._in_flight.update(channels)
        await pubsub.subscribe(*channels)

    async def _unsubscribe(self, pubsub: PubSub, channels: Collection[bytes]) -> None:
        self._in_flight.update(channels)
        await pubsub.unsubscribe(*channels)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*LINK_ERRORS, RedisError):
                # Through a typed name: redis-py annotates aclose only from 8.2, and an ignore that is needed
                # before it is an error after it.
                aclose: Callable[[], Awaitable[None]] = pubsub.aclose
                await aclose()

    async def _run(self, pubsub: PubSub) -> None:
        backoff = self._backoff_initial
        while True:
            try:
                await self._read(pubsub)
            except LINK_ERRORS as e:
                self._mark_lost(e)
            except RedisError as e:  # not a lost connection, but the connection is no longer trusted
                log.exception("Redis sent the pub/sub connection something unexpected")
                self._mark_lost(e)
            await self._drop_pubsub()
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                try:
                    pubsub = await self._connect()
                    break
                except LINK_ERRORS as e:
                    log.debug("Redis still unreachable: %s", e)
                    await self._drop_pubsub()
                finally:
                    stop_if_cancelled()
            backoff = self._backoff_initial
            # Pooled command connections opened before Redis went away are dead: each would fail its next
            # command once. Closing the idle ones makes the next commands connect afresh.
            await self.redis.connection_pool.disconnect(inuse_connections=False)
            self._mark_back()

    def _mark_lost(self, error: BaseException) -> None:
        if not self._up:
            return
        self._up = False
        self._lost_at = time.monotonic()
        self._dropped += len(self._outgoing)
        self._outgoing.clear()
        log.warning(
            "Redis link lost (%s); rooms go on locally, other nodes are unreachable until it is back",
            _reason(error),
        )
        self._call(self._on_lost)

    def _mark_back(self) -> None:
        self._up = True
        down = time.monotonic() - self._lost_at
        dropped, self._dropped = self._dropped, 0
        log.warning(
            "Redis link back after %.1f s; subscribed again to %d rooms; %d messages for other nodes were "
            "not sent meanwhile, and chat from other nodes in that time is missing here",
            down, len(self._rooms), dropped,
        )  # fmt: skip
        self._call(self._on_back, down)
        self._wake_sync.set()

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("a Redis link callback failed")

    async def _read(self, pubsub: PubSub) -> None:
        """Deliver until the connection breaks, or stays silent (a peer gone without closing it) for a ping
        interval after a ping."""
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self._ping_interval)
            stop_if_cancelled()
            if message is None:
                if pinged:
                    raise RedisTimeoutError(f"no answer to a ping in {self._ping_interval:g} s")
                pinged = True
                await pubsub.ping()
                continue
            pinged = False
            await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            self._deliver(channel, message["data"])
        elif kind in ("subscribe", "unsubscribe"):
            if kind == "subscribe":
                self._confirmed.add(channel)
            else:
                self._confirmed.discard(channel)
            self._in_flight[channel] -= 1
            if self._in_flight[channel] <= 0:
                del self._in_flight[channel]
                self._wake_sync.set()  # held or let go again while this was in flight
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _deliver(self, channel: bytes, data: bytes) -> None:
        try:
            envelope = unpack(data)
        except BadEnvelope as e:
            log.warning("dropped a malformed message on %r: %s", channel, e)
            return
        if envelope.kind in (DATA, CHAT) and envelope.origin == self.node:
            return  # delivered locally before it was published
        held = self._rooms.get(channel)
        try:
            if held is not None:
                self._on_envelope(held.room, envelope)
            elif channel == self._node_channel and self._on_node_message is not None:
                self._on_node_message(envelope)
            elif channel in self._fixed and self._on_room_list is not None:
                self._on_room_list(envelope)
        except Exception:
            log.exception("delivering a message from %r failed", channel)

    async def _sync_rooms(self) -> None:
        """Bring the connection's subscriptions to the rooms held (joins and leaves come in bursts)."""
        while True:
            await self._wake_sync.wait()
            self._wake_sync.clear()
            pubsub = self._pubsub
            if pubsub is None or not self._up:
                continue  # _connect subscribes to every room held
            # A channel with a change in flight is decided again once Redis answered (its reply wakes this).
            wanted = set(self._rooms) | self._fixed
            extra = self._confirmed - wanted - set(self._in_flight)
            missing = wanted - self._confirmed - set(self._in_flight)
            try:
                if missing:
                    await self._subscribe(pubsub, missing)
                if extra:
                    await self._unsubscribe(pubsub, extra)
            except LINK_ERRORS as e:
                log.debug("changing subscriptions failed (the reader reconnects): %s", e)
            stop_if_cancelled()
            await self._notify()


def stop_if_cancelled() -> None:
    """Raise CancelledError when this task was asked to stop: on Python 3.11 a cancel that arrives just as a
    command's write completes is swallowed (redis-py writes under asyncio.wait_for, which then returns the
    result), so a loop that talks to Redis checks after each call, or it runs on and its stop never ends."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _shown(url: str) -> str:
    """The URL without its password, for the log and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _said_if_failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the Redis link stopped working (%s)", task.get_name(), exc_info=task.exception())
