"""Node presence on a real redis-server: heartbeats, one connection per user across nodes, and exactly one
survivor cleaning up after a node that stopped. TTLs are short here (1 s, beats every 0.1 s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from pianorhythm.server.cluster.link import client
from pianorhythm.server.cluster.presence import NodeIdInUse, Presence
from tests.fixtures.redis import RedisServer

TTL, BEAT = 1.0, 0.1
WITHIN = 5.0


@dataclass
class Cluster:
    redis: aioredis.Redis
    dead: list[tuple[str, str, frozenset[int]]] = field(default_factory=list)  # (reporter, node, users)
    reaped: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def node(self, name: str) -> Presence:
        def on_dead(node: str, users: frozenset[int]) -> None:
            self.dead.append((name, node, users))
            self.changed.set()

        def on_reaped() -> None:
            self.reaped.append(name)
            self.changed.set()

        return Presence(
            self.redis, name, on_node_dead=on_dead, on_reaped=on_reaped, ttl_s=TTL, refresh_s=BEAT
        )

    def beating(self, presence: Presence) -> asyncio.Task[None]:
        task = asyncio.create_task(presence.run())
        self.tasks.append(task)
        return task

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WITHIN):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def cluster(redis_server: RedisServer) -> AsyncIterator[Cluster]:
    c = Cluster(client(redis_server.url))
    try:
        yield c
    finally:
        for task in c.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await c.redis.aclose()


async def test_a_node_that_stops_beating_is_cleaned_up_by_exactly_one_survivor(cluster: Cluster) -> None:
    a, b, c = cluster.node("node-a"), cluster.node("node-b"), cluster.node("node-c")
    for node in (a, b, c):
        await node.start()
    for user in (1, 2, 3):
        assert await c.claim(user) is None
    await a.claim(4)
    cluster.beating(a)
    cluster.beating(b)
    crashed = cluster.beating(c)
    crashed.cancel()  # as kill -9: no goodbye
    loop = asyncio.get_running_loop()
    stopped = loop.time()
    await cluster.until(lambda: bool(cluster.dead))
    assert loop.time() - stopped < WITHIN
    assert await a.sweep() == {} and await b.sweep() == {}  # nothing left for anyone
    assert len(cluster.dead) == 1
    reporter, dead, users = cluster.dead[0]
    assert reporter in ("node-a", "node-b")
    assert (dead, users) == ("node-c", frozenset({1, 2, 3}))
    assert [await a.where(u) for u in (1, 2, 3, 4)] == [None, None, None, "node-a"]
    assert await cluster.redis.smembers("pr:nodes") == {b"node-a", b"node-b"}
    assert cluster.reaped == []


async def test_one_connection_per_user_holds_across_nodes(cluster: Cluster) -> None:
    a, b = cluster.node("node-a"), cluster.node("node-b")
    await a.start()
    await b.start()
    assert await a.claim(5) is None
    assert await b.claim(5) == "node-a"  # node-a is told to let its connection go
    assert await a.where(5) == "node-b"
    await a.release(5)  # node-a's connection ends: node-b's claim stands
    assert await b.where(5) == "node-b"
    assert await b.claim(5) is None  # a newer connection on the same node: the core replaces it there
    await b.release(5)
    assert await a.where(5) is None
    assert await cluster.redis.smembers("pr:node-users:node-a") == set()


async def test_a_claim_from_a_dead_node_is_taken_without_telling_it(cluster: Cluster) -> None:
    a, b = cluster.node("node-a"), cluster.node("node-b")
    await a.start()
    await b.start()
    await a.claim(6)
    await cluster.redis.delete("pr:node:node-a")  # its key lapsed; nobody swept yet
    assert await b.claim(6) is None
    assert await b.sweep() == {"node-a": frozenset()}  # user 6 had moved on already
    assert await b.where(6) == "node-b"


async def test_a_second_node_with_a_live_nodes_id_is_refused(cluster: Cluster) -> None:
    await cluster.node("node-a").start()
    with pytest.raises(NodeIdInUse, match="Another node named 'node-a' is running .* own --node-id"):
        await cluster.node("node-a").start()


async def test_a_node_restarted_with_nobody_left_cleans_up_its_previous_run(cluster: Cluster) -> None:
    first = cluster.node("node-c")
    await first.start()
    await first.claim(7)
    async with asyncio.timeout(WITHIN):  # the run crashed; its key lapses after the TTL
        while await cluster.redis.exists("pr:node:node-c"):
            await asyncio.sleep(BEAT)
    await cluster.node("node-c").start()
    assert cluster.dead == [("node-c", "node-c", frozenset({7}))]
    assert await first.where(7) is None


async def test_a_node_whose_presence_lapsed_and_was_cleaned_up_is_told(cluster: Cluster) -> None:
    a, b = cluster.node("node-a"), cluster.node("node-b")
    await a.start()
    await b.start()
    await a.claim(8)
    await cluster.redis.delete("pr:node:node-a")  # stalled past the TTL
    assert await b.sweep() == {"node-a": frozenset({8})}
    await a.beat()
    assert cluster.reaped == ["node-a"]
    assert await cluster.redis.smembers("pr:nodes") == {b"node-a", b"node-b"}
    assert await a.claim(8) is None  # what on_reaped does: claim the local users again


async def test_a_clean_stop_takes_the_node_and_its_users_offline(cluster: Cluster) -> None:
    a, b = cluster.node("node-a"), cluster.node("node-b")
    await a.start()
    await b.start()
    await a.claim(9)
    assert await a.close() == frozenset({9})
    assert await b.where(9) is None
    assert await b.sweep() == {}
    assert cluster.dead == []


async def test_beats_that_fail_while_redis_is_down_are_said_once_and_resume(
    redis_server: RedisServer, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    a = cluster.node("node-a")
    await a.start()
    cluster.beating(a)

    def said(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    async def until_said(text: str) -> None:
        async with asyncio.timeout(WITHIN):
            while not said(text):
                await asyncio.sleep(BEAT)

    await asyncio.to_thread(redis_server.stop)
    await until_said("could not refresh this node's presence")
    await asyncio.to_thread(redis_server.start)
    await until_said("presence in Redis is refreshed again")
    assert said("could not refresh this node's presence") == 1
    assert await cluster.redis.exists("pr:node:node-a")
    assert cluster.reaped == []  # back within the TTL (data kept): nothing was cleaned up
