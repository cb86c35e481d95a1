"""The client puts paged room states and lists back together (pianorhythm.tui.net.pages), on messages built by
the relay core's own pager, and a chat line the server would refuse is refused before it is sent."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pianorhythm.client import model as m
from pianorhythm.client.model import ConnectionState
from pianorhythm.client.pages import Pages
from pianorhythm.commands import chat_refusal
from pianorhythm.server.core import Limits, paging
from pianorhythm.server.main import ServerOptions, start_server
from pianorhythm.tui.engine import Engine, EngineConfig
from pianorhythm.tui.net.backoff import Backoff
from pianorhythm.tui.widgets.chat import ChatInput
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.proxy import JitterProxy
from tests.fixtures.server import TestClient, answers
from tests.tui.app_helpers import make_app, wait_for
from tests.tui.test_app_commands import command, enter_room_with_bob, system_lines
from tests.tui.test_session_reconnect import Events, entered

CLEF = "\U0001d11e"


def paged_state(users: int, lines: int, ref: int = 0) -> list[pb.ServerMessage]:
    head = pb.RoomState(name="jam", owner_id=3)
    members = [pb.User(id=i, name=CLEF * 32) for i in range(users)]
    chat = [pb.ChatMessage(id=10 + i, content=CLEF * 375) for i in range(lines)]
    return paging.room_state(head, members, chat, ref, budget=8192)


def test_a_paged_room_state_is_handed_on_once_and_whole() -> None:
    pages = Pages()
    messages = paged_state(200, 30, ref=6)
    assert len(messages) > 3
    out = [pages.feed(m) for m in messages]
    assert out[:-1] == [None] * (len(messages) - 1)
    whole = out[-1]
    assert whole is not None and whole.ref == 6
    state = whole.room_state
    assert (state.name, state.owner_id, state.more_pages) == ("jam", 3, False)
    assert [u.id for u in state.users] == list(range(200))
    assert [c.id for c in state.chat_history] == list(range(10, 40))  # in id order again


def test_a_paged_room_list_is_handed_on_once_and_whole() -> None:
    rooms = [pb.RoomSummary(name=f"{i:03d}" + CLEF * 61, owner_name=CLEF * 32) for i in range(100)]
    messages = paging.room_list(rooms, ref=2, budget=8192)
    assert len(messages) > 3
    pages = Pages()
    out = [pages.feed(m) for m in messages]
    whole = out[-1]
    assert out[:-1] == [None] * (len(messages) - 1) and whole is not None
    assert whole.ref == 2 and list(whole.room_list.rooms) == rooms


def test_unpaged_messages_pass_through_and_stray_pages_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    pages = Pages()
    single = paged_state(2, 2)
    assert len(single) == 1 and pages.feed(single[0]) is single[0]
    chat = pb.ServerMessage(chat_message=pb.ChatMessage(id=1))
    assert pages.feed(chat) is chat
    assert pages.feed(pb.ServerMessage(room_state_page=pb.RoomStatePage())) is None
    assert pages.feed(pb.ServerMessage(room_list_page=pb.RoomListPage())) is None
    assert len([r for r in caplog.records if "follows no room" in r.getMessage()]) == 2
    # A new state while one is incomplete replaces it (and says so).
    first, second = paged_state(200, 0), paged_state(150, 0)
    pages.feed(first[0])
    out = [pages.feed(m) for m in second]
    assert out[-1] is not None and len(out[-1].room_state.users) == 150
    assert any("before the last one was complete" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("a" * 500, None),
        ("a" * 501, "501 characters"),
        ("音" * 500, None),  # 1,500 bytes
        (CLEF * 375, None),
        (CLEF * 376, "1504 bytes"),
        ("  " + CLEF * 375 + "  ", None),  # surrounding spaces are stripped, as the server does
    ],
)
def test_chat_refusal_follows_the_announced_limits(text: str, refused: str | None) -> None:
    reason = chat_refusal(text, 500, 1500)
    assert reason is None if refused is None else reason is not None and refused in reason
    assert chat_refusal(text, 0, 0) is None  # a server that announces no limits


async def test_the_room_screen_refuses_an_oversized_line_and_gives_it_back(
    relay_server: Any, relay_clients: Any, config_dir: Any
) -> None:
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "cmds")
    async with app.run_test(size=(100, 30)) as pilot:
        room, bob = await enter_room_with_bob(app, pilot, relay_clients)
        await command(pilot, CLEF * 376)
        await wait_for(pilot, lambda: any("1504 bytes" in line for line in system_lines(room)))
        assert room.query_one(ChatInput).value == CLEF * 376  # kept, to shorten
        await command(pilot, CLEF * 375)
        said = await bob.recv("chat_message")
        assert said.chat_message.content == CLEF * 375  # the first line never went out


async def test_a_resume_into_a_room_of_maximal_chat_catches_up_through_cut_pages(tmp_path: Any) -> None:
    """45 lines of 1,500 bytes missed while away: a paged RoomState, then a catch-up cut into 2 pages."""
    server = await start_server(
        ServerOptions(
            port=0, db_path=tmp_path / "server.db", limits=Limits(chat_messages=100, other_burst=100)
        )
    )
    proxy = JitterProxy("127.0.0.1", server.port, delay_s=0, jitter_s=0)
    port = await proxy.start()
    backoff = Backoff(base_s=0.05, max_s=0.2, rng=random.Random(0))
    a = Engine(EngineConfig(proxy.url(), "away", room="den", token_dir=str(tmp_path), backoff=backoff))
    a_events = Events(a)
    b = await TestClient.connect(server.url)
    await a.start()
    try:
        await b.hello("stay")
        await b.act(join_room=pb.JoinRoom(name="den"))
        await a_events.wait_for(entered("den"))
        await b.act(chat_send=pb.ChatSend(content="before"))
        await a_events.wait_for(lambda e: isinstance(e, m.ChatReceived) and e.line.content == "before")
        await proxy.close()
        await a_events.wait_for(
            lambda e: isinstance(e, m.ConnectionChanged) and e.state is ConnectionState.RECONNECTING
        )
        missed = ["".join(chr(0x1F300 + (i + k) % 512) for k in range(375)) for i in range(45)]
        for ref, text in enumerate(missed, 1):
            await b.act(ref=ref, chat_send=pb.ChatSend(content=text))
            await b.recv("chat_message", where=answers(ref))
        mark = len(a_events.items)
        proxy = JitterProxy("127.0.0.1", server.port, delay_s=0, jitter_s=0)
        await proxy.start(port=port)
        state = await a_events.wait_for(entered("den", resumed=True), after=mark)
        assert [line.content for line in state.room.chat_history] == ["before", *missed]  # from 2 messages
        await a_events.wait_for(
            lambda e: isinstance(e, m.ChatHistory) and e.catch_up and not e.has_more, after=mark
        )
        catch_up = [e for e in a_events.items[mark:] if isinstance(e, m.ChatHistory) and e.catch_up]
        assert len(catch_up) == 2 and catch_up[0].has_more and not catch_up[1].has_more
        assert [line.content for e in catch_up for line in e.lines] == missed
        assert a.session.last_chat_id == state.room.chat_history[-1].id
    finally:
        await a.close()
        await b.close()
        await proxy.close()
        await server.close()
