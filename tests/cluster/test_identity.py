"""Identity in Redis: ids unique across nodes, a token issued on one node resolves on the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pianorhythm.server.cluster.identity import Identity
from pianorhythm.server.cluster.link import client
from pianorhythm.server.core.crypto import hash_token
from pianorhythm.server.core.records import UserRecord
from tests.fixtures.redis import RedisServer

SECRET = "shared by every node"


@pytest.fixture
async def two_nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Identity, Identity]]:
    a, b = client(redis_server.url), client(redis_server.url)
    try:
        yield Identity(a, SECRET), Identity(b, SECRET)
    finally:
        await a.aclose()
        await b.aclose()


async def test_ids_are_unique_across_nodes(two_nodes: tuple[Identity, Identity]) -> None:
    a, b = two_nodes
    singles = await asyncio.gather(*(node.new_user_id() for _ in range(200) for node in (a, b)))
    blocks = await asyncio.gather(a.reserve_ids(50), b.reserve_ids(50))
    ids = list(singles) + [i for block in blocks for i in block]
    assert len(ids) == len(set(ids)) == 500
    assert sorted(ids) == list(range(1, 501))


async def test_a_token_issued_on_one_node_resolves_on_the_other(two_nodes: tuple[Identity, Identity]) -> None:
    a, b = two_nodes
    user = UserRecord(await a.new_user_id(), "ann", "#ff0000", "lobby", 1_700_000_000_000_000)
    await a.save_user(user, token_hash=hash_token("ann's token"))
    assert await b.user_by_token(hash_token("ann's token")) == user
    assert await b.user_by_token(hash_token("a guess")) is None


async def test_an_update_keeps_the_token_and_a_new_token_replaces_the_old(
    two_nodes: tuple[Identity, Identity],
) -> None:
    a, b = two_nodes
    await a.save_user(UserRecord(7, "ann", "#ff0000"), token_hash=hash_token("first"))
    await b.save_user(UserRecord(7, "ann2", "#00ff00", "den", 5))  # an update from the other node
    assert await a.user_by_token(hash_token("first")) == UserRecord(7, "ann2", "#00ff00", "den", 5)
    await b.save_user(UserRecord(7, "ann2", "#00ff00", "den", 6), token_hash=hash_token("second"))
    assert await a.user_by_token(hash_token("first")) is None
    assert (await a.user_by_token(hash_token("second"))) == UserRecord(7, "ann2", "#00ff00", "den", 6)
    await a.forget_token(hash_token("second"))
    assert await b.user_by_token(hash_token("second")) is None


async def test_tokens_and_users_expire_together(two_nodes: tuple[Identity, Identity]) -> None:
    a, _ = two_nodes
    await a.save_user(UserRecord(8, "bob", "#0000ff"), token_hash=hash_token("bob's"))
    ttls = [await a.redis.pttl(key) for key in ("pr:user:8", a.token_key(hash_token("bob's")))]
    assert all(30 * 86_400_000 - 60_000 < ttl <= 30 * 86_400_000 for ttl in ttls)


async def test_redis_holds_no_token_usable_without_the_secret(
    redis_server: RedisServer, two_nodes: tuple[Identity, Identity]
) -> None:
    a, _ = two_nodes
    await a.save_user(UserRecord(9, "eve's victim", "#000000"), token_hash=hash_token("victim's"))
    # Someone who can write to Redis but has another secret plants a token for user 9: no node matches it.
    intruder = Identity(a.redis, "not the secret")
    await a.redis.set(intruder.token_key(hash_token("planted")), 9)
    await a.redis.set(f"pr:token:{hash_token('planted')}", 9)
    assert await a.user_by_token(hash_token("planted")) is None
    assert not any(hash_token("victim's").encode() in key for key in await a.redis.keys("pr:token:*"))


def test_a_missing_secret_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="need a secret shared by every node"):
        Identity(client("redis://127.0.0.1:1/0"), "")
