"""How the session takes what the server sends, through websockets' public `recv()`: in order across
Welcome, a message the client fails on or cannot read is logged and the connection stays. A scripted
server on loopback (real websockets) sends exactly the frames each test needs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pianorhythm.client.model import ConnectionState
from pianorhythm.tui.net.session import ClientSession, SessionConfig
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

Script = Callable[[ServerConnection], Awaitable[None]]


def chat(chat_id: int) -> bytes:
    line = pb.ChatMessage(id=chat_id, content=f"line {chat_id}")
    return codec.encode(pb.ServerMessage(chat_message=line))


def welcome() -> bytes:
    user = pb.User(id=7, name="me")
    return codec.encode(pb.ServerMessage(welcome=pb.Welcome(user=user, server_time_us=1)))


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """Start a server that waits for Hello, then runs the script and holds the connection open."""
    servers = []

    async def start(script: Script) -> str:
        async def handler(ws: ServerConnection) -> None:
            await ws.recv()  # Hello
            await script(ws)
            await ws.wait_closed()

        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


class Inbox:
    def __init__(self, fail_on: int = 0) -> None:
        self.chat_ids: list[int] = []
        self.fail_on = fail_on
        self.changed = asyncio.Event()

    def __call__(self, message: pb.ServerMessage, received_ns: int) -> None:
        if message.WhichOneof("event") != "chat_message":
            return
        self.chat_ids.append(message.chat_message.id)
        self.changed.set()
        if message.chat_message.id == self.fail_on:
            raise RuntimeError("the UI failed on this one")

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.chat_ids) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_messages_sent_with_welcome_arrive_in_order(scripted):
    async def burst(ws: ServerConnection) -> None:
        await ws.send(welcome())
        for chat_id in range(1, 21):
            await ws.send(chat(chat_id))

    inbox = Inbox()
    session = ClientSession(SessionConfig(url=await scripted(burst), name="me"), inbox)
    await session.start()
    try:
        await inbox.wait_for(20)
        assert inbox.chat_ids == list(range(1, 21))
        assert session.state is ConnectionState.CONNECTED
    finally:
        await session.close()


async def test_a_failing_or_unreadable_message_is_logged_and_the_connection_stays(scripted, caplog):
    async def trouble(ws: ServerConnection) -> None:
        await ws.send(welcome())
        await ws.send("a text frame")
        await ws.send(chat(1))  # the client's handler raises on this one
        await ws.send(chat(2))

    inbox = Inbox(fail_on=1)
    session = ClientSession(SessionConfig(url=await scripted(trouble), name="me"), inbox)
    caplog.set_level(logging.WARNING, logger="pianorhythm.tui.net.session")
    await session.start()
    try:
        await inbox.wait_for(2)
        assert inbox.chat_ids == [1, 2]
        assert session.state is ConnectionState.CONNECTED
        logged = [(r.levelno, r.getMessage()) for r in caplog.records]
        assert any(level == logging.WARNING and "bad frame" in text for level, text in logged), logged
        assert (logging.ERROR, "handling a message from the server failed") in logged
    finally:
        await session.close()
