"""The synth every note ends in: FluidSynth on an audio driver, FluidSynth offline, or silent.

A template in mido's style: `Synth` owns the public API, validates and clamps, and calls the backend's
`_note_on/_note_off/_control/_program/_release/_gain/_reverb/_chorus/_close`. `NullSynth` accepts every call
and makes no sound (--no-audio, no driver, no SoundFont), so notes still flow and show. `FluidSynthSynth`
plays through a FluidSynth audio driver, or offline (`driver=None`) where `render(frames)` pulls samples:
tests and benchmarks use that.

`play_at(channel, event, due_ns)` queues an event for a time ahead: FluidSynth's own sequencer plays it in
the audio thread, in the 64-frame block that holds its due time (see `FluidSynthSynth.play_at`), with no
Python thread and no GIL between the due time and the sound. `pianorhythm.tui.audio.scheduler` uses it for
remote notes.

Every player gets a channel of their own (see `pianorhythm.channels`), so one player's sustain pedal,
program or stuck note never touches another's; `release_all(channel)` is what to call when they leave.
Pick and start one with `open_synth()` (in `pianorhythm.tui.audio.drivers`).
"""

from __future__ import annotations

import ctypes
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
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
BLOCK_FRAMES: Final = 64  # FluidSynth renders, and its sequencer plays events, in blocks of this many frames
CLOCK_WINDOW_NS: Final = 5_000_000_000  # how far back the synth clock's offset looks (follows a card's drift)


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

    def play_at(self, channel: int, event: MusicEvent, due_ns: int) -> int:
        """Sound `event` on `channel` at `due_ns` (time.perf_counter_ns), queued in the synth's own time.

        Returns how late it was handed over in ns (0 when in time: it sounds in the block of its due time).
        A synth without a clock of its own (the silent one) plays it at once: nothing is heard anyway.
        """
        self.play(channel, event)
        return 0

    def observe_clock(self) -> None:  # noqa: B027 - a hook: only a synth with a clock of its own reads it
        """Refine where the synth's own time stands (for play_at); nothing to do without a clock."""

    def set_program(self, channel: int, program: int) -> None:
        """Choose the General MIDI program (0-127, bank 0) a channel plays with."""
        if not self.closed and 0 <= channel < self.channels:
            self._program(channel, min(127, max(0, program)))

    def release_all(self, channel: int) -> None:
        """Silence a channel at once: events queued by play_at dropped, pedals up, notes off, sounds off."""
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


class _SequencerCalls:
    """The FluidSynth sequencer calls pyfluidsynth's `Sequencer` does not wrap, bound from its C API (2.x).

    pyfluidsynth's Sequencer has note on/off but no control change (the sustain pedal), no source-only
    client (our per-channel event sources) and no removal of queued events; these are FluidSynth's public,
    documented functions, bound with ctypes from the same library pyfluidsynth loads.
    """

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        vp, i, short = ctypes.c_void_p, ctypes.c_int, ctypes.c_short
        self.new_event = lib.new_fluid_event
        self.new_event.restype, self.new_event.argtypes = vp, []
        self.delete_event = lib.delete_fluid_event
        self.delete_event.argtypes = [vp]
        self.set_source = lib.fluid_event_set_source
        self.set_source.argtypes = [vp, short]
        self.set_dest = lib.fluid_event_set_dest
        self.set_dest.argtypes = [vp, short]
        self.noteon = lib.fluid_event_noteon
        self.noteon.argtypes = [vp, i, short, short]
        self.noteoff = lib.fluid_event_noteoff
        self.noteoff.argtypes = [vp, i, short]
        self.control_change = lib.fluid_event_control_change
        self.control_change.argtypes = [vp, i, short, i]
        self.send_at = lib.fluid_sequencer_send_at
        self.send_at.restype, self.send_at.argtypes = i, [vp, vp, ctypes.c_uint, i]
        self.remove_events = lib.fluid_sequencer_remove_events
        self.remove_events.argtypes = [vp, short, short, i]
        self.register_client = lib.fluid_sequencer_register_client
        self.register_client.restype = short
        self.register_client.argtypes = [vp, ctypes.c_char_p, vp, vp]  # a NULL callback: a source only
        self.get_tick = lib.fluid_sequencer_get_tick
        self.get_tick.restype, self.get_tick.argtypes = ctypes.c_uint, [vp]


