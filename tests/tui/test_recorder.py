"""The recorder writes real MIDI files that mido and our file reader read back exactly."""

from __future__ import annotations

import random

import mido
import pytest

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.tui.midi.fileplayer import read_midi_file
from pianorhythm.tui.midi.recorder import MidiRecorder

START = 5_000_000_000_000  # an arbitrary perf_counter_ns origin


def note(key: int, velocity: int, at_ms: float) -> MusicEvent:
    return MusicEvent(EventKind.NOTE, key, velocity, START + round(at_ms * 1_000_000))


def pedal(value: int, at_ms: float) -> MusicEvent:
    return MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, value, START + round(at_ms * 1_000_000))


def test_one_named_track_per_player(tmp_path):
    path = tmp_path / "session.mid"
    rec = MidiRecorder(path, start_ns=START)
    rec.add_player(1, "Alice", program=0)
    rec.add_player(2, "Bob\x07\n", program=40)  # control characters are dropped
    rec.record(1, note(60, 100, 0))
    rec.record(2, note(67, 90, 10))
    rec.record(1, note(60, 0, 500))
    rec.record(2, note(67, 0, 510))
    rec.close()
    mid = mido.MidiFile(path)
    assert mid.type == 1
    assert [track.name for track in mid.tracks] == ["pianorhythm-tui", "Alice", "Bob"]
    programs = [[m.program for m in track if m.type == "program_change"] for track in mid.tracks[1:]]
    assert programs == [[0], [40]]
    channels = [{m.channel for m in track if not m.is_meta} for track in mid.tracks[1:]]
    assert channels[0] != channels[1] and len(channels[0]) == len(channels[1]) == 1


def test_round_trip_keeps_every_event_within_a_millisecond(tmp_path):
    rng = random.Random(7)
    path = tmp_path / "round.mid"
    rec = MidiRecorder(path, start_ns=START)
    expected: dict[int, list[tuple[float, EventKind, int, int]]] = {1: [], 2: [], 3: []}
    for player in expected:
        rec.add_player(player, f"player {player}")
        at = rng.uniform(0, 50)
        for _ in range(200):
            key = rng.randrange(21, 109)
            on = note(key, rng.randrange(1, 128), at)
            at += rng.uniform(0.1, 300)
            off = note(key, 0, at)
            at += rng.uniform(0, 50)
            for event in (on, off):
                rec.record(player, event)
                expected[player].append(
                    ((event.time_ns - START) / 1e9, event.kind, event.number, event.value)
                )
        rec.record(player, pedal(127, at))
        rec.record(player, pedal(0, at + 1000))
        expected[player] += [
            ((at) / 1e3, EventKind.CONTROL, 64, 127),
            ((at + 1000) / 1e3, EventKind.CONTROL, 64, 0),
        ]
    rec.close()

    data = read_midi_file(path)
    for track_index, player in enumerate(expected, start=1):
        got = [
            (t.seconds, t.event.kind, t.event.number, t.event.value)
            for t in data.events
            if t.track == track_index
        ]
        assert len(got) == len(expected[player])
        for (t_got, *rest_got), (t_want, *rest_want) in zip(got, expected[player], strict=True):
            assert rest_got == rest_want
            assert t_got == pytest.approx(t_want, abs=0.001)


def test_events_recorded_out_of_order_are_written_in_time_order(tmp_path):
    path = tmp_path / "order.mid"
    rec = MidiRecorder(path)  # time zero = earliest event
    rec.record("me", note(62, 80, 300))
    rec.record("me", note(60, 80, 100))  # scheduled earlier, arrived later (a remote note's playout)
    rec.record("me", note(60, 0, 400))
    rec.record("me", note(62, 0, 450))
    rec.close()
    events = read_midi_file(path).events
    assert [(round(t.seconds, 3), t.event.number, t.event.value) for t in events] == [
        (0.0, 60, 80),
        (0.2, 62, 80),
        (0.3, 60, 0),
        (0.35, 62, 0),
    ]


