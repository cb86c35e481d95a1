"""Relay core rules for sessions, notes, quotas and timers, driven with an injected clock (no event loop)."""

from __future__ import annotations

from pianorhythm.server.core import CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, CLOSE_REPLACED
from pianorhythm.server.core.actions import SaveChat, SaveUser
from pianorhythm.server.core.crypto import hash_token
from pianorhythm.server.core.records import UserRecord
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import START_US, Harness, notes


def test_anything_before_hello_is_refused_without_state() -> None:
    h = Harness()
    sid = h.open()
    h.send(sid, ref=7, join_room=pb.JoinRoom(name="jazz"))
    [error] = h.take(sid)
    assert error.ref == 7
    assert error.error.code == pb.ERROR_CODE_HELLO_REQUIRED
    assert error.error.message == "hello required"
    assert "jazz" not in h.core.state.rooms


def test_hello_welcomes_into_the_lobby_and_stores_the_hashed_token() -> None:
    h = Harness()
    sid = h.open()
    h.send(sid, ref=1, hello=pb.Hello(name="  Ann  ", color="#AABBCC"))
    welcome, state = h.take(sid)
    assert welcome.ref == 1
    assert welcome.welcome.user.name == "Ann"
    assert welcome.welcome.user.color == "#aabbcc"
    assert welcome.welcome.limits.note_burst == 600
    assert welcome.welcome.resumed is False
    assert state.room_state.is_lobby and state.room_state.name == "lobby"
    [saved] = [s for s in h.stored if isinstance(s, SaveUser)]
    assert saved.token_hash == hash_token(welcome.welcome.resume_token)
    assert welcome.welcome.resume_token not in saved.token_hash


def test_invalid_hello_name_is_an_error_and_the_session_stays_anonymous() -> None:
    h = Harness()
    sid = h.open()
    h.send(sid, hello=pb.Hello(name="x" * 33))
    [error] = h.take(sid)
    assert error.error.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert h.core.state.sessions[sid].user_id == 0


def test_notes_fan_out_to_others_with_offsets_and_receive_time() -> None:
    h = Harness()
    a, b, c = h.connect("a"), h.connect("b"), h.connect("c")
    h.clear(a, b, c)
    h.send(a, note_batch=notes((0, 60, 100), (1500, 64, 90), (250_000, 60, 0), base=123_456))
    assert h.take(a) == []
    for listener in (b, c):
        [msg] = h.take(listener)
        relayed = msg.notes
        assert relayed.user_id == h.user_id(a)
        assert relayed.base_time_us == 123_456
        assert relayed.server_receive_us == h.now
        assert [(e.offset_us, e.note.key, e.note.velocity) for e in relayed.events] == [
            (0, 60, 100),
            (1500, 64, 90),
            (250_000, 60, 0),
        ]


def test_invalid_note_batches_are_rejected_whole() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.clear(a, b)
    bad_batches = [
        notes((0, 128, 1)),
        notes((0, 60, 128)),
        notes((1_000_001, 60, 1)),
        notes(*[(0, 60, 1)] * 65),
        pb.NoteBatch(events=[pb.NoteEvent(offset_us=0)]),
        pb.NoteBatch(),
    ]
    for batch in bad_batches:
        h.advance(1.1)  # one note error per second is reported
        h.send(a, note_batch=batch)
        [error] = h.take(a)
        assert error.error.code == pb.ERROR_CODE_INVALID_NOTES
    assert h.take(b) == []


def test_note_burst_past_600_is_cut_and_errors_are_not_flooded() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.clear(a, b)
    for _ in range(40):  # 40 x 25 = 1000 events at one instant; only 600 fit the burst
        h.send(a, note_batch=notes(*[(0, 60, 1)] * 25), ref=1)
    delivered = sum(len(m.notes.events) for m in h.take(b))
    assert delivered == 600
    errors = h.take(a, "error")
    assert [e.error.code for e in errors] == [pb.ERROR_CODE_RATE_LIMITED]


def test_continuous_abuse_for_10_s_closes_with_1008() -> None:
    h = Harness()
    a = h.connect("a")
    for _ in range(21):
        h.send(a, update_status=pb.UpdateStatus(status=pb.STATUS_AWAY))
    assert h.take(a, "error")[-1].error.code == pb.ERROR_CODE_RATE_LIMITED
    for _ in range(100):
        h.advance(0.1)
        for _ in range(5):
            h.send(a, update_status=pb.UpdateStatus(status=pb.STATUS_AWAY))
        if a in h.closed:
            break
    assert h.closed[a][0] == CLOSE_POLICY
    assert h.now - START_US >= 10 * 1_000_000


