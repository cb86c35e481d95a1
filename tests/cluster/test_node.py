"""A whole node's share of the cluster, started and stopped as one (what the relay will hold)."""

from __future__ import annotations

import asyncio

import pytest

from pianorhythm.server.cluster.chat import decode_line
from pianorhythm.server.cluster.envelope import DATA, LINE, Envelope
from pianorhythm.server.cluster.node import ClusterNode
from pianorhythm.server.cluster.presence import NodeIdInUse
from pianorhythm.server.core.crypto import hash_token
from pianorhythm.server.core.records import ChatRecord, UserRecord
from tests.fixtures.redis import RedisServer

SECRET = "shared"


def make(
    url: str, name: str, got: list[tuple[str, Envelope]], dead: list[tuple[str, frozenset[int]]]
) -> ClusterNode:
    return ClusterNode(
        url, name, SECRET,
        on_envelope=lambda room, envelope: got.append((room, envelope)),
        on_node_dead=lambda node, users: dead.append((node, users)),
        ttl_s=1.0, refresh_s=0.1,
    )  # fmt: skip


async def test_two_nodes_share_rooms_identity_history_presence_and_counts(redis_server: RedisServer) -> None:
    got_a: list[tuple[str, Envelope]] = []
    got_b: list[tuple[str, Envelope]] = []
    dead: list[tuple[str, frozenset[int]]] = []
    a, b = make(redis_server.url, "node-a", got_a, dead), make(redis_server.url, "node-b", got_b, dead)
    await a.start()
    await b.start()
    try:
        user = UserRecord(await a.identity.new_user_id(), "ann", "#ff0000")
        await a.identity.save_user(user, hash_token("t"))
        assert await a.presence.claim(user.id) is None
        b.link.join("lobby")
        await b.link.settled()
        said = ChatRecord(0, "lobby", user.id, user.name, user.color, "hi", 1)
        line = await a.chat.append(said, user.id, 0)
        a.link.publish("lobby", user.id, b"chat frame")
        async with asyncio.timeout(5):
            while len(got_b) < 2:
                await asyncio.sleep(0.01)
        by_kind = {envelope.kind: envelope for _, envelope in got_b}
        assert by_kind[DATA].payload == b"chat frame"  # and the line, published as it was stored:
        assert (
            decode_line("lobby", by_kind[LINE].payload) == (line, 0) and by_kind[LINE].except_user == user.id
        )
        assert await b.chat.recent("lobby", 50) == [line]
        assert await b.identity.user_by_token(hash_token("t")) == user
        assert await b.presence.claim(user.id) == "node-a"
        await a.rooms.join("den", user.id, name=user.name, address="10.0.0.1", now_us=1)
        den = await b.rooms.snapshot("den")
        assert den is not None and [(m.user_id, m.node) for m in den.members] == [(user.id, "node-a")]
        assert await a.addresses.opened("10.0.0.1", 1) and not await b.addresses.opened("10.0.0.1", 1)
    finally:
        assert await a.close() == frozenset()  # ann moved to node-b
        assert await b.close() == frozenset({1})
    assert dead == []


async def test_a_node_that_cannot_start_leaves_nothing_running(redis_server: RedisServer) -> None:
    first = make(redis_server.url, "node-a", [], [])
    await first.start()
    try:
        tasks = asyncio.all_tasks()
        with pytest.raises(NodeIdInUse):
            await make(redis_server.url, "node-a", [], []).start()
        assert asyncio.all_tasks() == tasks
    finally:
        await first.close()
