"""The synth every note ends in: FluidSynth on an audio driver, FluidSynth offline, or silent.

A template in mido's style: `Synth` owns the public API, validates and clamps, and calls the backend's
`_note_on/_note_off/_control/_program/_release/_gain/_reverb/_chorus/_close`. `NullSynth` accepts every call
and makes no sound (--no-audio, no driver, no SoundFont), so notes still flow and show. `FluidSynthSynth`
plays through a FluidSynth audio driver, or offline (`driver=None`) where `render(frames)` pulls samples:
tests and benchmarks use that.

Every player gets a channel of their own (see `pianorhythm.channels`), so one player's sustain pedal,
program or stuck note never touches another's; `release_all(channel)` is what to call when they leave.
Pick and start one with `open_synth()` (in `tui.audio.drivers`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pianorhythm.channels import DEFAULT_CHANNELS
from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent

from .clog import captured_stderr, route_fluidsynth_logs
from .soundfont import SoundfontError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 48000
DEFAULT_VOLUME: Final = 0.5
DEFAULT_REVERB: Final = 0.2
DEFAULT_CHORUS: Final = 0.0
MAX_GAIN: Final = (
    1.0  # FluidSynth synth.gain at volume 1.0 (its default is 0.2; 1.0 is loud but rarely clips)
)
PERIOD_SIZE: Final = 128  # frames per audio period: 2.7 ms at 48 kHz
PERIODS: Final = 2
PEDALS: Final = (SUSTAIN_PEDAL, 66, 67)  # sustain, sostenuto, soft


class AudioDriverError(Exception):
    """FluidSynth could not start the requested audio driver; str() says which and why."""


def _clamp01(level: float) -> float:
    return min(1.0, max(0.0, float(level)))


class Synth(ABC):
    """What the engine plays into. Thread-safe as FluidSynth is; cheap calls (no I/O, no allocation)."""

    description: str = "synth"

    def __init__(self, channels: int = DEFAULT_CHANNELS) -> None:
        self.channels = channels
        self.volume = DEFAULT_VOLUME
        self.reverb = DEFAULT_REVERB
        self.chorus = DEFAULT_CHORUS
        self.events_played = 0
        self.closed = False

    @property
    def silent(self) -> bool:
        """True when nothing is heard (the null synth)."""
        return False

    def play(self, channel: int, event: MusicEvent) -> None:
        """Play a key press/release or a control change (64 = sustain) on `channel` now."""
        if self.closed or not 0 <= channel < self.channels or not 0 <= event.number <= 127:
            return
        value = min(127, max(0, event.value))
        self.events_played += 1
        if event.kind is EventKind.NOTE:
            if value > 0:
                self._note_on(channel, event.number, value)
            else:
                self._note_off(channel, event.number)
        else:
            self._control(channel, event.number, value)

    def set_program(self, channel: int, program: int) -> None:
        """Choose the General MIDI program (0-127, bank 0) a channel plays with."""
        if not self.closed and 0 <= channel < self.channels:
            self._program(channel, min(127, max(0, program)))

    def release_all(self, channel: int) -> None:
        """Silence a channel at once: pedals up (sustain, sostenuto, soft), notes off, sounds off."""
        if not self.closed and 0 <= channel < self.channels:
            self._release(channel)

    def set_volume(self, level: float) -> None:
        """Master volume, 0.0-1.0."""
        self.volume = _clamp01(level)
        if not self.closed:
            self._gain(self.volume * MAX_GAIN)

    def set_reverb(self, level: float) -> None:
        """Reverb amount, 0.0 (dry) - 1.0."""
        self.reverb = _clamp01(level)
        if not self.closed:
            self._reverb(self.reverb)

    def set_chorus(self, level: float) -> None:
        """Chorus amount, 0.0 (off) - 1.0."""
        self.chorus = _clamp01(level)
        if not self.closed:
            self._chorus(self.chorus)

    def close(self) -> None:
        """Stop the audio driver and free the synth; later calls are ignored. Idempotent."""
        if not self.closed:
            self.closed = True
            self._close()

    @abstractmethod
    def _note_on(self, channel: int, key: int, velocity: int) -> None: ...
    @abstractmethod
    def _note_off(self, channel: int, key: int) -> None: ...
    @abstractmethod
    def _control(self, channel: int, controller: int, value: int) -> None: ...
    @abstractmethod
    def _program(self, channel: int, program: int) -> None: ...
    @abstractmethod
    def _release(self, channel: int) -> None: ...
    @abstractmethod
    def _gain(self, gain: float) -> None: ...
    @abstractmethod
    def _reverb(self, level: float) -> None: ...
    @abstractmethod
    def _chorus(self, level: float) -> None: ...
    @abstractmethod
    def _close(self) -> None: ...


class NullSynth(Synth):
    """Accepts every call and makes no sound. `reason` is the one-line explanation shown to the user."""

    def __init__(self, reason: str = "audio off", channels: int = DEFAULT_CHANNELS) -> None:
        super().__init__(channels)
        self.reason = reason
        self.description = "silent"

    @property
    def silent(self) -> bool:
        return True

    def _note_on(self, channel: int, key: int, velocity: int) -> None:
        pass

    def _note_off(self, channel: int, key: int) -> None:
        pass

    def _control(self, channel: int, controller: int, value: int) -> None:
        pass

    def _program(self, channel: int, program: int) -> None:
        pass

    def _release(self, channel: int) -> None:
        pass

    def _gain(self, gain: float) -> None:
        pass

    def _reverb(self, level: float) -> None:
        pass

    def _chorus(self, level: float) -> None:
        pass

    def _close(self) -> None:
        pass


class FluidSynthSynth(Synth):
    """FluidSynth with one SoundFont. `driver=None` renders offline: pull audio with `render(frames)`.

    Raises SoundfontError if the font does not load, AudioDriverError if the driver does not start.
    """

    def __init__(
        self,
        soundfont: str | Path,
        *,
        driver: str | None = None,
        sample_rate: int = SAMPLE_RATE,
        channels: int = DEFAULT_CHANNELS,
        period_size: int = PERIOD_SIZE,
        periods: int = PERIODS,
        polyphony: int = 256,
        settings: dict[str, Any] | None = None,
    ) -> None:
        import fluidsynth

        super().__init__(channels)
        route_fluidsynth_logs()
        self.soundfont = Path(soundfont)
        self.driver = driver
        self.sample_rate = sample_rate
        self._fs = fluidsynth
        extra: dict[str, Any] = {
            "synth.polyphony": polyphony,
            "synth.reverb.active": 1,
            "synth.chorus.active": 1,
            "audio.period-size": period_size,
            "audio.periods": periods,
            "audio.jack.id": "pianorhythm-tui",
            "audio.jack.autoconnect": 1,
            "audio.pulseaudio.media-role": "music",
        }
        extra.update(settings or {})
        self._synth = fluidsynth.Synth(
            gain=DEFAULT_VOLUME * MAX_GAIN, samplerate=float(sample_rate), channels=channels, **extra
        )
        self._driver_handle: Any = None
        try:
            self._sfid = self._synth.sfload(str(self.soundfont))
            if self._sfid < 0:
                raise SoundfontError(
                    f"SoundFont {str(self.soundfont)!r} could not be loaded (not a valid .sf2?); "
                    "pass another with --soundfont."
                )
            for channel in range(channels):
                self._program(channel, 0)
            self._reverb(self.reverb)
            self._chorus(self.chorus)
            if driver is not None:
                self._start_driver(driver)
        except BaseException:
            self._synth.delete()
            self.closed = True
            raise
        where = driver or "offline"
        self.description = f"fluidsynth/{where} · {self.soundfont.name}"

    def _start_driver(self, driver: str) -> None:
        # Only the audio driver: pyfluidsynth's Synth.start() would also open a MIDI driver (ALSA seq).
        self._synth.setting("audio.driver", driver)
        with captured_stderr(f"fluidsynth audio driver {driver}"):
            handle = self._fs.new_fluid_audio_driver(self._synth.settings, self._synth.synth)
        if not handle:
            raise AudioDriverError(f"the {driver!r} audio driver did not start")
        self._driver_handle = handle
        self._synth.audio_driver = handle  # so Synth.delete() stops it first

    def render(self, frames: int) -> npt.NDArray[np.int16]:
        """Offline use: synthesise the next `frames` frames; returns int16 samples shaped (frames, 2)."""
        samples = self._synth.get_samples(frames)
        result: npt.NDArray[np.int16] = samples.reshape(-1, 2)
        return result

    def active_voices(self) -> int:
        """Voices sounding now (a note is 1-4 voices depending on the SoundFont)."""
        return int(self._synth.get_active_voice_count())

    def _note_on(self, channel: int, key: int, velocity: int) -> None:
        self._synth.noteon(channel, key, velocity)

    def _note_off(self, channel: int, key: int) -> None:
        self._synth.noteoff(channel, key)

    def _control(self, channel: int, controller: int, value: int) -> None:
        self._synth.cc(channel, controller, value)

    def _program(self, channel: int, program: int) -> None:
        if self._synth.program_select(channel, self._sfid, 0, program) != 0:
            log.info("program %d is not in %s; using program 0", program, self.soundfont.name)
            self._synth.program_select(channel, self._sfid, 0, 0)

    def _release(self, channel: int) -> None:
        # Pedals up, then notes off, then sounds off, in that order: a pedal lifted after all-sounds-off,
        # or "reset all controllers" (CC 121), revives a voice in FluidSynth 2.3.
        for pedal in PEDALS:
            self._synth.cc(channel, pedal, 0)
        self._synth.all_notes_off(channel)
        self._synth.all_sounds_off(channel)

    def _gain(self, gain: float) -> None:
        self._synth.setting("synth.gain", float(gain))

    def _reverb(self, level: float) -> None:
        self._synth.set_reverb_level(level)

    def _chorus(self, level: float) -> None:
        self._synth.set_chorus_level(level * 10.0)  # FluidSynth's chorus level runs 0-10

    def _close(self) -> None:
        self._synth.delete()
