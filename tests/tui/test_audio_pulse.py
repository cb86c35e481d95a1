"""Desktop audio for real: remote notes through FluidSynth's pulseaudio driver into a PulseAudio null sink.

A real PulseAudio daemon (tests/fixtures/pulse.py), a real relay on loopback, two real engines: ann plays,
ben listens with the synth the auto driver order picks (Pulse first); `parec` records the sink's monitor.
No timing is asserted: the sound is there while the note is held and silence comes after its release.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui.app import PianoApp, options_from_args
from pianorhythm.tui.audio.drivers import open_synth
from pianorhythm.tui.audio.soundfont import find_soundfont
from pianorhythm.tui.cli import build_parser
from pianorhythm.tui.engine import Engine, EngineConfig
from pianorhythm.tui.widgets.status import StatusBar
from tests.fixtures.pulse import MonitorRecording
from tests.tui.app_helpers import wait_for

pytestmark = pytest.mark.skipif(find_soundfont().path is None, reason="no General MIDI SoundFont installed")

SILENT, AUDIBLE = 5.0, 100.0  # RMS, as tests/tui/test_synth.py: a piano note at volume 0.5 ~750
WINDOW_NS = 200_000_000  # how much of the recording each check looks at


async def until(predicate, timeout=5.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def note(key: int, velocity: int) -> MusicEvent:
    return MusicEvent(EventKind.NOTE, key, velocity, time.perf_counter_ns())


def recent_rms(recording: MonitorRecording) -> float:
    return recording.rms_since(time.perf_counter_ns() - WINDOW_NS)


async def test_a_remote_note_sounds_through_pulseaudio_and_stops_after_release(pulse_server, relay_server):
    synth = open_synth()  # auto: the Pulse server answers first
    assert synth.description.startswith("fluidsynth/pulseaudio"), getattr(synth, "reason", "")
    url = relay_server.url
    ann = Engine(EngineConfig(url, "ann", room="pulse", save_token=False))
    ben = Engine(EngineConfig(url, "ben", room="pulse", save_token=False), synth=synth)
    recording = MonitorRecording(pulse_server)
    try:
        await ann.start()
        await ben.start()
        await until(lambda: ben.player_stats(ann.session.user_id) is not None and ann.room is not None)
        await until(lambda: recording.frames() > 0)
        await asyncio.sleep(0.3)
        assert recent_rms(recording) < SILENT  # nothing plays yet

        ann.play_local(note(60, 100))
        await until(lambda: recent_rms(recording) > AUDIBLE)  # the note, through the relay and Pulse
        await asyncio.sleep(0.3)
        assert recent_rms(recording) > AUDIBLE  # held: it keeps sounding

        ann.play_local(note(60, 0))
        await until(lambda: recent_rms(recording) < SILENT)  # the release and the reverb tail
        await asyncio.sleep(0.5)
        assert recent_rms(recording) < SILENT  # and it stays silent
    finally:
        recording.close()
        await ann.close()
        await ben.close()
        synth.close()


async def test_the_status_bar_names_the_driver_auto_chose(pulse_server, relay_server, config_dir):
    args = build_parser().parse_args(["--connect", relay_server.url, "--name", "ann"])  # with sound
    app = PianoApp(options_from_args(args, config_dir / "config.toml"))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None, timeout=15)
        status = app.lobby.query_one(StatusBar)
        await wait_for(pilot, lambda: status.audio.startswith("fluidsynth/pulseaudio"))
        assert "audio fluidsynth/pulseaudio" in str(status.render())
