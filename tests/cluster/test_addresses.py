"""Connections per address across nodes: the cap holds cluster-wide; a dead node's connections go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pianorhythm.server.cluster.addresses import AddressCounts
from pianorhythm.server.cluster.link import client
from tests.fixtures.redis import RedisServer

CAP = 5


@pytest.fixture
async def counts(redis_server: RedisServer) -> AsyncIterator[tuple[AddressCounts, AddressCounts]]:
    a, b = client(redis_server.url), client(redis_server.url)
    try:
        yield AddressCounts(a, "node-a"), AddressCounts(b, "node-b")
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_cap_holds_across_nodes_under_concurrent_opens(
    counts: tuple[AddressCounts, AddressCounts],
) -> None:
    a, b = counts
    admitted = await asyncio.gather(*((a if i % 2 else b).opened("203.0.113.7", CAP) for i in range(40)))
    assert admitted.count(True) == CAP
    assert await a.count("203.0.113.7") == CAP == await b.count("203.0.113.7")
    assert await a.opened("203.0.113.8", CAP)  # another address has its own cap
    await b.closed("203.0.113.7")
    assert await a.opened("203.0.113.7", CAP)  # a slot freed on one node is usable from the other
    assert not await b.opened("203.0.113.7", CAP)


async def test_a_dead_nodes_connections_are_removed_and_the_rest_stay(
    counts: tuple[AddressCounts, AddressCounts],
) -> None:
    a, b = counts
    for _ in range(3):
        assert await a.opened("198.51.100.1", CAP)
    assert await a.opened("198.51.100.2", CAP)
    assert await b.opened("198.51.100.1", CAP)
    assert await b.remove_node("node-a") == 2
    assert await b.count("198.51.100.1") == 1 and await b.count("198.51.100.2") == 0
    assert await b.remove_node("node-a") == 0
    for _ in range(CAP - 1):
        assert await b.opened("198.51.100.1", CAP)
    assert not await a.opened("198.51.100.1", CAP)


async def test_closing_every_connection_leaves_no_key_behind(
    counts: tuple[AddressCounts, AddressCounts],
) -> None:
    a, _ = counts
    assert await a.opened("192.0.2.1", CAP)
    assert await a.opened("192.0.2.1", CAP)
    await a.closed("192.0.2.1")
    await a.closed("192.0.2.1")
    assert await a.redis.keys("pr:*") == []
