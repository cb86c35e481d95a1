"""The Redis link between nodes, two links ("nodes") in one process on a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from redis.utils import HIREDIS_AVAILABLE

from pianorhythm.server.cluster.envelope import DATA, EVENT, EVENT_LUA, Envelope
from pianorhythm.server.cluster.link import Link, LinkError
from tests.fixtures.redis import RedisServer

WITHIN = 5.0
PING = 0.3  # the link pings an idle connection this often (5 s by default)


@dataclass
class Node:
    link: Link
    got: list[tuple[str, Envelope]] = field(default_factory=list)
    to_node: list[Envelope] = field(default_factory=list)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    back: asyncio.Event = field(default_factory=asyncio.Event)
    down_for: list[float] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WITHIN):
            while not done():
                self.arrived.clear()
                await self.arrived.wait()


def make_node(url: str, name: str) -> Node:
    holder: list[Node] = []

    def on_envelope(room: str, envelope: Envelope) -> None:
        holder[0].got.append((room, envelope))
        holder[0].arrived.set()

    def on_node_message(envelope: Envelope) -> None:
        holder[0].to_node.append(envelope)
        holder[0].arrived.set()

    def on_back(seconds: float) -> None:
        holder[0].down_for.append(seconds)
        holder[0].back.set()

    link = Link(
        url, name, on_envelope=on_envelope, on_node_message=on_node_message,
        on_lost=lambda: holder[0].lost.set(), on_back=on_back, ping_interval_s=PING,
    )  # fmt: skip
    holder.append(Node(link))
    return holder[0]


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    a, b = make_node(redis_server.url, "node-a"), make_node(redis_server.url, "node-b")
    await a.link.start()
    await b.link.start()
    try:
        yield a, b
    finally:
        await a.link.close()
        await b.link.close()


def payloads(node: Node, room: str) -> list[bytes]:
    return [e.payload for r, e in node.got if r == room]


async def test_envelopes_cross_exactly_once_and_in_order(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    for node in nodes:
        node.link.join("lobby")
        await node.link.settled()
    sent = [i.to_bytes(4, "big") * 5 for i in range(500)]
    for i, payload in enumerate(sent):
        a.link.publish("lobby", i, payload)
    b.link.publish("lobby", 7, b"from b")
    b.link.publish("lobby", 0, b"end")
    await b.until(lambda: len(b.got) == len(sent))
    await a.until(lambda: payloads(a, "lobby")[-1:] == [b"end"])
    assert payloads(b, "lobby") == sent
    assert [e.except_user for _, e in b.got] == list(range(500))
    assert {e.origin for _, e in b.got} == {"node-a"}
    assert payloads(a, "lobby") == [b"from b", b"end"]  # none of its own came back
    assert [e.except_user for _, e in a.got] == [7, 0]


async def test_a_room_event_published_by_a_script_reaches_every_node_the_originator_too(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    for node in nodes:
        node.link.join("lobby")
        await node.link.settled()
    script = EVENT_LUA + "redis.call('PUBLISH', KEYS[1], event_envelope(ARGV[1], ARGV[2]))"
    await a.link.redis.eval(script, 1, "pr:room:lobby", "node-a", b"\x00ann joined")
    a.link.publish("lobby", 0, b"a note after it")
    await b.until(lambda: len(b.got) == 2)
    await a.until(lambda: len(a.got) == 1)
    assert [(e.kind, e.origin, e.except_user, e.payload) for _, e in b.got] == [
        (EVENT, "node-a", 0, b"\x00ann joined"), (DATA, "node-a", 0, b"a note after it"),
    ]  # fmt: skip
    assert a.got == b.got[:1]


async def test_a_room_is_held_while_any_local_member_is_there(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    b.link.join("lobby")
    b.link.join("lobby")
    b.link.join("marker")
    await b.link.settled()
    b.link.leave("lobby")
    await b.link.settled()
    a.link.publish("lobby", 0, b"one left, still held")
    a.link.publish("marker", 0, b"m1")
    await b.until(lambda: len(b.got) == 2)
    b.link.leave("lobby")
    await b.link.settled()
    assert b.link.rooms() == {"marker": 1}
    # One publisher's messages arrive in order across channels: once m2 is in, "lobby" would be too.
    a.link.publish("lobby", 0, b"nobody left here")
    a.link.publish("marker", 0, b"m2")
    await b.until(lambda: len(b.got) == 3)
    assert [(r, e.payload) for r, e in b.got] == [
        ("lobby", b"one left, still held"), ("marker", b"m1"), ("marker", b"m2"),
    ]  # fmt: skip


async def test_a_room_let_go_and_held_again_within_ms_is_settled_only_once_subscribed(
    nodes: tuple[Node, Node],
) -> None:
    """A room dropped then held again while its UNSUBSCRIBE is in flight: settled() waits for Redis's
    answers, and the room is subscribed again, so what is published after settled() arrives."""
    a, b = nodes
    for attempt in range(20):
        b.link.join("den")
        await b.link.settled()
        b.link.leave("den")
        for _ in range(attempt % 4 + 1):  # the UNSUBSCRIBE goes out; Redis has not answered yet
            await asyncio.sleep(0)
        b.link.join("den")
        await b.link.settled()
        a.link.publish("den", 0, b"%d" % attempt)
        await b.until(lambda n=attempt + 1: len(b.got) == n)  # type: ignore[misc]
        b.link.leave("den")
    assert payloads(b, "den") == [b"%d" % n for n in range(20)]


async def test_close_ends_even_when_a_redis_call_swallowed_the_cancel(nodes: tuple[Node, Node]) -> None:
    """On Python 3.11 a cancel that arrives as a command's write completes is lost (redis-py writes under
    asyncio.wait_for, which then returns the result): emulated here in the subscription task's UNSUBSCRIBE,
    the way a survivor's stop sometimes never ended after a node's death. close() still ends."""
    a, _ = nodes
    a.link.join("den")
    await a.link.settled()
    pubsub = a.link._pubsub
    assert pubsub is not None and pubsub.channels
    real = pubsub.unsubscribe
    writing = asyncio.Event()

    async def unsubscribe_swallowing_the_cancel(*channels: object) -> object:
        writing.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(WITHIN)
        return await real(*channels)

    pubsub.unsubscribe = unsubscribe_swallowing_the_cancel  # type: ignore[method-assign]
    a.link.leave("den")
    await writing.wait()
    closing = asyncio.create_task(a.link.close())
    done, _ = await asyncio.wait({closing}, timeout=WITHIN)
    assert closing in done and closing.exception() is None


async def test_a_message_for_one_node_reaches_that_node_only(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    a.link.send_to_node("node-b", b"user 12 was replaced")
    await b.until(lambda: len(b.to_node) == 1)
    assert b.to_node[0].origin == "node-a"
    assert b.to_node[0].payload == b"user 12 was replaced"
    assert a.to_node == []


async def test_after_a_redis_restart_both_reconnect_resubscribe_and_deliver_again(
    redis_server: RedisServer, nodes: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    for node in nodes:
        node.link.join("lobby")
        await node.link.settled()
    await asyncio.to_thread(redis_server.restart)
    async with asyncio.timeout(WITHIN):
        for node in nodes:
            await node.lost.wait()
            await node.back.wait()
            await node.link.settled()
    a.link.publish("lobby", 0, b"after the blip")
    b.link.publish("lobby", 0, b"and back")
    await b.until(lambda: payloads(b, "lobby") == [b"after the blip"])
    await a.until(lambda: payloads(a, "lobby") == [b"and back"])
    assert len(a.down_for) == len(b.down_for) == 1
    assert all(0 < seconds < WITHIN for seconds in a.down_for + b.down_for)
    lost = [r for r in caplog.records if r.getMessage().startswith("Redis link lost")]
    back = [r for r in caplog.records if r.getMessage().startswith("Redis link back after")]
    assert len(lost) == len(back) == 2  # once each per node, however many retries it took


async def test_a_redis_that_stops_answering_without_closing_is_noticed_and_left_behind(
    redis_server: RedisServer, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    for node in nodes:
        node.link.join("lobby")
        await node.link.settled()
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)  # connections stay open, nothing answers
    try:
        async with asyncio.timeout(WITHIN):
            for node in nodes:
                await node.lost.wait()
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    async with asyncio.timeout(WITHIN):
        for node in nodes:
            await node.back.wait()
            await node.link.settled()
    a.link.publish("lobby", 0, b"awake")
    await b.until(lambda: payloads(b, "lobby") == [b"awake"])
    assert len(a.down_for) == len(b.down_for) == 1  # not back until Redis answered again


def test_replies_are_parsed_by_hiredis() -> None:
    assert HIREDIS_AVAILABLE  # a dependency: redis-py picks its parser when it is installed


async def test_publishing_while_redis_is_down_is_dropped_and_counted(
    redis_server: RedisServer, nodes: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    b.link.join("lobby")
    await b.link.settled()
    redis_server.stop()
    async with asyncio.timeout(WITHIN):
        await a.lost.wait()
    a.link.publish("lobby", 0, b"into the void")
    await asyncio.to_thread(redis_server.start)
    async with asyncio.timeout(WITHIN):
        await a.back.wait()
        await b.link.settled()
    a.link.publish("lobby", 0, b"heard")
    await b.until(lambda: len(b.got) == 1)
    assert payloads(b, "lobby") == [b"heard"]
    assert any("1 messages for other nodes were not sent" in r.getMessage() for r in caplog.records)


async def test_an_unreachable_redis_at_start_is_one_clear_error(redis_server: RedisServer) -> None:
    redis_server.stop()
    url = redis_server.url.replace("redis://", "redis://:hunter2@")
    link = Link(url, "node-a", on_envelope=lambda room, envelope: None)
    with pytest.raises(
        LinkError, match="Could not reach Redis at .*start redis-server there or fix --redis"
    ) as e:
        await link.start()
    assert f"redis://127.0.0.1:{redis_server.port}/0" in str(e.value)
    assert "hunter2" not in str(e.value)


async def test_a_malformed_message_on_a_room_channel_is_dropped_and_logged(
    nodes: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    b.link.join("lobby")
    await b.link.settled()
    await a.link.redis.publish("pr:room:lobby", b"\x09junk")
    a.link.publish("lobby", 0, b"fine")
    await b.until(lambda: len(b.got) == 1)
    assert payloads(b, "lobby") == [b"fine"]
    assert any("dropped a malformed message" in r.getMessage() for r in caplog.records)