class SynthClock:
    """Where the synth's sequencer time (ms of samples rendered) stands against time.perf_counter_ns.

    The sequencer's tick, read from another thread, is that of the last block the audio thread rendered:
    a whole period is rendered at the start of its cycle, so the tick runs ahead of the frame being heard
    by up to a period, less how late the cycle woke. The largest (tick - now) over the last CLOCK_WINDOW_NS,
    read just after a cycle rendered, is the tick of the last block of that cycle; the frame at `now` is
    that less one block. The window lets the offset follow a sound card whose clock drifts (ppm) against
    the system's; a jump (an xrun, a driver restart) is caught within the window, or at once if upward.
    """

    def __init__(self, rate: int, window_ns: int = CLOCK_WINDOW_NS) -> None:
        self.block_ms = 1000 * BLOCK_FRAMES / rate
        self.window_ns = window_ns
        self._seen: deque[tuple[int, float]] = deque()  # (now_ns, tick - now_ms), the window's maxima

    def observe(self, now_ns: int, tick: int) -> None:
        lead = tick - now_ns / 1e6
        seen = self._seen
        while seen and seen[-1][1] <= lead:  # a monotone deque: the window's maximum is at its head
            seen.pop()
        seen.append((now_ns, lead))
        while seen[0][0] < now_ns - self.window_ns:
            seen.popleft()

    def tick_of(self, due_ns: int) -> float:
        """The tick to queue an event at so that it sounds in the block nearest `due_ns`.

        The synth's time at `due_ns` is the window's largest lead less a block. The sequencer plays an
        event at the first block whose tick is at or past the event's; FluidSynth hands the new voice to
        its mixer for the block after that (measured: sound - tick is 1-2.4 ms at 48 kHz/128). So: a block
        and a half earlier, and the sound leaves the synth within half a block (0.67 ms) of `due_ns`.
        """
        return due_ns / 1e6 + self._seen[0][1] - self.block_ms - 1.5 * self.block_ms


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
        self._sequencer: Any = None
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
            self._start_sequencer()
            if driver is not None:
                self._start_driver(driver)
        except BaseException:
            self._close()
            self.closed = True
            raise
        where = driver or "offline"
        self.description = f"fluidsynth/{where} · {self.soundfont.name}"

    def _start_sequencer(self) -> None:
        # Driven by the synth's sample timer (not the system timer): it plays queued events in the audio
        # thread, between 64-frame blocks. Registered before the audio driver starts: FluidSynth's sample
        # timer list is not guarded against the audio thread.
        self._calls = _SequencerCalls(self._fs.find_libfluidsynth())
        self._sequencer = self._fs.Sequencer(time_scale=1000, use_system_timer=False)
        self._synth_id = self._sequencer.register_fluidsynth(self._synth)
        seq = self._sequencer.sequencer
        self._sources = [
            self._calls.register_client(seq, f"channel-{channel}".encode(), None, None)
            for channel in range(self.channels)
        ]
        if min(self._sources) < 0:
            raise AudioDriverError("FluidSynth's sequencer did not take our clients")
        self._event = self._calls.new_event()
        self._last_on: dict[tuple[int, int], int] = {}  # (channel, key): tick of its latest note-on
        self.clock = SynthClock(self.sample_rate)

    def observe_clock(self, now_ns: int | None = None) -> None:
        """Read the sequencer's tick against the system clock: play_at() does, the scheduler polls."""
        tick = self._calls.get_tick(self._sequencer.sequencer)
        self.clock.observe(time.perf_counter_ns() if now_ns is None else now_ns, tick)

    def play_at(self, channel: int, event: MusicEvent, due_ns: int) -> int:
        """Queue `event` in FluidSynth's sequencer, to play in the block that renders `due_ns`.

        Returns how late it came (ns): by how much its block had already been rendered. Such an event is
        played at once instead (FluidSynth starts it with the next period it renders).
        """
        if self.closed or not 0 <= channel < self.channels or not 0 <= event.number <= 127:
            return 0
        calls, evt = self._calls, self._event
        now = time.perf_counter_ns()
        rendered = int(calls.get_tick(self._sequencer.sequencer))  # the last block the audio thread rendered
        self.clock.observe(now, rendered)
        tick = max(0, round(self.clock.tick_of(due_ns)))
        value = min(127, max(0, event.value))
        if event.kind is EventKind.NOTE:
            # At one tick FluidSynth plays note-ons last: a release that rounds onto its own note-on's
            # tick would come first and leave the note hanging. It goes a tick (1 ms) later instead.
            key = (channel, event.number)
            if value > 0:
                self._last_on[key] = tick
            elif self._last_on.get(key, -1) >= tick:
                tick = self._last_on[key] + 1
        if tick <= rendered:
            # Its block is rendered already: queued, it would sound a block into the next period; played
            # now, from the start of it. Order holds: whatever came before it for this channel has a
            # tick no later, so it has been played too.
            self.play(channel, event)
            return (rendered - tick) * 1_000_000
        if event.kind is EventKind.NOTE:
            if value > 0:
                calls.noteon(evt, channel, event.number, value)
            else:
                calls.noteoff(evt, channel, event.number)
        else:
            calls.control_change(evt, channel, event.number, value)
        calls.set_source(evt, self._sources[channel])
        calls.set_dest(evt, self._synth_id)
        if calls.send_at(self._sequencer.sequencer, evt, tick, 1) != 0:
            raise AudioDriverError("FluidSynth's sequencer refused an event")
        self.events_played += 1
        return 0

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
        self._calls.remove_events(self._sequencer.sequencer, self._sources[channel], -1, -1)
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
        # The audio thread first (it runs the sequencer's timer), then the sequencer, then the synth.
        if self._driver_handle is not None:
            self._fs.delete_fluid_audio_driver(self._driver_handle)
            self._driver_handle = self._synth.audio_driver = None
        if self._sequencer is not None:
            if getattr(self, "_event", None):
                self._calls.delete_event(self._event)
            self._sequencer.delete()
            self._sequencer = None
        self._synth.delete()
