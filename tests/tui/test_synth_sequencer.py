"""Synth.play_at: events queued in FluidSynth's own sequencer sound when the synth renders their time.

Offline (the sequencer follows the samples rendered: exact, no wall clock in the asserts) and through a
real JACK server, where the sequencer runs in the audio thread. No timing is asserted: bench/e2e_latency.py
measures it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.tui.audio.soundfont import find_soundfont
from pianorhythm.tui.audio.synth import SAMPLE_RATE, FluidSynthSynth, NullSynth

SOUNDFONT = find_soundfont().path
pytestmark = pytest.mark.skipif(SOUNDFONT is None, reason="no General MIDI SoundFont installed")

SILENT = 5.0  # RMS, as tests/tui/test_synth.py: idle ~0.5, a piano note at volume 0.5 ~750
AUDIBLE = 100.0
A, B = 0, 1


def note(key: int, velocity: int) -> MusicEvent:
    return MusicEvent(EventKind.NOTE, key, velocity, 0)


def pedal(down: bool) -> MusicEvent:
    return MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127 if down else 0, 0)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def ms(synth: FluidSynthSynth, duration_ms: float) -> np.ndarray:
    return synth.render(int(SAMPLE_RATE * duration_ms / 1000))


@pytest.fixture
def synth():
    assert SOUNDFONT is not None
    s = FluidSynthSynth(SOUNDFONT)
    ms(s, 10)  # the sequencer's clock starts with the first block rendered
    yield s
    s.close()


def test_a_queued_note_sounds_at_its_time_and_not_before(synth):
    now = time.perf_counter_ns()
    assert synth.play_at(A, note(60, 100), now + 200_000_000) == 0  # in time: not late
    assert synth.events_played == 1
    assert rms(ms(synth, 150)) < SILENT  # offline, 150 ms rendered is 150 ms of the synth's time
    assert rms(ms(synth, 150)) > AUDIBLE


def test_a_queued_release_stops_the_note_and_a_same_tick_release_is_not_lost(synth):
    due = time.perf_counter_ns() + 20_000_000
    synth.play_at(A, note(60, 100), due)
    synth.play_at(A, note(60, 0), due + 100_000)  # 0.1 ms later: the same 1 ms tick
    synth.play_at(A, note(64, 100), due)
    synth.play_at(A, note(64, 0), due + 300_000_000)
    ms(synth, 100)
    assert synth.active_voices() > 0  # 64 still held
    ms(synth, 1500)
    assert synth.active_voices() == 0  # 60 was released at once (a tick after), 64 at its time
    assert rms(ms(synth, 100)) < SILENT


def test_the_sustain_pedal_is_queued_too(synth):
    due = time.perf_counter_ns() + 10_000_000
    synth.play_at(B, pedal(True), due)
    synth.play_at(B, note(60, 100), due + 5_000_000)
    synth.play_at(B, note(60, 0), due + 100_000_000)
    ms(synth, 1200)
    assert rms(ms(synth, 100)) > AUDIBLE  # released, but the pedal holds it
    synth.play_at(B, pedal(False), time.perf_counter_ns())
    ms(synth, 1500)
    assert rms(ms(synth, 100)) < SILENT


def test_release_all_drops_what_is_queued_for_that_channel_only(synth):
    due = time.perf_counter_ns() + 50_000_000
    synth.play_at(A, note(60, 100), due)
    synth.play_at(B, note(67, 100), due)
    synth.release_all(A)
    ms(synth, 200)
    assert synth.active_voices() > 0
    synth.release_all(B)
    ms(synth, 50)
    assert rms(ms(synth, 100)) < SILENT


def test_an_event_already_due_plays_at_once_and_says_how_late(synth):
    ms(synth, 500)
    late = synth.play_at(A, note(60, 100), time.perf_counter_ns() - 3_000_000_000)
    assert late > 0
    assert rms(ms(synth, 100)) > AUDIBLE


def test_the_silent_synth_takes_queued_events_too():
    silent = NullSynth()
    assert silent.play_at(A, note(60, 100), time.perf_counter_ns() + 10**9) == 0
    assert silent.events_played == 1


def test_a_queued_note_sounds_through_jack(jackd):
    assert SOUNDFONT is not None
    synth = FluidSynthSynth(SOUNDFONT, driver="jack")
    try:
        synth.observe_clock()
        synth.play_at(A, note(60, 100), time.perf_counter_ns() + 20_000_000)
        deadline = time.monotonic() + 5
        while synth.active_voices() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the audio thread renders on its own; the note starts in one of its blocks
        assert synth.active_voices() > 0
    finally:
        synth.close()
