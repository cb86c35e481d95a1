"""Playout through the client core: a remote player's notes get due times from their send stamps and
transit, and their notes are released when they leave or our link drops. Injected time
(tests/core/client_harness.py)."""

from pianorhythm.client import model as m
from pianorhythm.client.effects import AddPlayer, ReleasePlayer, SetInstrument
from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.playout import LatencyPreset, PlayoutState
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.core.client_harness import ClientHarness, user

ANN, BOB = user(1, "ann"), user(2, "bob", instrument=19)


def in_jam() -> ClientHarness:
    h = ClientHarness(room="jam")
    h.connect()
    h.exchange_ping(up_ms=1, down_ms=1)  # the clock is exact: server = ours + server_offset_us
    h.enter("jam", ANN, BOB)
    h.take()
    return h


def relayed(h: ClientHarness, sent_ns: int, *events: tuple[int, int, int], uid: int = 2) -> pb.ServerMessage:
    """bob's batch captured at `sent_ns` (our clock), (offset_us, key, velocity) each."""
    notes = pb.RelayedNotes(
        user_id=uid,
        base_time_us=sent_ns // 1000 + h.server_offset_us,
        events=[pb.NoteEvent(offset_us=o, note=pb.Note(key=k, velocity=v)) for o, k, v in events],
    )
    return pb.ServerMessage(notes=notes)


def arrive(h: ClientHarness, message: pb.ServerMessage) -> None:
    h.run(h.core.handle(message, h.now))


def test_a_player_in_the_room_gets_a_channel_with_its_instrument():
    h = ClientHarness(room="jam")
    h.connect()
    h.enter("jam", ANN, BOB)
    assert AddPlayer(2, "bob", 19) in h.effects
    h.take()
    h.receive(user_updated=pb.UserUpdated(user=user(2, "bob", instrument=40)))
    assert h.of(SetInstrument, h.effects) == [SetInstrument(2, 40)]


def test_due_times_follow_the_send_stamps_plus_the_players_playout_delay():
    h = in_jam()
    reference = PlayoutState(LatencyPreset.BALANCED)
    expected: list[int] = []
    for transit_ms, gap_ms in [(8, 0), (11, 120), (9, 130), (14, 125)]:
        h.advance(gap_ms)
        sent = h.now
        h.advance(transit_ms)
        arrive(h, relayed(h, sent, (0, 60, 90), (0, 64, 90)))  # a chord
        for capture in (sent // 1000, sent // 1000):
            expected.append(reference.schedule(capture, h.now // 1000).due_us * 1000)
        h.advance(-transit_ms)
    due = [s.due_ns for s in h.scheduled()]
    assert due == expected
    first = h.scheduled()[0]
    assert first.player == 2 and first.event == MusicEvent(EventKind.NOTE, 60, 90, first.due_ns)
    # A note never plays before it arrived, and a player's notes keep their order and intervals.
    assert due[1] == due[0]  # still a chord
    assert all(b >= a for a, b in zip(due, due[1:], strict=False))
    scheduled = h.told(m.NotesScheduled)
    assert [len(e.events) for e in scheduled] == [2, 2, 2, 2] and sum(e.late for e in scheduled) == 0
    stats = h.core.player_stats(2)
    assert stats is not None and stats.events == 8 and stats.transit_ms is not None


def test_a_stamp_far_in_the_past_plays_at_once_and_counts_as_late():
    h = in_jam()
    sent = h.now
    h.advance(600)  # 600 ms in transit: over the ceiling
    arrive(h, relayed(h, sent, (0, 60, 90)))
    [note] = h.scheduled()
    assert note.due_ns == h.now // 1000 * 1000
    assert h.told(m.NotesScheduled)[0].late == 1


def test_the_clock_offset_maps_the_stamps_to_our_clock():
    h = ClientHarness(room="jam")
    h.connect()
    h.enter("jam", ANN, BOB)
    h.server_offset_us += 5_000  # the relay's clock is 5 ms ahead of what the Welcome told us
    reference = PlayoutState()
    sent = h.now
    h.advance(10)
    arrive(h, relayed(h, sent, (0, 60, 90)))
    # Until a pong, the stamp maps 5 ms late on our clock: 5 ms of transit are taken for clock error.
    assert h.scheduled()[-1].due_ns == reference.schedule(sent // 1000 + 5_000, h.now // 1000).due_us * 1000
    h.exchange_ping(up_ms=1, down_ms=1)
    h.advance(200)
    sent = h.now
    h.advance(10)
    arrive(h, relayed(h, sent, (0, 62, 90)))
    assert h.scheduled()[-1].due_ns == reference.schedule(sent // 1000, h.now // 1000).due_us * 1000


def test_our_own_echo_and_unknown_players_are_not_scheduled():
    h = in_jam()
    arrive(h, relayed(h, h.now, (0, 60, 90), uid=1))
    arrive(h, relayed(h, h.now, (0, 60, 90), uid=9))
    assert h.scheduled() == [] and h.told(m.NotesScheduled) == []


def test_a_player_who_leaves_is_released_and_forgotten():
    h = in_jam()
    arrive(h, relayed(h, h.now, (0, 60, 90)))
    h.take()
    h.receive(user_left=pb.UserLeft(user_id=2, reason=pb.LEAVE_REASON_DISCONNECTED))
    assert h.released() == [ReleasePlayer(2, forget=True)]
    assert h.told(m.UserLeft) == [m.UserLeft(2, "bob", "disconnected")]
    h.take()
    arrive(h, relayed(h, h.now, (0, 62, 90)))  # a batch the relay sent before the leave
    assert h.scheduled() == [] and h.core.player_stats(2) is None


def test_our_drop_releases_everyone_and_their_transit_is_stale_until_we_are_back():
    h = in_jam()
    sent = h.now
    h.advance(10)
    arrive(h, relayed(h, sent, (0, 60, 90)))
    h.take()
    h.drop()
    assert h.released() == [ReleasePlayer(2)]
    stats = h.core.player_stats(2)
    assert stats is not None and stats.transit_ms is None and stats.events == 1
    h.connect(resumed=True)
    stats = h.core.player_stats(2)
    assert stats is not None and stats.transit_ms == 10.0


def test_a_new_room_state_releases_the_players_of_the_old_one():
    h = in_jam()
    h.enter("lobby", ANN, is_lobby=True)
    assert h.released() == [ReleasePlayer(2, forget=True)]
    assert h.core.players == {}


def test_the_preset_applies_to_every_player():
    h = in_jam()
    h.core.set_latency_preset("safe")
    assert h.core.players[2].playout.preset is LatencyPreset.SAFE


def test_closing_releases_everyone_and_our_own_notes():
    h = in_jam()
    assert h.run(h.core.close()) == [ReleasePlayer(2), ReleasePlayer("local")]
