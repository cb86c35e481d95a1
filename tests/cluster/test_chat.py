"""Chat history in Redis streams: stored before the answer, capped, paged the same from every node."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pianorhythm.server.cluster import keys
from pianorhythm.server.cluster.chat import ChatStreams, decode_line
from pianorhythm.server.cluster.envelope import LINE, unpack
from pianorhythm.server.cluster.link import client
from pianorhythm.server.core.actions import SaveChat
from pianorhythm.server.core.records import ChatRecord
from pianorhythm.server.storage import Storage
from tests.fixtures.redis import RedisServer


@pytest.fixture
async def two_nodes(redis_server: RedisServer) -> AsyncIterator[tuple[ChatStreams, ChatStreams]]:
    a, b = client(redis_server.url), client(redis_server.url)
    try:
        yield ChatStreams(a, "node-a"), ChatStreams(b, "node-b")
    finally:
        await a.aclose()
        await b.aclose()


async def say(
    streams: ChatStreams, room: str, user_id: int, name: str, color: str, content: str, time_us: int
) -> ChatRecord:
    return await streams.append(ChatRecord(0, room, user_id, name, color, content, time_us), user_id, 0)


async def test_a_line_is_in_the_stream_when_append_returns(
    two_nodes: tuple[ChatStreams, ChatStreams],
) -> None:
    a, b = two_nodes
    record = await say(a, "lobby", 3, "ann", "#ff0000", "héllo ✓", 1_700_000_000_000_000)
    assert record.id == 1
    page, more = await b.history("lobby", 0, 0, 50)
    assert page == [record]
    assert not more
    assert await b.recent("elsewhere", 50) == []


async def test_ids_increase_across_rooms_and_nodes(two_nodes: tuple[ChatStreams, ChatStreams]) -> None:
    a, b = two_nodes
    ids = []
    for i in range(10):
        writer, room = (a, "lobby") if i % 2 else (b, "den")
        ids.append((await say(writer, room, i, "u", "#000000", f"line {i}", i)).id)
    assert ids == list(range(1, 11))
    assert [r.id for r in await a.recent("lobby", 50)] == [2, 4, 6, 8, 10]


async def test_the_stream_keeps_the_last_1000_paged_identically_from_both_nodes(
    two_nodes: tuple[ChatStreams, ChatStreams],
) -> None:
    a, b = two_nodes
    for i in range(1, 1201):
        await say((a if i % 3 else b), "lobby", i % 7, "u", "#000000", f"line {i}", i)
    assert await a.redis.xlen("pr:chat:lobby") == 1000

    async def all_pages_newest_first(streams: ChatStreams) -> list[list[int]]:
        pages, before = [], 0
        while True:
            page, more = await streams.history("lobby", before, 0, 50)
            pages.append([r.id for r in page])
            if not more:
                return pages
            before = page[0].id

    pages_a, pages_b = await all_pages_newest_first(a), await all_pages_newest_first(b)
    assert pages_a == pages_b
    assert len(pages_a) == 20
    assert pages_a[0] == list(range(1151, 1201))  # the newest page, oldest first
    assert pages_a[-1] == list(range(201, 251))
    assert sorted(i for page in pages_a for i in page) == list(range(201, 1201))
    newest = (await b.recent("lobby", 1))[0]
    assert (newest.id, newest.content, newest.user_id, newest.server_time_us) == (1200, "line 1200", 3, 1200)


async def test_after_id_pages_forward_as_sqlite_does(two_nodes: tuple[ChatStreams, ChatStreams]) -> None:
    a, b = two_nodes
    for i in range(1, 8):
        await say(a, "lobby", 1, "ann", "#123456", f"{i}", i)
    page, more = await b.history("lobby", 0, 2, 3)
    assert ([r.id for r in page], more) == ([3, 4, 5], True)
    page, more = await b.history("lobby", 0, 5, 3)
    assert ([r.id for r in page], more) == ([6, 7], False)
    page, more = await b.history("lobby", 0, 7, 3)
    assert (page, more) == ([], False)
    page, more = await b.history("lobby", 4, 0, 2)
    assert ([r.id for r in page], more) == ([2, 3], True)
    page, more = await b.history("lobby", 2, 0, 2)
    assert ([r.id for r in page], more) == ([1], False)


async def test_clear_forgets_a_rooms_history(two_nodes: tuple[ChatStreams, ChatStreams]) -> None:
    a, b = two_nodes
    await say(a, "lobby", 1, "ann", "#123456", "x", 1)
    await b.clear("lobby")
    assert await a.recent("lobby", 50) == []
    assert (await say(a, "lobby", 1, "ann", "#123456", "y", 2)).id == 2


async def test_every_page_is_the_one_sqlite_gives(
    two_nodes: tuple[ChatStreams, ChatStreams], tmp_path: Path
) -> None:
    a, b = two_nodes
    records = [await say(a, "lobby", i, f"u{i}", "#000000", f"line {i}", i * 10) for i in range(1, 31)]
    storage = Storage(tmp_path / "server.db")
    await storage.open()
    try:
        lines = tuple(dataclasses.replace(r, id=0) for r in records)
        assert await storage.save_chat(SaveChat(lines, 0, 0, 0)) == records  # numbered as Redis did
        for before, after, limit in [(0, 0, 50), (0, 0, 7), (12, 0, 5), (1, 0, 5), (31, 0, 50), (0, 3, 4),
                                     (0, 28, 4), (0, 30, 4), (5, 2, 10)]:  # fmt: skip
            expected = await storage.history("lobby", before, after, limit)
            assert await b.history("lobby", before, after, limit) == expected, (before, after, limit)
    finally:
        await storage.close()


async def test_lines_said_on_two_nodes_at_once_are_stored_and_published_in_one_id_order(
    two_nodes: tuple[ChatStreams, ChatStreams],
) -> None:
    a, b = two_nodes
    listener = a.redis.pubsub()
    await listener.subscribe(keys.room_channel("lobby"))
    await listener.get_message(timeout=5)  # the subscription's confirmation
    try:

        async def chat(streams: ChatStreams, user: int) -> list[ChatRecord]:
            lines = [ChatRecord(0, "lobby", user, f"u{user}", "#000000", f"{user}.{n}", n) for n in range(20)]
            return [await streams.append(line, user, 100 + n) for n, line in enumerate(lines)]

        said = await asyncio.gather(chat(a, 1), chat(b, 2), chat(a, 3), chat(b, 4))
        stored = await b.recent("lobby", 100)
        assert sorted(stored, key=lambda r: r.id) == stored  # the stream in id order, nothing refused
        assert sorted(stored, key=lambda r: r.id) == sorted((r for s in said for r in s), key=lambda r: r.id)
        heard: list[ChatRecord] = []
        while len(heard) < len(stored):
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message, "a line was not published"
            envelope = unpack(message["data"])
            record, ref = decode_line("lobby", envelope.payload)
            assert envelope.kind == LINE and envelope.except_user == record.user_id
            assert envelope.origin == ("node-a" if record.user_id % 2 else "node-b")
            assert ref == 100 + int(record.content.split(".")[1])
            heard.append(record)
        assert heard == stored  # the channel in the stream's order
    finally:
        await listener.aclose()