def test_program_changes_and_notes_left_hanging_are_closed(tmp_path):
    path = tmp_path / "hanging.mid"
    rec = MidiRecorder(path, start_ns=START)
    rec.record("me", pedal(127, 0))
    rec.record("me", note(60, 100, 0))
    rec.set_program("me", 19, START + 250_000_000)
    rec.record("other", note(72, 100, 1000))
    rec.record("other", note(72, 0, 2000))
    rec.close()
    mid = mido.MidiFile(path)
    me = mid.tracks[1]
    assert [(m.type, m.program) for m in me if m.type == "program_change"] == [("program_change", 19)]
    offs = [m for m in me if m.type == "note_off"]
    assert [m.note for m in offs] == [60]
    assert any(m.type == "control_change" and m.control == SUSTAIN_PEDAL and m.value == 0 for m in me)
    # The hanging note is released at the end of the session (2 s), not at its own last event.
    data = read_midi_file(path)
    assert [t.seconds for t in data.events if t.track == 1 and t.event.number == 60][-1] == pytest.approx(2.0)


def test_flush_writes_a_complete_file_and_close_is_idempotent(tmp_path):
    path = tmp_path / "sub" / "flush.mid"
    rec = MidiRecorder(path, start_ns=START)
    rec.record(1, note(60, 100, 0))
    rec.flush()
    assert read_midi_file(path).note_count == 1
    rec.record(1, note(62, 100, 10))
    rec.close()
    rec.close()
    rec.record(1, note(64, 100, 20))  # after close: ignored
    assert read_midi_file(path).note_count == 2
    assert not list(path.parent.glob(".*.tmp"))


def test_unicode_names_survive(tmp_path):
    path = tmp_path / "names.mid"
    rec = MidiRecorder(path, start_ns=START)
    rec.add_player(1, "Zoë 🎹")
    rec.record(1, note(60, 100, 0))
    rec.close()
    assert mido.MidiFile(path, charset="utf-8").tracks[1].name == "Zoë 🎹"
    assert read_midi_file(path).track_names[1] == "Zoë 🎹"


def test_engine_protocol_add_and_save(tmp_path):
    """pianorhythm.tui.engine feeds `add(track_name, event)`; pianorhythm.tui.headless saves to the --record
    path at the end."""
    from pianorhythm.tui.midi.fileplayer import read_events
    from pianorhythm.tui.midi.recorder import Recorder

    rec = Recorder()
    rec.add("Alice", note(60, 100, 0))
    rec.add("Bob", note(64, 100, 250))
    rec.add("Alice", note(60, 0, 500))
    path = tmp_path / "engine.mid"
    rec.save(path)
    assert [t.name for t in mido.MidiFile(path).tracks] == ["pianorhythm-tui", "Alice", "Bob"]
    events = read_events(path)
    assert [(e.number, e.value, round(e.time_ns / 1e6)) for e in events] == [
        (60, 100, 0),
        (64, 100, 250),
        (60, 0, 500),
        (64, 0, 500),
    ]
    with pytest.raises(ValueError):
        Recorder().save()


def test_only_players_who_played_get_a_track(tmp_path):
    """The recorder itself and people only seen in the lobby (named, maybe switching instrument) add none."""
    path = tmp_path / "played.mid"
    rec = MidiRecorder(path, start_ns=START)
    rec.add_player("local", "me", program=0)
    rec.set_program("local", 40, START)
    rec.add_player(1, "lobby lurker", program=19)
    rec.add_player(2, "pianist")
    rec.record(2, note(60, 100, 0))
    rec.record(2, note(60, 0, 100))
    rec.add_player(3, "pedal only")
    rec.record(3, pedal(127, 50))
    rec.close()
    assert [track.name for track in mido.MidiFile(path).tracks] == [
        "pianorhythm-tui",
        "pianist",
        "pedal only",
    ]
