"""Issue 14, item 1 (relay side): each member's uplink spread and floor, from their pings, in presence."""

from __future__ import annotations

from pianorhythm.server.core.relay import SPREAD_SHARE_US
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import SEC, Harness

CLIENT_BEHIND_US = 5 * SEC  # the client's clock runs this far behind the server's: the spread ignores it


def ping_with_uplink(h: Harness, sid: int, uplink_ms: float, stamp_offset_us: int | None = None) -> None:
    """A ping that took `uplink_ms` on its way up (the server receives it at h.now), optionally saying the
    offset the client stamps its notes with."""
    ping = pb.Ping(client_send_us=h.now - CLIENT_BEHIND_US - round(uplink_ms * 1000))
    if stamp_offset_us is not None:
        ping.stamp_offset_us = stamp_offset_us
    h.send(sid, ping=ping)


def spreads_seen(h: Harness, sid: int, about: int) -> list[int]:
    return [
        m.user_updated.user.uplink_spread_us
        for m in h.take(sid, "user_updated")
        if m.user_updated.user.id == about
    ]


def test_the_room_learns_a_members_uplink_spread_from_their_pings_a_few_bytes_every_few_seconds() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    for sid in (a, b):
        h.send(sid, join_room=pb.JoinRoom(name="jam"))
    h.clear(a, b)
    ping_with_uplink(h, a, 10)
    assert spreads_seen(h, b, h.user_id(a)) == []  # one ping: no spread yet
    h.advance(0.025)
    ping_with_uplink(h, a, 40)
    assert spreads_seen(h, b, h.user_id(a)) == [30_000]  # the first figure goes at once
    h.advance(0.5)
    ping_with_uplink(h, a, 55)
    assert spreads_seen(h, b, h.user_id(a)) == [45_000]  # grown: at once, or their notes would be late
    for _ in range(30):  # 3 s later the first ping (10 ms) leaves the window of 32: 20-55 ms
        h.advance(0.1)
        ping_with_uplink(h, a, 20)
    assert spreads_seen(h, b, h.user_id(a)) == [35_000]
    for _ in range(2):  # 40 and 55 leave too: 0 now, but the last share is 0.2 s old
        h.advance(0.1)
        ping_with_uplink(h, a, 20)
    assert spreads_seen(h, b, h.user_id(a)) == []
    h.advance(SPREAD_SHARE_US / SEC)
    ping_with_uplink(h, a, 20)
    assert spreads_seen(h, b, h.user_id(a)) == [0]
    h.advance(SPREAD_SHARE_US / SEC)
    ping_with_uplink(h, a, 20)
    assert spreads_seen(h, b, h.user_id(a)) == []  # unchanged: nothing sent


def test_a_newcomer_gets_the_spread_in_the_room_state() -> None:
    h = Harness()
    a = h.connect("a")
    h.send(a, join_room=pb.JoinRoom(name="jam"))
    for uplink_ms in (12, 30, 18):
        ping_with_uplink(h, a, uplink_ms)
        h.advance(0.025)
    b = h.connect("b")
    h.clear(b)
    h.send(b, join_room=pb.JoinRoom(name="jam"))
    (state,) = h.take(b, "room_state")
    assert {u.name: u.uplink_spread_us for u in state.room_state.users}["a"] == 18_000


def figures_seen(h: Harness, sid: int, about: int) -> list[tuple[int, int]]:
    return [
        (m.user_updated.user.uplink_floor_us, m.user_updated.user.uplink_spread_us)
        for m in h.take(sid, "user_updated")
        if m.user_updated.user.id == about
    ]


def test_the_uplink_floor_is_the_lowest_way_up_against_the_offset_the_member_stamps_with() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    for sid in (a, b):
        h.send(sid, join_room=pb.JoinRoom(name="jam"))
    h.clear(a, b)
    # The client thinks it is 5 s - 2 ms behind (its estimate is 2 ms off): a note it stamps now shows
    # relay time - stamp = the way up - 2 ms, so the lowest of 12, 40 ms is a 10 ms floor.
    stamp_offset = CLIENT_BEHIND_US + 2_000
    ping_with_uplink(h, a, 12, stamp_offset)
    h.advance(0.025)
    ping_with_uplink(h, a, 40, stamp_offset)
    assert figures_seen(h, b, h.user_id(a)) == [(10_000, 28_000)]  # both at once, from the second ping
    h.advance(0.5)
    ping_with_uplink(h, a, 8, stamp_offset)  # a lower way up: the floor moved, their notes sit on it
    assert figures_seen(h, b, h.user_id(a)) == [(6_000, 32_000)]  # at once
    h.advance(0.5)
    ping_with_uplink(h, a, 8, stamp_offset - 5_000)  # they now stamp 5 ms earlier: every transit 5 ms up
    assert figures_seen(h, b, h.user_id(a)) == [(11_000, 32_000)]  # at once
    for _ in range(32):  # 3.2 s of 20 ms pings: the extremes leave the window, the spread shrinks ...
        h.advance(0.1)
        ping_with_uplink(h, a, 20, stamp_offset - 5_000)
    seen = figures_seen(h, b, h.user_id(a))
    assert seen[-1] == (23_000, 0) and len(seen) <= 3  # ... told as the floor moved, not at every ping
    h.advance(SPREAD_SHARE_US / SEC)
    ping_with_uplink(h, a, 20, stamp_offset - 5_000)
    assert figures_seen(h, b, h.user_id(a)) == []  # nothing moved


def test_without_a_stamp_offset_the_floor_stays_unknown_and_bad_offsets_cost_only_the_sender() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    for sid in (a, b):
        h.send(sid, join_room=pb.JoinRoom(name="jam"))
    h.clear(a, b)
    ping_with_uplink(h, a, 12)  # an older client
    h.advance(0.025)
    ping_with_uplink(h, a, 40)
    assert figures_seen(h, b, h.user_id(a)) == [(0, 28_000)]
    h.advance(SPREAD_SHARE_US / SEC)
    ping_with_uplink(h, a, 40, stamp_offset_us=CLIENT_BEHIND_US + 60_000)  # below 0: the least, 1 µs
    assert figures_seen(h, b, h.user_id(a)) == []  # 0 -> 1 µs moved nothing worth a message
    ping_with_uplink(h, a, 40, stamp_offset_us=-(2**62))  # nonsense: the field's largest, never a crash
    assert figures_seen(h, b, h.user_id(a)) == [(0xFFFF_FFFF, 28_000)]
    h.send(b, ping=pb.Ping(client_send_us=0))
    assert h.take(b, "pong")  # the relay still answers
