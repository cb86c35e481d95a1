"""Room changes are room events (issue 11): joins, leaves, settings, passwords, the crown, bans and mutes
reach a room's shared state through RoomOps.apply, as immutable data carrying their own time, in the order
they happened; so a later session can feed the same events from Redis, in one order per room on every node."""

from __future__ import annotations

from pianorhythm.server.core.events import (
    Banned,
    Crowned,
    Joined,
    Left,
    Muted,
    PasswordHashed,
    RoomEvent,
    SettingsChanged,
    Unbanned,
)
from pianorhythm.server.core.records import BanRecord
from pianorhythm.server.core.relay import RelayCore
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import SEC, Harness, immutable


class Recorder:
    """Wraps a core's RoomOps.apply and keeps every event it is given."""

    def __init__(self, core: RelayCore) -> None:
        self.events: list[RoomEvent] = []
        self._apply = core.room_ops.apply
        core.room_ops.apply = self  # type: ignore[method-assign]

    def __call__(self, event: RoomEvent, now: int) -> None:
        assert immutable(event), event
        self.events.append(event)
        self._apply(event, now)

    def take(self) -> list[RoomEvent]:
        events, self.events = self.events, []
        return [e for e in events if e.room != "lobby"]


def test_every_change_to_a_room_is_an_event_applied_in_order() -> None:
    h = Harness()
    owner, guest = h.connect("owner"), h.connect("guest")
    o, g = h.user_id(owner), h.user_id(guest)
    room = Recorder(h.core)
    start = h.now
    h.send(owner, join_room=pb.JoinRoom(name="hall"))
    h.send(guest, join_room=pb.JoinRoom(name="hall"))
    assert room.take() == [Joined("hall", o, start), Joined("hall", g, start)]

    h.send(owner, update_room_settings=pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(user_limit=9)))
    [changed] = room.take()
    assert changed == SettingsChanged("hall", o, True, "", 9, True, False)

    h.send(owner, update_room_settings=pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(password="pw")))
    changed, hashed = room.take()  # the hash is made off the loop, then replaces the pending marker
    assert isinstance(changed, SettingsChanged) and isinstance(hashed, PasswordHashed)
    assert changed.password_hash == hashed.pending != hashed.password_hash
    assert h.core.state.rooms["hall"].record.password_hash == hashed.password_hash

    h.send(owner, give_ownership=pb.GiveOwnership(user_id=g))
    assert room.take() == [Crowned("hall", g)]

    h.send(guest, mute_user=pb.MuteUser(user_id=o, duration_s=60))
    h.send(guest, mute_user=pb.MuteUser(user_id=o, unmute=True))
    assert room.take() == [Muted("hall", o, h.now + 60 * SEC), Muted("hall", o, 0)]

    h.advance(1)
    kicked_at = h.now
    h.send(guest, kick_user=pb.KickUser(user_id=o))
    cooldown = kicked_at + h.core.limits.kick_cooldown_s * SEC
    assert room.take() == [
        Banned("hall", BanRecord(o, "owner", "10.0.0.1", cooldown, kick=True)),
        Left("hall", o, pb.LEAVE_REASON_KICKED, kicked_at),
    ]

    h.send(guest, unban_user=pb.UnbanUser(user_id=o))
    assert room.take() == [Unbanned("hall", (o,))]

    h.advance(1)
    h.send(guest, leave_room=pb.LeaveRoom())
    assert room.take() == [Left("hall", g, pb.LEAVE_REASON_LEFT, h.now)]
    assert "hall" not in h.core.state.rooms  # the last one out: the room is stored and let go
