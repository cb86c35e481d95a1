"""The engine's synth at run time: swapping it (replace_synth) and surviving one that fails.

Real relay on loopback, two real engines; the listener's synth is a counting stand-in (what reached it).
"""

import asyncio
import time

import numpy as np
import pytest

from pianorhythm.client import model as m
from pianorhythm.client.effects import LOCAL
from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui.audio.soundfont import find_soundfont
from pianorhythm.tui.audio.synth import SAMPLE_RATE, FluidSynthSynth, NullSynth
from pianorhythm.tui.engine import Engine, EngineConfig

SOUNDFONT = find_soundfont().path
SILENT, AUDIBLE = 5.0, 100.0  # RMS: an idle synth ~0.5, a piano note at volume 0.5 ~750 (test_synth.py)


def rms(samples):
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


class CountingSynth(NullSynth):
    def __init__(self, name="counting", fail_on_key=None):
        super().__init__("test")
        self.description = name
        self.played: list[tuple[int, MusicEvent]] = []
        self.released: list[int] = []
        self.programs: dict[int, int] = {}
        self.fail_on_key = fail_on_key

    @property
    def silent(self):
        return False

    def play(self, channel, event):
        if event.number == self.fail_on_key and event.kind is EventKind.NOTE:
            raise RuntimeError("device unplugged")
        self.played.append((channel, event))

    def release_all(self, channel):
        self.released.append(channel)

    def set_program(self, channel, program):
        self.programs[channel] = program


async def until(predicate, timeout=5.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def pair(url, room, b_synth):
    a = Engine(EngineConfig(url, "ann", room=room, save_token=False))
    b = Engine(EngineConfig(url, "ben", room=room, save_token=False), synth=b_synth)
    events: list[m.EngineEvent] = []
    b.subscribe(events.append)
    await a.start()
    await b.start()
    await until(lambda: b.player_stats(a.session.user_id) is not None and a.room and a.room.name == room)
    return a, b, events


def note(key, velocity, offset_ms=0):
    return MusicEvent(EventKind.NOTE, key, velocity, time.perf_counter_ns() + offset_ms * 1_000_000)


async def test_replace_synth_moves_programs_and_pedal_and_closes_the_old_one(relay_server):
    old = CountingSynth("old")
    a, b, events = await pair(relay_server.url, "swap", old)
    try:
        b.set_instrument(5)
        a.set_instrument(19)
        channel = b.channels.channel_of(a.session.user_id)
        await until(lambda: old.programs.get(channel) == 19)
        a.play_local(MusicEvent(EventKind.CONTROL, 64, 127, time.perf_counter_ns()))
        a.play_local(note(60, 90, 1))
        await until(lambda: len(old.played) == 2)
        old.set_volume(0.8)

        new = CountingSynth("new")
        old.released.clear()
        assert b.replace_synth(new) is old
        assert b.synth is new and old.closed and not new.closed
        assert sorted(old.released) == list(range(old.channels))  # everything on the old one stops
        mine = b.channels.channel_of(LOCAL)
        assert new.programs == {mine: 5, channel: 19}
        assert [(ch, e.kind, e.number, e.value) for ch, e in new.played] == [
            (channel, EventKind.CONTROL, 64, 127)  # ann's pedal is still down on the new synth
        ]
        assert new.volume == 0.8
        assert any(isinstance(e, m.SynthChanged) and e.description == "new" for e in events)

        a.play_local(note(60, 0))
        a.play_local(note(62, 80, 1))
        await until(lambda: len(new.played) == 3)
        assert [e.number for _, e in new.played[1:]] == [60, 62]
        assert len(old.played) == 2  # nothing more went to the old synth
    finally:
        await a.close()
        await b.close()


async def test_a_failing_synth_falls_back_to_silence_and_the_notes_go_on(relay_server):
    broken = CountingSynth("broken", fail_on_key=61)
    a, b, events = await pair(relay_server.url, "fail", broken)
    try:
        for i, key in enumerate((60, 61, 62)):
            a.play_local(note(key, 90, i))
        await until(
            lambda: sum(len(e.events) for e in events if isinstance(e, m.NotesPlayed) and not e.local) == 3
        )
        await until(lambda: any(isinstance(e, m.SynthFailed) for e in events))
        failed = next(e for e in events if isinstance(e, m.SynthFailed))
        assert "device unplugged" in failed.error
        assert failed.message == "audio stopped (device unplugged); notes still show"
        assert broken.closed
        assert isinstance(b.synth, NullSynth) and b.synth.silent and b.synth.reason == failed.message
        changed = [e for e in events if isinstance(e, m.SynthChanged)]
        assert changed and changed[-1].silent and changed[-1].reason == failed.message
        assert [e.number for _, e in broken.played] == [60]
        # The scheduler lives on: later notes are still scheduled and played (silently).
        a.play_local(note(64, 90))
        await until(
            lambda: sum(len(e.events) for e in events if isinstance(e, m.NotesPlayed) and not e.local) == 4
        )
        await until(lambda: b.scheduler.dispatched == 4)  # booked at the due time, after the synth had it
    finally:
        await a.close()
        await b.close()


async def test_a_failing_synth_on_a_local_note_does_not_raise_into_the_caller(relay_server):
    broken = CountingSynth("broken", fail_on_key=70)
    b = Engine(EngineConfig(relay_server.url, "solo", room="alone", save_token=False), synth=broken)
    events: list[m.EngineEvent] = []
    b.subscribe(events.append)
    await b.start()
    try:
        await until(lambda: b.room is not None and b.room.name == "alone")
        b.play_local(note(70, 100))  # raises inside the synth, not here
        b.play_local(note(70, 0))
        await until(lambda: any(isinstance(e, m.SynthFailed) for e in events))
        assert b.synth.silent and broken.closed
        assert b.local_events == 2
    finally:
        await b.close()


@pytest.mark.skipif(SOUNDFONT is None, reason="no General MIDI SoundFont installed")
async def test_replace_synth_with_real_fluidsynth_sounds_on_the_new_one_only(relay_server):
    assert SOUNDFONT is not None
    first = FluidSynthSynth(SOUNDFONT)  # offline: render() pulls the audio
    a, b, _ = await pair(relay_server.url, "fluid", first)
    second = FluidSynthSynth(SOUNDFONT)
    try:
        a.play_local(note(60, 110))
        await until(lambda: b.scheduler.dispatched == 1)
        assert rms(first.render(SAMPLE_RATE // 10)) > AUDIBLE
        b.replace_synth(second)
        assert first.closed
        assert rms(second.render(SAMPLE_RATE // 10)) < SILENT  # the held note was not carried over
        a.play_local(note(64, 110))
        await until(lambda: b.scheduler.dispatched == 2)
        assert rms(second.render(SAMPLE_RATE // 10)) > AUDIBLE
    finally:
        await a.close()
        await b.close()
        second.close()
