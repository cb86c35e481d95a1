"""Chat through the client core: duplicates dropped, the catch-up after a resume fetched page by page,
paged room states put back together. Injected time, no sockets (tests/core/client_harness.py)."""

from pianorhythm.client import model as m
from pianorhythm.client.session import CATCHUP_PAGE, CATCHUP_REF
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.core.client_harness import ClientHarness, chat, user

ANN, BOB = user(1, "ann"), user(2, "bob")


def in_den(*history: pb.ChatMessage) -> ClientHarness:
    h = ClientHarness(room="den")
    h.connect()
    h.enter("den", ANN, BOB, history=history)
    return h


def catch_up_requests(h: ClientHarness) -> list[tuple[int, int]]:
    return [(r.ref, r.chat_history_request.after_id) for r in h.sent("chat_history_request")]


def test_live_chat_already_shown_is_dropped():
    h = in_den(chat(1), chat(2))
    h.take()
    for chat_id in (2, 3, 3, 1, 4):
        h.receive(chat_message=chat(chat_id))
    assert [e.line.id for e in h.told(m.ChatReceived)] == [3, 4]
    assert h.core.link.last_chat_id == 4


def test_after_a_resume_the_missed_lines_are_fetched_page_by_page():
    h = in_den(chat(1), chat(2))
    h.receive(chat_message=chat(3))
    h.drop()
    h.connect(resumed=True)
    h.take()
    h.enter("den", ANN, BOB, history=tuple(chat(i) for i in range(3, 9)))  # the newest lines of the room
    assert catch_up_requests(h) == [(CATCHUP_REF, 3)]  # everything after the last line we showed
    assert h.sent("chat_history_request")[0].chat_history_request.limit == CATCHUP_PAGE

    h.take()
    h.receive(
        ref=CATCHUP_REF, chat_history_page=pb.ChatHistoryPage(messages=[chat(4), chat(5)], has_more=True)
    )
    assert catch_up_requests(h) == [(CATCHUP_REF, 5)]  # the next page, from its last line
    h.receive(ref=CATCHUP_REF, chat_history_page=pb.ChatHistoryPage(messages=[chat(6), chat(7), chat(8)]))
    assert catch_up_requests(h) == [(CATCHUP_REF, 5)]  # the last page: nothing more asked
    pages = h.told(m.ChatHistory)
    assert [(e.catch_up, e.has_more, [line.id for line in e.lines]) for e in pages] == [
        (True, True, [4, 5]),
        (True, False, [6, 7, 8]),
    ]
    assert h.core.link.last_chat_id == 8
    h.take()
    h.receive(chat_message=chat(8))  # the live copy of a line the catch-up brought: dropped
    h.receive(chat_message=chat(9))
    assert [e.line.id for e in h.told(m.ChatReceived)] == [9]


def test_no_catch_up_when_nothing_was_missed_or_the_room_is_another():
    h = in_den(chat(1), chat(2))
    h.drop()
    h.connect(resumed=True)
    h.take()
    h.enter("den", ANN, BOB, history=(chat(1), chat(2)))
    assert catch_up_requests(h) == []

    other = in_den(chat(1))
    other.drop()
    other.connect(resumed=True)
    other.take()
    other.enter(
        "lobby", ANN, is_lobby=True, history=(chat(7),)
    )  # sent back to the lobby: rejoin, no catch-up
    assert catch_up_requests(other) == [] and [j.join_room.name for j in other.sent("join_room")] == ["den"]


def test_a_fresh_identity_asks_for_no_catch_up():
    h = ClientHarness(room="den")
    h.connect()
    h.enter("den", ANN, BOB, history=(chat(5),))
    assert catch_up_requests(h) == []


def test_a_history_page_we_asked_for_is_not_a_catch_up():
    h = in_den(chat(10))
    h.take()
    assert h.run(h.core.request_history(before_id=10))
    ref = h.sent("chat_history_request")[0].ref
    h.receive(ref=ref, chat_history_page=pb.ChatHistoryPage(messages=[chat(8), chat(9)]))
    assert [(e.catch_up, [line.id for line in e.lines]) for e in h.told(m.ChatHistory)] == [(False, [8, 9])]


def test_a_paged_room_state_is_handed_on_once_whole_with_its_chat_in_order():
    h = ClientHarness(room="den")
    h.connect()
    h.take()
    head = pb.RoomState(name="den", users=[ANN], chat_history=[chat(3)], more_pages=True)
    h.receive(room_state=head)
    h.receive(room_state_page=pb.RoomStatePage(users=[BOB], chat_history=[chat(1)], more_pages=True))
    assert h.told(m.RoomEntered) == []
    h.receive(room_state_page=pb.RoomStatePage(users=[user(3, "cat")], chat_history=[chat(2)]))
    [entered] = h.told(m.RoomEntered)
    assert [u.name for u in entered.room.users] == ["ann", "bob", "cat"]
    assert [line.id for line in entered.room.chat_history] == [1, 2, 3]
    assert h.core.link.last_chat_id == 3