def test_an_eight_ping_burst_is_answered_in_full() -> None:
    h = Harness()
    a = h.connect("a")
    h.clear(a)
    for i in range(8):
        h.send(a, ping=pb.Ping(client_send_us=i), ref=i)
    pongs = h.take(a)
    assert [p.pong.client_send_us for p in pongs] == list(range(8))
    assert all(p.pong.server_receive_us == h.now for p in pongs)


def test_typing_expires_after_5_s_without_stop() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.clear(a, b)
    h.send(a, typing_start=pb.TypingStart())
    assert [(t.typing.user_id, t.typing.typing) for t in h.take(b)] == [(h.user_id(a), True)]
    assert h.core.next_deadline() == h.now + 5_000_000
    h.advance(4.999)
    h.tick()
    assert h.take(b) == []
    h.advance(0.001)
    h.tick()
    assert [(t.typing.user_id, t.typing.typing) for t in h.take(b)] == [(h.user_id(a), False)]
    assert h.core.next_deadline() == START_US + 3_600_000_000  # only the hourly sweep is left


def test_chat_is_stored_before_it_is_broadcast() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.clear(a, b)
    actions = h.core.handle(
        a, pb.ClientMessage(ref=5, chat_send=pb.ChatSend(content="  hi\x07 there \n")), h.now
    )
    [save] = actions  # nothing is sent before storage has numbered the line
    assert isinstance(save, SaveChat) and [line.id for line in save.lines] == [0]
    assert (save.sender, save.user_id, save.ref) == (h.user_id(a), h.user_id(a), 5)
    assert list(h.core.state.rooms["lobby"].history) == []
    h.run(actions)
    [mine] = h.take(a, "chat_message")
    [theirs] = h.take(b, "chat_message")
    assert mine.ref == 5 and theirs.ref == 0
    assert mine.chat_message.content == "hi there" and mine.chat_message.id == 1  # storage's id
    assert mine.chat_message == theirs.chat_message
    assert [c.id for c in h.core.state.rooms["lobby"].history] == [1]


def test_lines_stored_late_go_out_in_the_order_storage_numbered_them() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.send(a, typing_start=pb.TypingStart())
    h.clear(a, b)
    first = h.core.handle(a, pb.ClientMessage(ref=1, chat_send=pb.ChatSend(content="one")), h.now)
    h.run(h.core.handle(b, pb.ClientMessage(ref=2, chat_send=pb.ChatSend(content="two")), h.now))
    assert [type(action).__name__ for action in first] == ["Broadcast", "SaveChat"]  # not typing: at once
    h.run(first)  # stored second: numbered after b's line
    assert [(m.ref, m.chat_message.id, m.chat_message.content) for m in h.take(a, "chat_message")] == [
        (0, 1, "two"),
        (1, 2, "one"),
    ]
    assert [c.id for c in h.core.state.rooms["lobby"].history] == [1, 2]
    h.clear(a, b)
    h.fail_chat = True  # storage refused it: the shell tells the sender; the core sends nothing
    h.send(a, ref=3, chat_send=pb.ChatSend(content="lost"))
    assert h.take(a, "chat_message") == h.take(b, "chat_message") == []
    assert [c.id for c in h.core.state.rooms["lobby"].history] == [1, 2]


def test_chat_rate_is_4_per_4_s() -> None:
    h = Harness()
    a = h.connect("a")
    h.clear(a)
    for i in range(5):
        h.send(a, chat_send=pb.ChatSend(content=f"m{i}"))
    assert len(h.take(a, "chat_message")) == 4
    assert h.take(a, "error")[0].error.code == pb.ERROR_CODE_RATE_LIMITED
    h.advance(1.0)
    h.send(a, chat_send=pb.ChatSend(content="again"))
    assert len(h.take(a, "chat_message")) == 1


def test_empty_and_overlong_chat_are_invalid() -> None:
    h = Harness()
    a = h.connect("a")
    h.clear(a)
    for content in ("   \x00\x01 ", "x" * 501):
        h.send(a, chat_send=pb.ChatSend(content=content))
        assert h.take(a)[0].error.code == pb.ERROR_CODE_INVALID_ARGUMENT


def test_presence_updates_reach_the_room_and_bad_values_are_rejected() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.clear(a, b)
    h.send(a, update_position=pb.UpdatePosition(position=pb.Position(x=1.5, y=2, z=-3)))
    h.send(a, update_instrument=pb.UpdateInstrument(program=40))
    h.send(a, update_status=pb.UpdateStatus(status=pb.STATUS_BUSY))
    h.send(a, update_profile=pb.UpdateProfile(name="Anna", color="#102030"))
    updates = [m.user_updated.user for m in h.take(b, "user_updated")]
    last = updates[-1]
    assert (last.position.x, last.position.y, last.position.z) == (1.5, 2.0, -3.0)
    assert (last.instrument, last.status, last.name, last.color) == (40, pb.STATUS_BUSY, "Anna", "#102030")
    for bad in (
        {"update_position": pb.UpdatePosition(position=pb.Position(x=float("nan")))},
        {"update_position": pb.UpdatePosition(position=pb.Position(y=float("inf")))},
        {"update_instrument": pb.UpdateInstrument(program=128)},
        {"update_profile": pb.UpdateProfile(color="red")},
        {"update_profile": pb.UpdateProfile(name="")},
    ):
        h.send(a, **bad)
        assert h.take(a, "error")[0].error.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert h.take(b, "user_updated") == []


