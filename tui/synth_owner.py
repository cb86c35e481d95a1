"""The engine's hold on the synth: one lock around every call, a live swap, and a silent fallback.

Every synth call goes through `_synth_lock`. `replace_synth()` swaps the synth at once and re-queues the
remote notes still to come (pianorhythm.tui.audio.scheduler) into the new one. A synth call that raises
never stops the music: the owner switches to a NullSynth, closes the broken one and emits SynthFailed (then
SynthChanged); notes keep flowing to the screen and the recorder.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from pianorhythm.client import model as m
from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.tui.audio.scheduler import SynthScheduler
from pianorhythm.tui.audio.synth import NullSynth, Synth

log = logging.getLogger(__name__)


class SynthOwner:
    """A mixin of the Engine: it gives `_emit`, `_loop`, `scheduler` and `_channel_states`."""

    synth: Synth
    scheduler: SynthScheduler
    _synth_lock: threading.RLock
    _loop: asyncio.AbstractEventLoop | None

    def _emit(self, event: m.EngineEvent) -> None:
        raise NotImplementedError

    def _channel_states(self) -> list[tuple[int, int, bool]]:
        """(channel, program, sustain pedal down) of every channel in use."""
        raise NotImplementedError

    def replace_synth(self, synth: Synth, *, keep_levels: bool = True, close_old: bool = True) -> Synth:
        """Play into `synth` from now on (another audio driver or SoundFont); returns the old one.

        The new synth gets every channel's program (ours and each player's), the sustain pedal of whoever
        holds it down, the remote events still to come and, with `keep_levels`, the old one's volume,
        reverb and chorus. Every channel of the old synth is released (notes sounding on it stop) and, with
        `close_old`, it is closed. Call it on the event loop's thread; closing a FluidSynth stops its audio
        driver, which can take a few ms.
        """
        if synth.channels < self.synth.channels:
            log.warning("the new synth has %d channels; players past them will be silent", synth.channels)
        if keep_levels:
            synth.set_volume(self.synth.volume)
            synth.set_reverb(self.synth.reverb)
            synth.set_chorus(self.synth.chorus)
        with self._synth_lock:
            old, self.synth = self.synth, synth
            for channel, program, pedal in self._channel_states():
                self._guarded(synth, synth.set_program, channel, program)
                if pedal:
                    self._guarded(synth, synth.play, channel, _pedal_down())
            try:
                for channel in range(old.channels):
                    old.release_all(channel)  # its queue of remote events goes with it
            except Exception:
                log.exception("releasing the old synth's channels failed")
            self.scheduler.resend()  # into the new one
        if close_old:
            _close_quietly(old)
        self._emit(_synth_changed(self.synth))  # the silent fallback if the new one failed at once
        return old

    def _sound(self, channel: int, event: MusicEvent) -> None:
        with self._synth_lock:
            self._guarded(self.synth, self.synth.play, channel, event)

    def _synth_program(self, channel: int, program: int) -> None:
        with self._synth_lock:
            self._guarded(self.synth, self.synth.set_program, channel, program)

    def _synth_release(self, channel: int) -> None:
        with self._synth_lock:
            self._guarded(self.synth, self.synth.release_all, channel)

    def _guarded(self, synth: Synth, call: Callable[..., object], *args: object) -> object:
        """Call into `synth` (holding _synth_lock) and return what it returns; if it raises, fall back to
        silence (None), never propagate."""
        try:
            return call(*args)
        except Exception as exc:
            if synth is not self.synth:
                return None  # already replaced
            error = str(exc) or "the synth failed"  # the class name goes to the log, not to the player
            message = f"audio stopped ({error}); notes still show"
            log.error("the synth failed (%r); playing silently from now on", exc, exc_info=True)
            fallback = NullSynth(message, channels=synth.channels)
            fallback.volume, fallback.reverb, fallback.chorus = synth.volume, synth.reverb, synth.chorus
            self.synth = fallback
            self._on_loop(self._synth_failed, synth, error, message)
            return None

    def _synth_failed(self, broken: Synth, error: str, message: str) -> None:
        _close_quietly(broken)
        self._emit(m.SynthFailed(error, message))
        self._emit(_synth_changed(self.synth))

    def _on_loop(self, callback: Callable[..., None], *args: object) -> None:
        """Run `callback` on the event loop (from any thread); at once if the engine has no loop yet."""
        loop = self._loop
        if loop is None or loop.is_closed():
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)


def _pedal_down() -> MusicEvent:
    return MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127, time.perf_counter_ns())


def _synth_changed(synth: Synth) -> m.SynthChanged:
    return m.SynthChanged(
        synth.description, synth.silent, getattr(synth, "reason", "") if synth.silent else ""
    )


def _close_quietly(synth: Synth) -> None:
    try:
        synth.close()
    except Exception:
        log.exception("closing the synth failed")
