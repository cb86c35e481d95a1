"""A room's note fan-out budget (Limits.room_fanout_*): shared by its players, per room, smaller while other
rooms are active, never abuse."""

from __future__ import annotations

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import Harness, notes


def _budget(rate: int) -> dict[str, int]:
    """The same budget whether or not other rooms are active."""
    return {"room_fanout_rate": rate, "room_fanout_burst": rate, "room_fanout_shared_rate": rate}


def _room(h: Harness, name: str, size: int) -> list[int]:
    members = [h.connect(f"{name}{index}") for index in range(size)]
    if name != "lobby":
        for sid in members:
            h.send(sid, join_room=pb.JoinRoom(name=name))
    h.clear(*members)
    return members


def _delivered(h: Harness, sid: int) -> int:
    return len(h.take(sid, "notes"))


def test_the_budget_is_shared_by_the_rooms_players_and_refills() -> None:
    h = Harness(**_budget(100))
    a, b, *listeners = _room(h, "lobby", 11)  # every batch costs 10 deliveries
    for _ in range(6):
        h.send(a, note_batch=notes((0, 60, 90)))
    for _ in range(6):
        h.send(b, note_batch=notes((0, 62, 90)))
    assert _delivered(h, listeners[0]) == 10  # 100 deliveries: 10 of the 12 batches
    assert [e.error.code for e in h.take(b, "error")] == [pb.ERROR_CODE_RATE_LIMITED]
    h.advance(0.1)  # 10 more deliveries: one more batch
    h.send(a, note_batch=notes((0, 60, 0)))
    h.send(a, note_batch=notes((0, 60, 0)))
    assert _delivered(h, listeners[0]) == 1


def test_a_refused_batch_costs_the_player_nothing() -> None:
    h = Harness(**_budget(10), note_rate=2, note_burst=64)
    a, *_ = _room(h, "lobby", 11)
    h.send(a, note_batch=notes(*[(0, 60, 90)] * 64))  # uses the room's budget and all of a's notes
    h.advance(1.0)  # the room refills; a's own bucket gains 2 notes
    h.send(a, note_batch=notes((0, 60, 0)))
    assert h.core.state.sessions[a].notes.tokens == 1
    h.send(a, note_batch=notes((0, 60, 0)))  # the room is empty again: refused, the note handed back
    assert h.core.state.sessions[a].notes.tokens == 1
    assert h.core.state.counters["room_fanout_limited"] == 1


def test_one_busy_room_does_not_touch_another_rooms_budget() -> None:
    h = Harness(**_budget(20))
    crowd = _room(h, "lobby", 11)
    quiet = _room(h, "quiet", 3)
    for _ in range(5):
        h.send(crowd[0], note_batch=notes((0, 60, 90)))
    assert _delivered(h, crowd[1]) == 2
    for _ in range(10):  # 2 deliveries each: all 10 fit the quiet room's own 20
        h.send(quiet[0], note_batch=notes((0, 60, 90)))
    assert _delivered(h, quiet[1]) == 10
    assert h.take(quiet[0], "error") == []


def test_a_room_bigger_than_the_burst_still_hears_one_batch_per_refill() -> None:
    h = Harness(**_budget(5))
    a, b, *_ = _room(h, "lobby", 9)
    h.send(a, note_batch=notes((0, 60, 90)))
    h.send(a, note_batch=notes((0, 60, 0)))
    assert _delivered(h, b) == 1
    h.advance(1.0)
    h.send(a, note_batch=notes((0, 60, 0)))
    assert _delivered(h, b) == 1


def test_a_player_held_by_the_room_budget_is_never_closed_as_an_abuser() -> None:
    h = Harness(**_budget(10))
    a, *_ = _room(h, "lobby", 11)
    errors = 0
    for _ in range(150):  # 15 s of 10 batches/s into a room that takes 1/s, inside a's own note quota
        for _ in range(10):
            h.send(a, note_batch=notes((0, 60, 90)))
        errors += len(h.take(a, "error"))
        h.advance(0.1)
    assert a not in h.closed
    assert 14 <= errors <= 16  # told once a second, not once per refused batch


def test_a_room_gets_the_shared_budget_while_another_room_plays() -> None:
    h = Harness(room_fanout_rate=100, room_fanout_burst=100, room_fanout_shared_rate=20, room_active_s=2)
    crowd = _room(h, "lobby", 11)
    quiet = _room(h, "quiet", 2)
    for _ in range(12):
        h.send(crowd[0], note_batch=notes((0, 60, 90)))
    assert _delivered(h, crowd[1]) == 10  # alone: the full 100
    h.advance(1.0)
    h.send(quiet[0], ping=pb.Ping(client_send_us=1))  # a clock ping is not play: the room stays idle
    for _ in range(12):
        h.send(crowd[0], note_batch=notes((0, 60, 90)))
    assert _delivered(h, crowd[1]) == 10
    h.advance(1.0)
    h.send(quiet[0], note_batch=notes((0, 64, 80)))  # the quiet room plays
    for _ in range(12):
        h.send(crowd[0], note_batch=notes((0, 60, 90)))
    assert _delivered(h, crowd[1]) == 2  # shared: the bucket holds at most 20
    h.advance(2.1)  # the quiet room has been silent for longer than room_active_s
    for _ in range(12):
        h.send(crowd[0], note_batch=notes((0, 60, 90)))
    assert _delivered(h, crowd[1]) == 10


def test_welcome_announces_the_room_budget() -> None:
    h = Harness(room_fanout_rate=1234, room_fanout_burst=2345, room_fanout_shared_rate=345)
    sid = h.open()
    h.send(sid, hello=pb.Hello(name="ann"))
    limits = h.take(sid, "welcome")[0].welcome.limits
    assert (limits.room_fanout_rate, limits.room_fanout_burst) == (1234, 2345)
    assert limits.room_fanout_shared_rate == 345
