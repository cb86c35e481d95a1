"""Bounded growth in the relay core, with an injected clock: the per-address room-creation bucket, recent
rooms that expire, stored rooms and users swept after 30 days, and maps that empty when their owners go."""

from __future__ import annotations

from pianorhythm.server.core.actions import DeleteRoom, MemoryReport, PruneUsers, SaveRoom, SaveUser
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import SEC, START_US, Harness

DAY_S = 86_400
DAY = DAY_S * SEC


def hello_from(h: Harness, ip: str, name: str = "x") -> int:
    sid = h.open(ip)
    h.send(sid, hello=pb.Hello(name=name))
    h.clear(sid)
    return sid


def join(h: Harness, sid: int, room: str) -> pb.ServerMessage:
    """The answer to joining `room`: its room_state or an error."""
    h.send(sid, ref=9, join_room=pb.JoinRoom(name=room))
    [answer] = [m for m in h.take(sid) if m.ref == 9]
    return answer


def test_ten_new_rooms_at_once_then_one_a_minute_per_address() -> None:
    h = Harness()
    sid = hello_from(h, "10.0.0.7")
    for index in range(10):
        assert join(h, sid, f"room-{index}").room_state.name == f"room-{index}"
    refused = join(h, sid, "room-10")
    assert refused.error.code == pb.ERROR_CODE_RATE_LIMITED
    assert refused.error.retry_after_ms == 60_000
    assert refused.error.message == (
        "Too many new rooms from your address (joining an existing room still works); try again in 60 s."
    )
    assert "room-10" not in h.core.state.rooms and "room-10" not in h.core.state.persisted
    h.advance(30)
    assert join(h, sid, "room-10").error.retry_after_ms == 30_000
    h.advance(30)
    assert join(h, sid, "room-10").room_state.name == "room-10"
    assert join(h, sid, "room-11").error.code == pb.ERROR_CODE_RATE_LIMITED
    assert h.core.state.counters["rate_limited"] == 3


def test_existing_and_stored_rooms_cost_nothing_and_other_addresses_have_their_own_bucket() -> None:
    h = Harness()
    owner = hello_from(h, "10.0.0.1", "owner")
    for index in range(10):
        join(h, owner, f"mine-{index}")
    # All ten are stored (empty but the last); going back to any of them is free.
    for index in range(10):
        assert join(h, owner, f"mine-{index}").room_state.name == f"mine-{index}"
    other = hello_from(h, "10.0.0.2", "other")
    assert join(h, other, "mine-3").room_state.name == "mine-3"  # live: someone else's room
    assert join(h, other, "mine-4").room_state.name == "mine-4"  # stored, empty
    assert join(h, other, "theirs").room_state.name == "theirs"
    assert join(h, owner, "one-too-many").error.code == pb.ERROR_CODE_RATE_LIMITED


def test_an_ipv6_slash_64_is_one_address() -> None:
    h = Harness()
    for index in range(10):
        sid = hello_from(h, f"2001:db8:1:2::{index + 1:x}")
        assert join(h, sid, f"v6-{index}").room_state.name == f"v6-{index}"
    sid = hello_from(h, "2001:db8:1:2:ffff::1")
    assert join(h, sid, "v6-10").error.code == pb.ERROR_CODE_RATE_LIMITED
    elsewhere = hello_from(h, "2001:db8:1:3::1")
    assert join(h, elsewhere, "v6-10").room_state.name == "v6-10"


def test_a_creation_bucket_is_forgotten_once_it_has_refilled() -> None:
    h = Harness()
    sid = hello_from(h, "10.0.0.7")
    for index in range(10):
        join(h, sid, f"room-{index}")
    assert set(h.core.state.room_creations.buckets) == {"10.0.0.7"}
    assert h.core.next_deadline() == START_US + 60 * SEC  # the throttle sweep
    h.now = START_US + 540 * SEC
    h.tick()
    assert set(h.core.state.room_creations.buckets) == {"10.0.0.7"}  # 9 of its 10 tokens back
    h.now = START_US + 660 * SEC
    h.tick()
    assert h.core.state.room_creations.buckets == {}


