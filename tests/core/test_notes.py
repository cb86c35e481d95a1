"""MusicEvent <-> wire conversion, batch splitting and held-note tracking."""

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.notes import MAX_EVENTS_PER_BATCH, HeldNotes, pack_batches, unpack, unpack_relayed
from pianorhythm.wire import pianorhythm_pb2 as pb


def note(key, vel, t_us):
    return MusicEvent(EventKind.NOTE, key, vel, t_us * 1000)


def test_round_trip_preserves_events_and_offsets():
    events = [note(60, 100, 1_000), note(64, 90, 1_250), MusicEvent(EventKind.CONTROL, 64, 127, 1_300_000)]
    offset = 5_000_000.4
    (batch,) = pack_batches(events, offset)
    assert batch.base_time_us == 5_001_000
    assert [e.offset_us for e in batch.events] == [0, 250, 300]
    back = unpack(batch.base_time_us, batch.events)
    assert [(r.capture_server_us, r.kind, r.number, r.value) for r in back] == [
        (5_001_000, EventKind.NOTE, 60, 100),
        (5_001_250, EventKind.NOTE, 64, 90),
        (5_001_300, EventKind.CONTROL, 64, 127),
    ]
    assert back[0].at(42) == MusicEvent(EventKind.NOTE, 60, 100, 42)


def test_splits_long_and_large_runs():
    many = [note(60 + i % 12, 80, i) for i in range(MAX_EVENTS_PER_BATCH + 1)]
    assert [len(b.events) for b in pack_batches(many, 0)] == [MAX_EVENTS_PER_BATCH, 1]
    spread = [note(60, 80, 0), note(60, 0, 1_000_000), note(61, 80, 1_000_001)]
    batches = pack_batches(spread, 0)
    assert [len(b.events) for b in batches] == [2, 1]
    assert batches[1].base_time_us == 1_000_001


def test_invalid_events_are_dropped_both_ways():
    assert pack_batches([note(200, 80, 0)], 0) == []
    wire = [pb.NoteEvent(offset_us=0, note=pb.Note(key=128, velocity=1)), pb.NoteEvent(offset_us=5)]
    assert unpack(0, wire) == []


def test_backwards_capture_time_is_clamped():
    (batch,) = pack_batches([note(60, 80, 100), note(62, 80, 90)], 0)
    assert [e.offset_us for e in batch.events] == [0, 0]


def test_unpack_relayed():
    relayed = pb.RelayedNotes(
        user_id=3, base_time_us=100, events=[pb.NoteEvent(offset_us=7, note=pb.Note(key=1, velocity=2))]
    )
    (event,) = unpack_relayed(relayed)
    assert event.capture_server_us == 107


def test_held_notes_release_keys_and_pedal():
    held = HeldNotes()
    assert held.empty
    held.apply(note(60, 100, 0))
    held.apply(note(64, 100, 0))
    held.apply(MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127, 0))
    held.apply(note(60, 0, 0))
    assert held.down == {64}
    assert held.sustained == {60}
    released = held.release(99)
    assert released == [
        note(64, 0, 0).__class__(EventKind.NOTE, 64, 0, 99),
        MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 0, 99),
    ]
    assert held.empty


def test_pedal_up_clears_sustained():
    held = HeldNotes()
    held.apply(MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 100, 0))
    held.apply(note(60, 100, 0))
    held.apply(note(60, 0, 0))
    held.apply(MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 0, 0))
    assert held.empty
    assert held.sustained == set()
    assert held.release(0) == []
