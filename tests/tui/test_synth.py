"""The synth with real FluidSynth, rendered offline, and on a real (dummy-backend) JACK server."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.tui.audio.drivers import audio_driver_choices, compiled_drivers, open_synth
from pianorhythm.tui.audio.soundfont import SoundfontError, find_soundfont
from pianorhythm.tui.audio.synth import SAMPLE_RATE, FluidSynthSynth, NullSynth

SOUNDFONT = find_soundfont().path
pytestmark = pytest.mark.skipif(SOUNDFONT is None, reason="no General MIDI SoundFont installed")

SILENT = 5.0  # RMS of an idle synth is ~0.5 (dither); a piano note at volume 0.5 is ~750
AUDIBLE = 100.0
A, B = 0, 1  # two players' channels


def note(key: int, velocity: int) -> MusicEvent:
    return MusicEvent(EventKind.NOTE, key, velocity, 0)


def pedal(down: bool) -> MusicEvent:
    return MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127 if down else 0, 0)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def seconds(synth: FluidSynthSynth, duration: float) -> np.ndarray:
    return synth.render(int(SAMPLE_RATE * duration))


@pytest.fixture
def synth():
    assert SOUNDFONT is not None
    s = FluidSynthSynth(SOUNDFONT)
    yield s
    s.close()


def test_a_note_is_audible_and_silence_before_it_is_not(synth):
    assert rms(seconds(synth, 0.1)) < SILENT
    synth.play(A, note(60, 100))
    assert rms(seconds(synth, 0.1)) > AUDIBLE
    assert synth.events_played == 1


def test_note_off_decays_to_silence(synth):
    synth.play(A, note(60, 100))
    seconds(synth, 0.2)
    synth.play(A, note(60, 0))
    seconds(synth, 1.0)
    assert rms(seconds(synth, 0.1)) < SILENT


def released_note_level(pedal_channel: int) -> float:
    """B plays and releases a note while a pedal is down on `pedal_channel`; the level 1 s later."""
    assert SOUNDFONT is not None
    s = FluidSynthSynth(SOUNDFONT)
    try:
        s.play(pedal_channel, pedal(True))
        s.play(B, note(64, 100))
        seconds(s, 0.2)
        s.play(B, note(64, 0))
        seconds(s, 0.6)  # a released note's tail is under SILENT after 0.5 s
        return rms(seconds(s, 0.1))
    finally:
        s.close()


def test_one_players_sustain_pedal_does_not_hold_another_players_note():
    assert released_note_level(pedal_channel=A) < SILENT
    # Control: the same pedal on B's own channel does hold B's note, so the measurement can tell.
    assert released_note_level(pedal_channel=B) > AUDIBLE


def test_a_sustained_note_keeps_sounding_beside_a_released_one():
    assert SOUNDFONT is not None
    levels = []
    for with_b in (False, True):
        s = FluidSynthSynth(SOUNDFONT)
        s.play(A, pedal(True))
        s.play(A, note(60, 100))
        if with_b:
            s.play(B, note(67, 100))
        seconds(s, 0.2)
        s.play(A, note(60, 0))  # A lets go of the key: the pedal holds it
        if with_b:
            s.play(B, note(67, 0))  # B lets go: nothing holds it
        seconds(s, 0.6)
        levels.append(rms(seconds(s, 0.1)))
        s.close()
    a_alone, a_beside_b = levels
    assert a_alone > AUDIBLE
    assert a_beside_b == pytest.approx(a_alone, rel=0.02)


def test_release_all_silences_held_and_sustained_notes_at_once(synth):
    synth.set_reverb(0.0)  # the reverb tail is shared by every channel; measure the voices alone
    synth.play(A, pedal(True))
    for key in (60, 64, 67):
        synth.play(A, note(key, 100))
    seconds(synth, 0.2)
    synth.play(A, note(60, 0))  # sustained by the pedal; 64 and 67 still held down
    assert rms(seconds(synth, 0.05)) > AUDIBLE
    synth.release_all(A)
    seconds(synth, 0.01)  # FluidSynth ramps a killed voice down over a few milliseconds
    assert rms(seconds(synth, 0.05)) < SILENT
    assert synth.active_voices() == 0
    # The pedal was lifted too: a new note on A is not sustained.
    synth.play(A, note(60, 100))
    seconds(synth, 0.1)
    synth.play(A, note(60, 0))
    seconds(synth, 0.6)
    assert rms(seconds(synth, 0.1)) < SILENT


def b_holding_a_note(release_a: bool) -> np.ndarray:
    assert SOUNDFONT is not None
    s = FluidSynthSynth(SOUNDFONT)
    try:
        s.play(A, pedal(True))
        s.play(A, note(60, 100))
        s.play(B, note(48, 120))
        seconds(s, 0.1)
        if release_a:
            s.release_all(A)
        else:  # A's note ends on its own, as fast as FluidSynth can end it
            s.play(A, pedal(False))
            s.play(A, note(60, 0))
        seconds(s, 0.6)
        return seconds(s, 0.2)
    finally:
        s.close()


def test_release_all_leaves_other_players_notes_alone():
    after_release = b_holding_a_note(release_a=True)
    assert rms(after_release) > AUDIBLE
    np.testing.assert_allclose(after_release, b_holding_a_note(release_a=False), atol=2 * SILENT)


def render_note(channel: int, programs: dict[int, int]) -> np.ndarray:
    assert SOUNDFONT is not None
    s = FluidSynthSynth(SOUNDFONT)
    try:
        for ch, program in programs.items():
            s.set_program(ch, program)
        s.play(channel, note(60, 100))
        return seconds(s, 0.5)
    finally:
        s.close()


def test_programs_are_per_channel():
    piano = render_note(A, {})
    piano_beside_violin = render_note(A, {B: 40})
    violin = render_note(B, {B: 40})
    assert np.array_equal(piano, piano_beside_violin)  # B's program leaves A's sound untouched
    assert rms(violin) > AUDIBLE
    assert not np.allclose(piano, violin, atol=200)


def test_volume_scales_output_and_zero_is_silent(synth):
    synth.play(A, note(60, 100))
    loud = rms(seconds(synth, 0.05))
    synth.set_volume(0.25)
    quieter = rms(seconds(synth, 0.05))
    synth.set_volume(0.0)
    seconds(synth, 0.05)  # the effects' tails still carry the earlier gain
    assert rms(seconds(synth, 0.05)) < SILENT
    assert quieter < loud * 0.7
    synth.set_volume(7)
    assert synth.volume == 1.0


def test_reverb_and_chorus_levels_are_clamped_and_applied(synth):
    synth.set_reverb(0.0)
    synth.set_chorus(2.0)
    assert synth.reverb == 0.0 and synth.chorus == 1.0
    synth.play(A, note(60, 100))
    assert rms(seconds(synth, 0.1)) > AUDIBLE


def test_out_of_range_input_is_ignored_and_close_is_idempotent(synth):
    synth.play(500, note(60, 100))
    synth.play(A, note(200, 100))
    synth.set_program(-1, 5)
    assert rms(seconds(synth, 0.1)) < SILENT
    synth.close()
    synth.close()
    synth.play(A, note(60, 100))  # after close: ignored, no crash
    assert synth.description.startswith("fluidsynth/offline · ")


def test_a_file_that_is_not_a_soundfont_is_a_clear_error(tmp_path):
    bogus = tmp_path / "broken.sf2"
    bogus.write_bytes(b"not a soundfont")
    with pytest.raises(SoundfontError, match="could not be loaded"):
        FluidSynthSynth(bogus)


def test_null_synth_accepts_everything():
    s = NullSynth("audio off")
    s.play(A, note(60, 100))
    s.set_program(A, 3)
    s.release_all(A)
    s.set_volume(0.3)
    s.set_reverb(0.3)
    s.set_chorus(0.3)
    s.close()
    assert s.silent and s.description == "silent" and s.events_played == 1


def test_open_synth_silent_modes(tmp_path):
    off = open_synth(no_audio=True)
    assert isinstance(off, NullSynth) and "--no-audio" in off.reason
    missing = open_synth(tmp_path / "missing.sf2")  # a typo: said in one line, and the app goes on
    assert isinstance(missing, NullSynth) and missing.reason.startswith(
        f"playing silently: SoundFont {str(tmp_path / 'missing.sf2')!r} from --soundfont does not exist; "
    )
    bad_driver = open_synth(driver="no-such-driver")
    assert isinstance(bad_driver, NullSynth) and "no-such-driver" in bad_driver.reason


def test_driver_lists():
    compiled = compiled_drivers()
    assert compiled  # FluidSynth is installed (the SoundFont skip above aside, the suite needs it)
    choices = audio_driver_choices()
    assert choices[0] == "auto" and set(choices[1:]) <= set(compiled)
    assert "file" not in choices  # writes a WAV file: never a sensible "auto" pick


def test_fluidsynth_plays_through_the_jack_driver(jackd):
    synth = open_synth(driver="jack")
    try:
        assert not synth.silent, getattr(synth, "reason", "")
        assert SOUNDFONT is not None
        assert synth.description == f"fluidsynth/jack · {SOUNDFONT.name}"
        ports = jackd.ports()
        assert any(port.startswith("pianorhythm-tui") for port in ports), ports
        synth.play(A, note(60, 100))
        synth.play(A, note(60, 0))
    finally:
        synth.close()


def test_auto_driver_finds_a_working_driver_when_one_exists(jackd):
    synth = open_synth()
    try:
        assert not synth.silent, getattr(synth, "reason", "")
        assert synth.description.startswith("fluidsynth/")
    finally:
        synth.close()
    # The jack client is gone after close.
    out = subprocess.run(["jack_lsp", "-s", jackd.name], capture_output=True, timeout=10, check=False)
    assert b"pianorhythm-tui" not in out.stdout
