"""The client puts paged room states and lists back together (tui.net.pages), on messages built by the
relay core's own pager, and a chat line the server would refuse is refused before it is sent."""

from __future__ import annotations

from typing import Any

import pytest

from pianorhythm.commands import chat_refusal
from pianorhythm.wire import pianorhythm_pb2 as pb
from server.core import paging
from tests.tui.app_helpers import make_app, wait_for
from tests.tui.test_app_commands import command, enter_room_with_bob, system_lines
from tui.net.pages import Pages
from tui.widgets.chat import ChatInput

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
