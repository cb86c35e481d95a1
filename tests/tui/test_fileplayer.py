"""Reading MIDI files (real files, real mido) and playing them on the event loop's clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import mido
import pytest

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.tui.midi.fileplayer import MidiFileError, play_events, read_midi_file

DATA = Path(__file__).resolve().parents[1] / "data"


def test_type_1_file_all_tracks_merged():
    data = read_midi_file(DATA / "m21-test02.mid")
    assert data.file_type == 1
    assert data.note_count == 163
    assert sum(1 for timed in data.events if timed.event.is_note_off) == 163
    assert data.duration == pytest.approx(18.5, abs=0.01)
    assert {timed.track for timed in data.events} == {1, 2, 3, 4}
    assert [timed.seconds for timed in data.events] == sorted(timed.seconds for timed in data.events)
    assert data.first_program() == 0
    assert data.track_names[1:] == ["Instrument 1", "Instrument 2", "Instrument 3", "Instrument 4"]


def test_type_0_file():
    data = read_midi_file(DATA / "m21-test07.mid")
    assert data.file_type == 0
    assert data.note_count == 318
    assert data.duration == pytest.approx(58.85, abs=0.01)
    assert all(timed.event.time_ns == round(timed.seconds * 1e9) for timed in data.events[:50])


def test_times_agree_with_mido():
    mid = mido.MidiFile(DATA / "m21-test02.mid")
    now, expected = 0.0, []
    for message in mid:
        now += message.time
        if message.type in ("note_on", "note_off"):
            expected.append(now)
    got = [timed.seconds for timed in read_midi_file(DATA / "m21-test02.mid").events]
    assert got == pytest.approx(expected, abs=1e-6)


def write_tempo_change_file(path: Path) -> None:
    """120 bpm, a note at beat 0; at beat 2 (1.0 s) the tempo halves to 60 bpm (in another track, as
    type-1 files do); notes at beat 3 (2.0 s) and beat 4 (3.0 s)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=500_000, time=0),
            mido.MetaMessage("set_tempo", tempo=1_000_000, time=960),
        ]
    )
    notes = mido.MidiTrack(
        [
            mido.Message("program_change", program=40, time=0),
            mido.Message("note_on", note=60, velocity=90, time=0),
            mido.Message("note_off", note=60, time=480),
            mido.Message("control_change", control=SUSTAIN_PEDAL, value=127, time=0),
            mido.Message("control_change", control=7, value=10, time=0),  # volume: not a pedal, dropped
            mido.Message("note_on", note=62, velocity=80, time=960),
            mido.Message("note_on", note=62, velocity=0, time=480),
            mido.Message("note_on", note=36, velocity=100, channel=9, time=0),  # drums: left out
            mido.Message("control_change", control=SUSTAIN_PEDAL, value=0, time=0),
        ]
    )
    mid.tracks += [conductor, notes]
    mid.save(path)


def test_tempo_changes_are_honoured(tmp_path):
    path = tmp_path / "tempo.mid"
    write_tempo_change_file(path)
    data = read_midi_file(path)
    assert [(t.seconds, t.event.kind, t.event.number, t.event.value) for t in data.events] == [
        (0.0, EventKind.NOTE, 60, 90),
        (0.5, EventKind.NOTE, 60, 0),
        (0.5, EventKind.CONTROL, SUSTAIN_PEDAL, 127),
        (2.0, EventKind.NOTE, 62, 80),
        (3.0, EventKind.NOTE, 62, 0),
        (3.0, EventKind.CONTROL, SUSTAIN_PEDAL, 0),
    ]
    assert data.first_program() == 40
    with_drums = read_midi_file(path, include_drums=True)
    assert any(t.channel == 9 and t.event.number == 36 for t in with_drums.events)


def test_unplayable_files_are_one_sentence_errors(tmp_path):
    with pytest.raises(MidiFileError, match="does not exist"):
        read_midi_file(tmp_path / "missing.mid")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"definitely not MIDI")
    with pytest.raises(MidiFileError, match="not a readable MIDI file"):
        read_midi_file(junk)
    cut = tmp_path / "cut.mid"
    for length in (10, 500):  # inside the header chunk, inside a track
        cut.write_bytes((DATA / "m21-test02.mid").read_bytes()[:length])
        with pytest.raises(MidiFileError) as truncated:
            read_midi_file(cut)
        assert str(truncated.value) == (
            f"{str(cut)!r} is not a readable MIDI file (it ends before its last track does: "
            "cut short while copying or downloading?)."
        )
    type2 = tmp_path / "type2.mid"
    mido.MidiFile(type=2, tracks=[mido.MidiTrack()]).save(type2)
    with pytest.raises(MidiFileError, match="type 2"):
        read_midi_file(type2)


def timed(seconds: float, key: int, velocity: int) -> MusicEvent:
    return MusicEvent(EventKind.NOTE, key, velocity, round(seconds * 1e9))


async def test_play_events_on_an_absolute_schedule():
    events = [timed(0.0, 60, 100), timed(0.0, 64, 100), timed(0.05, 60, 0), timed(0.1, 64, 0)]
    got: list[tuple[MusicEvent, int]] = []
    start = time.perf_counter_ns() + 10_000_000
    played = await play_events(events, lambda e: got.append((e, time.perf_counter_ns())), start_ns=start)
    assert played == 4
    assert [e.time_ns - start for e, _ in got] == [0, 0, 50_000_000, 100_000_000]
    assert all(called >= e.time_ns for e, called in got)  # never early


async def test_play_events_with_a_late_clock_never_drifts():
    events = [timed(i * 0.001, 60, 100 if i % 2 == 0 else 0) for i in range(100)]
    got: list[int] = []
    # The clock jumps 3 ms late at every call: deliveries still keep their scheduled stamps.
    ticks = iter(range(0, 10**10, 3_000_000))

    played = await play_events(events, lambda e: got.append(e.time_ns), start_ns=0, clock=lambda: next(ticks))
    assert played == 100
    assert got == [round(i * 0.001 * 1e9) for i in range(100)]


async def test_stopping_playback_releases_held_keys_and_pedals():
    events = [
        MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127, 0),
        timed(0.0, 60, 100),
        timed(0.0, 64, 100),
        timed(0.001, 64, 0),
        timed(10.0, 60, 0),
    ]
    got: list[MusicEvent] = []
    task = asyncio.create_task(play_events(events, got.append))
    while len(got) < 4:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(e.kind, e.number, e.value) for e in got[4:]] == [
        (EventKind.NOTE, 60, 0),
        (EventKind.CONTROL, SUSTAIN_PEDAL, 0),
    ]
