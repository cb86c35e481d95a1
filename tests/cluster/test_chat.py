"""Chat history in Redis streams: stored before the answer, capped, paged the same from every node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pianorhythm.server.cluster.chat import ChatStreams, OutOfOrder
from pianorhythm.server.cluster.link import client
from pianorhythm.server.core.actions import SaveChat
from pianorhythm.server.core.records import ChatRecord
from pianorhythm.server.storage import Storage
from tests.fixtures.redis import RedisServer


@pytest.fixture
async def two_nodes(redis_server: RedisServer) -> AsyncIterator[tuple[ChatStreams, ChatStreams]]:
    a, b = client(redis_server.url), client(redis_server.url)
    try:
        yield ChatStreams(a), ChatStreams(b)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_line_is_in_the_stream_when_append_returns(
    two_nodes: tuple[ChatStreams, ChatStreams],
) -> None:
    a, b = two_nodes
    record = await a.append("lobby", 3, "ann", "#ff0000", "héllo ✓", 1_700_000_000_000_000)
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
        ids.append((await writer.append(room, i, "u", "#000000", f"line {i}", i)).id)
    assert ids == list(range(1, 11))
    assert [r.id for r in await a.recent("lobby", 50)] == [2, 4, 6, 8, 10]


async def test_the_stream_keeps_the_last_1000_paged_identically_from_both_nodes(
    two_nodes: tuple[ChatStreams, ChatStreams],
) -> None:
    a, b = two_nodes
    for i in range(1, 1201):
        await (a if i % 3 else b).append("lobby", i % 7, "u", "#000000", f"line {i}", i)
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
        await a.append("lobby", 1, "ann", "#123456", f"{i}", i)
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
    await a.append("lobby", 1, "ann", "#123456", "x", 1)
    await b.clear("lobby")
    assert await a.recent("lobby", 50) == []
    assert (await a.append("lobby", 1, "ann", "#123456", "y", 2)).id == 2


async def test_every_page_is_the_one_sqlite_gives(
    two_nodes: tuple[ChatStreams, ChatStreams], tmp_path: Path
) -> None:
    a, b = two_nodes
    records = [await a.append("lobby", i, f"u{i}", "#000000", f"line {i}", i * 10) for i in range(1, 31)]
    storage = Storage(tmp_path / "server.db")
    await storage.open()
    try:
        await storage.apply(SaveChat(tuple(records)))
        for before, after, limit in [(0, 0, 50), (0, 0, 7), (12, 0, 5), (1, 0, 5), (31, 0, 50), (0, 3, 4),
                                     (0, 28, 4), (0, 30, 4), (5, 2, 10)]:  # fmt: skip
            expected = await storage.history("lobby", before, after, limit)
            assert await b.history("lobby", before, after, limit) == expected, (before, after, limit)
    finally:
        await storage.close()


async def test_lines_numbered_ahead_are_stored_in_id_order_and_a_late_lower_id_is_refused(
    two_nodes: tuple[ChatStreams, ChatStreams],
) -> None:
    a, b = two_nodes
    first, second = await a.reserve_ids(1), await b.reserve_ids(2)
    assert (first, second) == (1, 2)  # b holds 2 and 3
    early = ChatRecord(second, "lobby", 2, "bob", "#00ff00", "from b", 20)
    await b.append_record(early)
    with pytest.raises(OutOfOrder):  # a's line, reserved first, lost the race to the stream
        await a.append_record(ChatRecord(first, "lobby", 1, "ann", "#ff0000", "from a", 10))
    await a.append_record(ChatRecord(first, "den", 1, "ann", "#ff0000", "other room", 10))  # own stream
    late = ChatRecord(second + 1, "lobby", 2, "bob", "#00ff00", "again", 30)
    await b.append_record(late)
    assert await a.recent("lobby", 50) == [early, late]
    assert (await a.append("lobby", 1, "ann", "#ff0000", "counter goes on", 40)).id == 4
