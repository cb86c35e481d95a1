"""Paging by bytes in the relay core: every message fits the frame cap, and the pages add up to the whole.

Exact, no event loop: the core is driven through the harness with injected time.
"""

from __future__ import annotations

import pytest

from pianorhythm.server.core import Broadcast, Limits, Reply, SendTo, paging
from pianorhythm.server.core.actions import Action, Persist
from pianorhythm.server.core.models import LOBBY, Session
from pianorhythm.server.core.records import ChatRecord
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import Harness

PAGE = Limits().page_bytes
CLEF = "\U0001d11e"  # 𝄞, four bytes of UTF-8


def max_line(i: int, chars: int = 375) -> str:
    """A chat line of `chars` four-byte characters, different for each i (375 = the 1,500-byte cap)."""
    return "".join(chr(0x1F300 + (i * 7 + k) % 512) for k in range(chars))


def four_byte_name(i: int) -> str:
    """A 32-character name of four-byte characters (128 bytes), unique for i < 512**2."""
    return chr(0x1F300 + i % 512) + chr(0x1F300 + i // 512 % 512) + CLEF * 30


def sends(actions: list[Action]) -> list[Broadcast | SendTo | Reply]:
    out: list[Broadcast | SendTo | Reply] = []
    for action in actions:
        if isinstance(action, Broadcast | SendTo | Reply):
            out.append(action)
        elif isinstance(action, Persist):
            out.extend(sends(list(action.then)))
    return out


class Sized(Harness):
    """A harness that also checks every payload the core hands out against the page budget."""

    largest = 0

    def run(self, actions: list[Action]) -> None:
        for send in sends(actions):
            assert len(send.payload) <= PAGE, f"a {len(send.payload)}-byte payload"
            self.largest = max(self.largest, len(send.payload))
        super().run(actions)


def assemble_state(messages: list[pb.ServerMessage]) -> tuple[pb.RoomState, int]:
    """The RoomState and pages at the head of `messages`, checked and put together; (state, pages)."""
    head, *rest = messages
    state = pb.RoomState()
    state.CopyFrom(head.room_state)
    chat = [[line.id for line in head.room_state.chat_history]]
    more, pages = head.room_state.more_pages, 1
    for message in rest:
        if not more:
            break
        assert message.WhichOneof("event") == "room_state_page", "pages come back to back"
        state.users.extend(message.room_state_page.users)
        state.chat_history.extend(message.room_state_page.chat_history)
        chat.append([line.id for line in message.room_state_page.chat_history])
        more, pages = message.room_state_page.more_pages, pages + 1
    assert not more, "the last page says no more"
    ids = [i for part in reversed(chat) for i in part]
    assert ids == sorted(ids), "oldest first in each page, each page older than the one before"
    ordered = pb.RoomState()
    ordered.CopyFrom(state)
    del ordered.chat_history[:]
    ordered.chat_history.extend(sorted(state.chat_history, key=lambda line: line.id))
    return ordered, pages


def seat(h: Harness, count: int) -> list[Session]:
    """Put `count` members with 32-character four-byte names in the lobby directly.

    Joining them one by one builds the lobby's state for each (5,000 members: 12.5 M user entries, ~90 s),
    so they are seated as _enter would leave them (and routed as its RoomEntered would be); the newcomer then
    joins through the real path.
    """
    core = h.core
    lobby = core.state.rooms[LOBBY]
    seated = []
    for i in range(count):
        session = core.open_session(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", h.now)
        session.user_id, session.name, session.color = next(h.user_ids), four_byte_name(i), "#123456"
        core.state.by_user[session.user_id] = session
        session.room, session.joined_room_us = lobby, h.now
        lobby.members[session.user_id] = session
        h.online[session.user_id] = h.members[LOBBY][session.user_id] = session.id
        seated.append(session)
    return seated


# -- the splitter ------------------------------------------------------------------------------------


def test_split_fills_each_page_and_gives_an_oversized_item_a_page_of_its_own() -> None:
    assert paging.split([], 10, 10) == [(0, 0)]
    assert paging.split([4, 4, 4, 4], 8, 8) == [(0, 2), (2, 4)]
    assert paging.split([4, 4, 4], 4, 8) == [(0, 1), (1, 3)]
    assert paging.split([3, 20, 3], 10, 10) == [(0, 1), (1, 2), (2, 3)]


def test_item_cost_counts_the_tag_and_the_length_varint() -> None:
    line = pb.ChatMessage(id=7, content=max_line(1))
    parent = pb.ChatHistoryPage(messages=[line])
    assert paging.item_cost(line.ByteSize()) == parent.ByteSize()
    assert paging.item_cost(127) == 129 and paging.item_cost(128) == 131


@pytest.mark.parametrize("budget", [600, 4096, PAGE])
def test_room_state_pages_stay_within_any_budget_and_add_up(budget: int) -> None:
    users = [pb.User(id=i, name=four_byte_name(i), color="#abcdef") for i in range(300)]
    chat = [pb.ChatMessage(id=100 + i, content=max_line(i, 100)) for i in range(50)]
    head = pb.RoomState(name=CLEF * 64, settings=pb.RoomSettings(user_limit=100))
    messages = paging.room_state(head, users, chat, ref=9, budget=budget)
    assert all(m.ByteSize() <= budget for m in messages)
    assert messages[0].ref == 9 and messages[0].room_state.name == CLEF * 64
    state, pages = assemble_state(messages)
    assert pages == len(messages) > 1
    assert [u.id for u in state.users] == list(range(300))
    assert sorted(c.id for c in state.chat_history) == list(range(100, 150))


# -- chat capped in bytes ----------------------------------------------------------------------------


def test_chat_is_capped_in_bytes_as_well_as_characters() -> None:
    h = Harness()
    a = h.connect("a")
    assert h.core.limits.max_chat_bytes == 1500
    h.clear(a)
    h.send(a, ref=1, chat_send=pb.ChatSend(content=CLEF * 376))  # 376 characters, 1,504 bytes
    [error] = h.take(a, "error")
    assert error.ref == 1 and error.error.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert "1504" in error.error.message and "1500 bytes" in error.error.message
    for ref, text in ((2, CLEF * 375), (3, "é" * 500), (4, "音" * 500)):  # 1,500 bytes each
        h.send(a, ref=ref, chat_send=pb.ChatSend(content=text))
        assert h.take(a, "chat_message")[0].chat_message.content == text
    assert not h.take(a, "error")


def test_the_byte_cap_is_announced_in_welcome() -> None:
    h = Harness()
    sid = h.open()
    h.send(sid, hello=pb.Hello(name="a"))
    limits = h.take(sid, "welcome")[0].welcome.limits
    assert (limits.max_chat_chars, limits.max_chat_bytes) == (500, 1500)


def test_admin_broadcast_is_capped_in_bytes_too() -> None:
    h = Harness()
    a = h.connect("a")
    h.clear(a)
    h.send(a, server_command=pb.ServerCommand(name="broadcast", args=[CLEF * 376], admin_token="secret"))
    [result] = h.take(a, "command_result")
    assert not result.command_result.ok and result.command_result.output.startswith("Nothing sent: ")
    assert not h.take(a, "chat_message")


# -- late joiners of a room full of maximal chat -------------------------------------------------------


def test_a_late_joiner_gets_all_50_maximal_lines_in_pages_within_the_cap() -> None:
    h = Sized()
    authors = [h.connect(f"author{i}") for i in range(13)]
    for sid in authors:
        h.send(sid, join_room=pb.JoinRoom(name="loud"))
    for i in range(52):  # 4 lines per author within the chat quota
        h.send(authors[i // 4], chat_send=pb.ChatSend(content=max_line(i)))
    late = h.connect("late")
    h.clear(late)
    h.send(late, ref=5, join_room=pb.JoinRoom(name="loud"))
    state, pages = assemble_state(h.inbox[late])
    assert pages == 2  # 50 lines of ~1.5 KB: 78 KB
    assert h.inbox[late][0].ref == 5
    assert [c.content for c in state.chat_history] == [max_line(i) for i in range(2, 52)]
    assert len(state.users) == 14
    # The RoomState holds the newest lines (so a client could show the end of the chat first).
    assert h.inbox[late][0].room_state.chat_history[-1].content == max_line(51)


def test_legacy_lines_of_500_four_byte_characters_reach_a_late_joiner() -> None:
    """Lines stored before the byte cap (2,000 bytes each) are preloaded and paged like any others."""
    h = Sized()
    records = [ChatRecord(i + 1, "old", 1, "x", "#000000", max_line(i, 500), h.now) for i in range(50)]
    h.core.preload_chat("old", records)
    a = h.connect("a")
    h.clear(a)
    h.send(a, join_room=pb.JoinRoom(name="old"))
    state, pages = assemble_state(h.inbox[a])
    assert pages == 2
    assert [c.content for c in state.chat_history] == [r.content for r in records]


def test_clear_chat_sends_everyone_a_paged_state() -> None:
    h = Sized()
    a = h.connect("a")
    seat(h, 1200)
    h.clear(a)
    h.send(a, server_command=pb.ServerCommand(name="clear_chat", args=["lobby"], admin_token="secret"))
    state, pages = assemble_state(h.take(a, "room_state") + h.take(a, "room_state_page"))
    assert len(state.users) == 1201 and pages == 4  # 1,200 x 158 bytes: 190 KB


def test_history_pages_are_cut_by_bytes_keeping_the_side_the_next_request_continues_from() -> None:
    lines = [pb.ChatMessage(id=i, content=max_line(i, 500)) for i in range(1, 51)]
    older = paging.history_page(lines, has_more=False, newer=False, ref=3, budget=PAGE)
    kept = [m.id for m in older.chat_history_page.messages]
    assert older.ByteSize() <= PAGE and older.chat_history_page.has_more and older.ref == 3
    assert kept == list(range(51 - len(kept), 51)) and 20 < len(kept) < 50  # the newest lines
    newer = paging.history_page(lines, has_more=False, newer=True, ref=3, budget=PAGE)
    assert [m.id for m in newer.chat_history_page.messages] == list(range(1, len(kept) + 1))  # the oldest
    whole = paging.history_page(lines[:10], has_more=False, newer=False, ref=0, budget=PAGE)
    assert len(whole.chat_history_page.messages) == 10 and not whole.chat_history_page.has_more


# -- a crowded lobby ---------------------------------------------------------------------------------


def test_a_newcomer_to_a_lobby_of_5000_gets_every_member_within_the_cap() -> None:
    h = Sized()
    members = seat(h, 4999)
    h.send(members[0].id, chat_send=pb.ChatSend(content=max_line(0)))
    newcomer = h.open("10.200.0.1")
    h.send(newcomer, hello=pb.Hello(name=four_byte_name(5000)))  # every payload checked by Sized
    messages = h.inbox[newcomer]
    assert messages[0].WhichOneof("event") == "welcome"
    state, pages = assemble_state(messages[1:])
    assert len(state.users) == 5000
    assert {u.id for u in state.users} == {s.user_id for s in members} | {h.user_id(newcomer)}
    assert [c.content for c in state.chat_history] == [max_line(0)]
    assert pages >= 11  # ~650 KB of members, ~10x the old cap
    assert h.largest > PAGE * 0.95  # pages are filled, not cut short
    assert [m.WhichOneof("event") for m in h.inbox[members[1].id]] == ["chat_message", "user_joined"]
    # Everything else the newcomer may do in the crowd stays within the cap as well.
    h.clear(newcomer)
    h.send(newcomer, join_room=pb.JoinRoom(name="lobby"))
    h.send(newcomer, leave_room=pb.LeaveRoom())
    state, _ = assemble_state(h.take(newcomer, "room_state") + h.take(newcomer, "room_state_page"))
    assert len(state.users) == 5000


def test_a_room_list_larger_than_the_cap_comes_in_pages() -> None:
    h = Sized()
    owners = seat(h, 400)
    for i, owner in enumerate(owners):  # 400 rooms with 64-character four-byte names
        h.send(owner.id, join_room=pb.JoinRoom(name=chr(0x1F300 + i % 512) + f"{i:03d}" + CLEF * 60))
    a = h.connect("a")
    h.clear(a)
    h.send(a, ref=4, room_list_subscribe=pb.RoomListSubscribe())
    first, *pages = h.inbox[a]
    assert first.ref == 4 and first.room_list.more_pages
    assert [p.WhichOneof("event") for p in pages] == ["room_list_page"] * len(pages)
    assert len(pages) >= 2 and not pages[-1].room_list_page.more_pages
    assert all(p.room_list_page.more_pages for p in pages[:-1])
    rooms = [*first.room_list.rooms, *(r for p in pages for r in p.room_list_page.rooms)]
    assert len(rooms) == 401  # and the lobby
    assert [r.name for r in rooms] == sorted(r.name for r in rooms)
    assert {r.owner_name for r in rooms if not r.is_lobby} == {o.name for o in owners}


def test_room_list_deltas_are_split_when_many_rooms_change_at_once() -> None:
    upserted = [pb.RoomSummary(name=CLEF * 64 + str(i), owner_name=CLEF * 32) for i in range(400)]
    removed = [CLEF * 64 + f"gone{i}" for i in range(200)]
    deltas = paging.room_list_deltas(upserted, removed, PAGE)
    assert len(deltas) >= 3 and all(d.ByteSize() <= PAGE for d in deltas)
    assert [u for d in deltas for u in d.room_list_delta.upserted] == upserted
    assert [r for d in deltas for r in d.room_list_delta.removed] == removed
