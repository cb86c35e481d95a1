"""Issue 14, item 1 (relay side): each member's uplink spread, from their pings, shared in presence."""

from __future__ import annotations

from pianorhythm.server.core.relay import SPREAD_SHARE_US
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import SEC, Harness

CLIENT_BEHIND_US = 5 * SEC  # the client's clock runs this far behind the server's: the spread ignores it


def ping_with_uplink(h: Harness, sid: int, uplink_ms: float) -> None:
    """A ping that took `uplink_ms` on its way up (the server receives it at h.now)."""
    h.send(sid, ping=pb.Ping(client_send_us=h.now - CLIENT_BEHIND_US - round(uplink_ms * 1000)))


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
    assert spreads_seen(h, b, h.user_id(a)) == []  # 45 ms now, but the last share is 0.5 s old
    h.advance(SPREAD_SHARE_US / SEC)
    ping_with_uplink(h, a, 20)
    assert spreads_seen(h, b, h.user_id(a)) == [45_000]
    h.advance(SPREAD_SHARE_US / SEC)
    ping_with_uplink(h, a, 30)
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
