"""Paged room states, room lists and history on a real relay over loopback, read by a raw client held to
the real frame cap and by the client session (which must put the pages together).

Figures held: a late joiner of a room of 50 maximal chat lines gets 50/50 lines (also after a restart,
and for 2,000-byte lines stored before the byte cap); a subscriber to 340 rooms with 64-character
four-byte names (~140 KB, over twice the old 64 KiB cap) gets 341/341 rooms; a newcomer to a lobby of
1,000 members with 32-character four-byte names (~160 KB) gets all 1,001, and so do the client session
and a headless client; every frame within the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from pianorhythm.server.main import RunningServer
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.e2e.headless_procs import headless
from tests.fixtures.relay_process import REPO, relay_process
from tests.fixtures.server import TestClient, answers, start_test_server
from tests.load.crowd import crowd_name, room_name
from tests.tui.test_session_relay import open_session

CAP = codec.DEFAULT_MAX_PAYLOAD


def max_line(i: int, chars: int = 375) -> str:
    """A chat line of four-byte characters, different for each i (375 of them = the 1,500-byte cap)."""
    return "".join(chr(0x1F300 + (i * 7 + k) % 512) for k in range(chars))


class StrictClient(TestClient):
    """A raw client held to the client's limits, recording the size of every frame it reads."""

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self.frames: list[int] = []

    @classmethod
    async def open(cls, url: str, name: str | None = None) -> StrictClient:
        # max_queue=None: a client that stops reading still reads the close handshake (else close() waits
        # out its timeout behind unread frames).
        client = cls(await connect(url, compression=None, max_size=codec.frame_bytes(CAP), max_queue=None))
        if name is not None:
            await client.hello(name)
        return client

    async def _read(self, timeout: float) -> list[pb.ServerMessage]:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes)
        self.frames.append(len(data))
        return codec.decode_server(data)  # the default cap, as ClientSession decodes

    async def state(self, name: str, timeout: float = 10.0) -> tuple[pb.RoomState, int, int]:
        """The next RoomState of room `name` with its pages put together: (state, messages, bytes)."""
        head = await self.recv("room_state", timeout, where=lambda m: m.room_state.name == name)
        state = pb.RoomState()
        state.CopyFrom(head.room_state)
        count, size, more = 1, head.ByteSize(), head.room_state.more_pages
        while more:
            page = (await self.recv("room_state_page", timeout)).room_state_page
            state.users.extend(page.users)
            state.chat_history.extend(page.chat_history)
            count, size, more = count + 1, size + page.ByteSize(), page.more_pages
        lines = sorted(state.chat_history, key=lambda line: line.id)
        whole = pb.RoomState()
        whole.CopyFrom(state)
        del whole.chat_history[:]
        whole.chat_history.extend(lines)
        return whole, count, size