def test_resume_restores_identity_and_recent_room() -> None:
    h = Harness()
    a = h.connect("ann")
    token = next(iter(h.users))
    h.send(a, join_room=pb.JoinRoom(name="jazz"))
    b = h.connect("bob")
    h.send(b, join_room=pb.JoinRoom(name="jazz"))
    h.disconnect(a)
    h.advance(60)
    a2 = h.connect("ignored", token=token)
    assert h.user_id(a2) == h.users[token].id
    assert h.core.state.sessions[a2].name == "ann"
    room = h.core.state.sessions[a2].room
    assert room is not None and room.name == "jazz"


def test_resume_after_two_minutes_goes_to_the_lobby() -> None:
    h = Harness()
    a = h.connect("ann")
    token = next(iter(h.users))
    h.send(a, join_room=pb.JoinRoom(name="jazz"))
    h.disconnect(a)
    h.advance(121)
    a2 = h.connect("ann", token=token)
    room = h.core.state.sessions[a2].room
    assert room is not None and room.is_lobby


def test_a_second_connection_with_the_same_token_replaces_the_first() -> None:
    h = Harness()
    a = h.connect("ann")
    token = next(iter(h.users))
    h.send(a, join_room=pb.JoinRoom(name="jazz"))
    b = h.connect("bob")
    h.send(b, join_room=pb.JoinRoom(name="jazz"))
    h.clear(a, b)
    a2 = h.connect("ann", token=token)
    assert h.closed[a][0] == CLOSE_REPLACED
    left = h.take(b, "user_left")
    assert [(m.user_left.user_id, m.user_left.reason) for m in left] == [
        (h.user_id(a2), pb.LEAVE_REASON_REPLACED)
    ]
    assert len(h.take(b, "user_joined")) == 1
    room = h.core.state.sessions[a2].room
    assert room is not None and room.name == "jazz" and room.owner_id == h.user_id(a2)
    h.clear(b)
    h.disconnect(a)  # the shell reports the old connection's end later: nothing more happens
    assert h.take(b) == []


def test_bad_frames_are_answered_until_ten_in_ten_seconds() -> None:
    h = Harness()
    a = h.connect("a")
    h.clear(a)
    for _ in range(9):
        h.run(h.core.bad_frame(a, pb.ERROR_CODE_BAD_PROTOBUF, "junk", h.now))
    assert [m.error.message for m in h.take(a)] == ["bad frame: junk"] * 9
    h.advance(10.1)
    h.run(h.core.bad_frame(a, pb.ERROR_CODE_EMPTY_FRAME, "empty frame", h.now))
    assert a not in h.closed
    for _ in range(9):
        h.run(h.core.bad_frame(a, pb.ERROR_CODE_EMPTY_FRAME, "empty frame", h.now))
    assert h.closed[a][0] == CLOSE_PROTOCOL_ERROR


def test_admin_commands_need_the_token() -> None:
    h = Harness()
    a = h.connect("a")
    h.clear(a)
    h.send(a, server_command=pb.ServerCommand(name="stats", admin_token="wrong"))
    assert h.take(a)[0].error.code == pb.ERROR_CODE_FORBIDDEN
    h.send(a, server_command=pb.ServerCommand(name="reboot", admin_token="secret"))
    assert h.take(a)[0].error.code == pb.ERROR_CODE_UNKNOWN_COMMAND
    h.send(a, server_command=pb.ServerCommand(name="stats", admin_token="secret"))
    result = h.take(a)[0].command_result
    assert result.ok and '"connections": 1' in result.output
    h.send(
        a,
        server_command=pb.ServerCommand(name="broadcast", args=["maintenance", "soon"], admin_token="secret"),
    )
    [line] = h.take(a, "chat_message")
    assert (line.chat_message.user_id, line.chat_message.content) == (0, "maintenance soon")


def test_disconnect_tells_the_room_and_remembers_the_room() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.send(a, join_room=pb.JoinRoom(name="r"))
    h.send(b, join_room=pb.JoinRoom(name="r"))
    h.clear(b)
    h.disconnect(a)
    [left] = h.take(b, "user_left")
    assert left.user_left.reason == pb.LEAVE_REASON_DISCONNECTED
    saved = [s.user for s in h.stored if isinstance(s, SaveUser)][-1]
    assert saved == UserRecord(h.users[next(iter(h.users))].id, "a", saved.color, "r", h.now)