def test_a_recent_room_expires_with_the_resume_window() -> None:
    h = Harness()
    sid = h.connect("ann")
    token = next(iter(h.users))
    join(h, sid, "jazz")
    h.advance(0.5)
    h.disconnect(sid)
    left = h.now
    assert h.core.state.recent_rooms == {1: ("jazz", left)}
    # Rounded up to a whole second: a churn of leaves wakes the timer at most once a second. (The
    # earliest deadline is the 60 s throttle sweep armed by creating "jazz".)
    assert h.core.upkeep.upkeep_deadline() == -(-(left + 120 * SEC) // SEC) * SEC
    h.now = left + 120 * SEC - 1
    h.tick()
    assert h.core.state.recent_rooms
    h.now = left + 120 * SEC
    h.tick()
    assert h.core.state.recent_rooms == {}
    again = h.connect("ann", token)
    assert h.core.state.sessions[again].room is h.core.state.rooms["lobby"]


def test_recent_rooms_stay_oldest_first_when_a_user_leaves_again() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    join(h, a, "one")
    join(h, b, "two")
    h.disconnect(a)
    h.advance(60)
    h.disconnect(b)
    a2 = h.connect("a", next(t for t, u in h.users.items() if u.name == "a"))
    assert h.core.state.sessions[a2].room is h.core.state.rooms["one"]
    h.advance(30)
    h.disconnect(a2)
    assert list(h.core.state.recent_rooms) == [2, 1]  # b (user 2) left first
    h.advance(30)  # b left 60 s ago, a 30 s ago: neither expired
    h.tick()
    assert list(h.core.state.recent_rooms) == [2, 1]
    h.advance(60)  # b's window ends, a's does not
    h.tick()
    assert list(h.core.state.recent_rooms) == [1]


def test_a_stored_room_nobody_entered_for_30_days_is_forgotten_with_its_bans() -> None:
    h = Harness()
    owner, guest = h.connect("owner"), h.connect("guest")
    join(h, owner, "old")
    join(h, guest, "old")
    h.send(owner, ban_user=pb.BanUser(user_id=h.user_id(guest), duration_s=60))
    join(h, owner, "lobby")
    emptied = h.now
    assert h.core.state.persisted["old"].last_used_us == emptied
    h.stored.clear()
    h.now = emptied + 30 * DAY - 1
    h.tick()  # the hourly sweep runs: 1 µs short of 30 days, the room stays
    assert "old" in h.core.state.persisted
    assert not [s for s in h.stored if isinstance(s, DeleteRoom)]
    h.now = h.core.next_deadline() or 0
    assert h.now == emptied + 30 * DAY - 1 + 3_600 * SEC
    h.tick()
    assert "old" not in h.core.state.persisted
    assert [s for s in h.stored if isinstance(s, DeleteRoom)] == [DeleteRoom("old")]
    # The name is new again: it costs a creation, and the old ban is gone.
    assert join(h, guest, "old").room_state.owner_id == h.user_id(guest)


def test_an_occupied_or_recently_emptied_room_is_kept() -> None:
    h = Harness()
    sitter, visitor = h.connect("sitter"), h.connect("visitor")
    join(h, sitter, "busy")
    join(h, visitor, "quiet")
    h.advance(20 * DAY_S)
    join(h, visitor, "quiet-2")  # "quiet" empties now: its 30 days start again
    h.advance(15 * DAY_S)
    h.tick()
    assert {"busy", "quiet"} <= set(h.core.state.persisted)
    h.advance(15 * DAY_S)
    h.tick()
    assert "quiet" not in h.core.state.persisted
    assert "busy" in h.core.state.persisted  # 50 days old, but someone is in it
    join(h, sitter, "lobby")
    saved = [s.room for s in h.stored if isinstance(s, SaveRoom) and s.room.name == "busy"]
    assert saved[-1].last_used_us == h.now


def test_users_are_pruned_after_30_days_except_those_online() -> None:
    h = Harness()
    [first] = [s for s in h.stored if isinstance(s, PruneUsers)]
    assert first == PruneUsers(START_US - 30 * DAY, frozenset())
    a = h.connect("a")
    [new] = [s for s in h.stored if isinstance(s, SaveUser)]
    assert new.user.last_seen_us == h.now  # a new user counts as seen when it arrives
    h.advance(3_600)
    h.tick()
    [_, second] = [s for s in h.stored if isinstance(s, PruneUsers)]
    assert second == PruneUsers(h.now - 30 * DAY, frozenset({h.user_id(a)}))


def test_close_room_deletes_it_after_its_members_are_out() -> None:
    h = Harness()
    owner, ops = h.connect("owner"), h.connect("ops")
    join(h, owner, "doomed")
    h.stored.clear()
    h.send(ops, server_command=pb.ServerCommand(name="close_room", args=["doomed"], admin_token="secret"))
    assert [type(s).__name__ for s in h.stored if isinstance(s, SaveRoom | DeleteRoom)] == [
        "SaveRoom",
        "DeleteRoom",
    ]
    assert "doomed" not in h.core.state.persisted


def test_preloaded_chat_of_a_refused_join_is_let_go_at_the_sweep() -> None:
    h = Harness()
    sid = h.connect("a")
    for index in range(10):
        join(h, sid, f"room-{index}")
    h.core.preload_chat("one-too-many", [])
    assert join(h, sid, "one-too-many").error.code == pb.ERROR_CODE_RATE_LIMITED
    assert "one-too-many" in h.core.state.preloaded_chat
    h.advance(3_600)
    h.tick()
    assert h.core.state.preloaded_chat == {}


def test_memory_command_is_admin_only_and_left_to_the_shell() -> None:
    h = Harness()
    sid = h.connect("a")
    h.clear(sid)
    actions = h.core.handle(
        sid,
        pb.ClientMessage(ref=4, server_command=pb.ServerCommand(name="memory", admin_token="secret")),
        h.now,
    )
    assert actions == [MemoryReport(h.user_id(sid), 4)]
    h.send(sid, ref=5, server_command=pb.ServerCommand(name="memory", admin_token="wrong"))
    assert h.take(sid)[0].error.code == pb.ERROR_CODE_FORBIDDEN


def test_every_map_empties_after_a_churn_of_sessions() -> None:
    """300 users from 30 addresses join, chat, type and go (half leave first, half drop in the room):
    once the resume window and one creation-bucket refill have passed, no session-, user-, address- or
    typing-sized map holds anything."""
    h = Harness()
    for cycle in range(300):
        sid = hello_from(h, f"10.0.{cycle % 30}.1", f"u{cycle}")
        join(h, sid, f"room-{cycle % 5}")
        h.send(sid, chat_send=pb.ChatSend(content="hi"))
        h.send(sid, typing_start=pb.TypingStart())
        h.send(sid, room_list_subscribe=pb.RoomListSubscribe())
        if cycle % 2:
            join(h, sid, "lobby")
        h.disconnect(sid)
        h.advance(0.01)
    assert h.core.state.recent_rooms  # the ones that dropped in a room may still resume into it
    h.advance(600)
    h.tick()
    census = h.core.census()
    assert census == {
        "sessions": 0,
        "users_online": 0,
        "rooms": 1,  # the lobby
        "rooms_stored": 5,
        "typing": 0,
        "recent_rooms": 0,
        "preloaded_chats": 0,
        "throttled_addresses": 0,
        "throttled_rooms": 0,
        "room_list_subscribers": 0,
        "rooms_listed": 1,
    }