@contextlib.asynccontextmanager
async def crowd(url: str, count: int, *flags: str, timeout: float = 60) -> AsyncIterator[None]:
    """`count` clients from tests/load/crowd.py in a process of their own; held until the block ends."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.load.crowd", url, str(count), *flags,
        cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        assert line.decode().strip() == f"ready {count}", line
        yield
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def fill_room(url: str, room: str, lines: int) -> list[StrictClient]:
    """Authors in `room` who said `lines` maximal chat lines (4 each, within the chat quota), stored."""
    authors = []
    for i in range((lines + 3) // 4):
        author = await StrictClient.open(url, f"author{i}")
        await author.act(ref=1, join_room=pb.JoinRoom(name=room))
        await author.state(room)
        authors.append(author)
    for i in range(lines):
        author = authors[i // 4]
        await author.act(ref=100 + i, chat_send=pb.ChatSend(content=max_line(i)))
        await author.recv("chat_message", where=answers(100 + i))  # stored: acknowledged
    return authors


# -- history -----------------------------------------------------------------------------------------


async def test_a_late_joiner_gets_50_maximal_lines_also_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    server = await start_test_server(db)
    try:
        authors = await fill_room(server.url, "loud", 52)
        late = await StrictClient.open(server.url, "late")
        await late.act(ref=7, join_room=pb.JoinRoom(name="loud"))
        state, messages, _ = await late.state("loud")
        assert [c.content for c in state.chat_history] == [max_line(i) for i in range(2, 52)]
        assert messages >= 2 and max(late.frames) <= CAP + 1
        session, inbox = await open_session(server.url, "late2", room="loud")
        try:
            got = await inbox.wait_for(lambda m: m.HasField("room_state") and m.room_state.name == "loud")
            assert len(got.room_state.chat_history) == 50 and not got.room_state.more_pages
            assert session.last_chat_id == max(c.id for c in state.chat_history)
            assert not [m for m in inbox.messages if m.HasField("room_state_page")]
        finally:
            await session.close()
        for client in [*authors, late]:
            await client.close()
    finally:
        await server.close()
    server = await start_test_server(db)
    try:
        again = await StrictClient.open(server.url, "again")
        await again.act(join_room=pb.JoinRoom(name="loud"))
        reloaded, messages, _ = await again.state("loud")
        assert [c.content for c in reloaded.chat_history] == [max_line(i) for i in range(2, 52)]
        assert messages >= 2
        await again.close()
    finally:
        await server.close()


def store_legacy_lines(db: Path, room: str, count: int) -> list[str]:
    """Chat rows as a server before the byte cap stored them: 500 four-byte characters (2,000 bytes)."""
    contents = [max_line(i, 500) for i in range(count)]
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany(
            "INSERT INTO chat (room, user_id, user_name, user_color, content, server_time_us)"
            " VALUES (?, 1, 'old', '#000000', ?, 0)",
            [(room, text) for text in contents],
        )
    return contents


async def test_legacy_2000_byte_lines_reach_a_late_joiner_and_page_through_history(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    await (await start_test_server(db)).close()  # creates the schema
    contents = store_legacy_lines(db, "old", 52)
    server: RunningServer = await start_test_server(db)
    try:
        late = await StrictClient.open(server.url, "late")
        await late.act(join_room=pb.JoinRoom(name="old"))
        state, messages, _ = await late.state("old")
        assert [c.content for c in state.chat_history] == contents[2:]
        assert messages >= 2
        # Older history, 50 at a time as asked, comes in pages cut to the cap: ask on until has_more is off.
        seen: list[pb.ChatMessage] = []
        before = 0
        for ref in range(1, 10):
            await late.act(ref=ref, chat_history_request=pb.ChatHistoryRequest(before_id=before, limit=50))
            page = (await late.recv("chat_history_page", where=answers(ref))).chat_history_page
            assert 0 < len(page.messages) < 50
            seen[:0] = page.messages
            before = page.messages[0].id
            if not page.has_more:
                break
        assert [c.content for c in seen] == contents
        # Catch-up (newer than an id) is cut from the other end, so asking on from the last line has no gap.
        after, caught = seen[0].id, [seen[0]]
        for ref in range(20, 30):
            await late.act(ref=ref, chat_history_request=pb.ChatHistoryRequest(after_id=after, limit=50))
            page = (await late.recv("chat_history_page", where=answers(ref))).chat_history_page
            caught += page.messages
            after = page.messages[-1].id
            if not page.has_more:
                break
        assert [c.id for c in caught] == [c.id for c in seen]
        assert max(late.frames) <= CAP + 1
        await late.close()
    finally:
        await server.close()


# -- the room list -----------------------------------------------------------------------------------


async def test_a_subscriber_gets_every_room_of_a_list_larger_than_the_cap(tmp_path: Path) -> None:
    async with relay_process(tmp_path) as server, crowd(server.url, 340, "--rooms", "--per-address", "1"):
        watcher = await StrictClient.open(server.url, "watcher")
        await watcher.act(ref=3, room_list_subscribe=pb.RoomListSubscribe())
        head = await watcher.recv("room_list", where=lambda m: m.ref == 3)
        rooms, size, more = list(head.room_list.rooms), head.ByteSize(), head.room_list.more_pages
        pages = 0
        while more:
            page = (await watcher.recv("room_list_page")).room_list_page
            rooms += page.rooms
            size, more, pages = size + page.ByteSize(), page.more_pages, pages + 1
        assert size > 2 * CAP and pages >= 2 and max(watcher.frames) <= CAP + 1
        assert sorted(r.name for r in rooms if not r.is_lobby) == sorted(room_name(i) for i in range(340))
        assert {r.owner_name for r in rooms if not r.is_lobby} == {crowd_name(i) for i in range(340)}
        session, inbox = await open_session(server.url, "ann")
        try:
            session.send(pb.ClientMessage(ref=4, room_list_subscribe=pb.RoomListSubscribe()))
            whole = await inbox.wait_for(lambda m: m.HasField("room_list"), timeout=10)
            assert len(whole.room_list.rooms) == 341 and not whole.room_list.more_pages
            assert whole.ref == 4
            assert not [m for m in inbox.messages if m.HasField("room_list_page")]
        finally:
            await session.close()
        assert not server.logged("cannot send")


# -- a crowded lobby ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_newcomer_to_a_crowded_lobby_gets_the_whole_member_list(tmp_path: Path) -> None:
    """1,000 members with 32-character four-byte names: ~160 KB of members, over twice the old cap."""
    async with relay_process(tmp_path) as server, crowd(server.url, 1000):
        newcomer = await StrictClient.open(server.url)
        await newcomer.act(hello=pb.Hello(name="newcomer"))
        await newcomer.recv("welcome", timeout=10)
        state, messages, size = await newcomer.state("lobby")
        assert len(state.users) == 1001
        assert {u.name for u in state.users} == {crowd_name(i) for i in range(1000)} | {"newcomer"}
        assert size > 2 * CAP and messages >= 3 and max(newcomer.frames) <= CAP + 1
        session, inbox = await open_session(server.url, "ann")
        try:
            got = await inbox.wait_for(lambda m: m.HasField("room_state"), timeout=10)
            assert len(got.room_state.users) == 1002
        finally:
            await session.close()
        client = headless(tmp_path, server.url, "bot", "--duration", "2")
        assert client.wait(20) == 0, client.stderr
        assert "room lobby users=1002 " in client.stdout
        assert not server.logged("cannot send")
