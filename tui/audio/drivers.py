"""Choosing and starting the synth: SoundFont, audio driver (explicit or auto), or silent mode.

`open_synth()` never fails for want of sound: with --no-audio, no SoundFont (a missing or broken one the
user named included) or no driver that starts, it returns a `NullSynth` whose `reason` is the one-line
warning to show; the app carries on silently. Each driver that did not start is logged at DEBUG only: the
caller says in one line which one plays, or why nothing does.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import TYPE_CHECKING, Final

from .soundfont import SoundfontError, find_soundfont
from .synth import AudioDriverError, FluidSynthSynth, NullSynth, Synth

if TYPE_CHECKING:
    from pianorhythm.tui.config import Config

log = logging.getLogger(__name__)

# Tried in turn by auto (README "Sound"): the desktop sound server (PulseAudio, or PipeWire's Pulse server,
# then PipeWire's own), then the raw ALSA device, then JACK, then macOS's and Windows' own; none: silence.
AUTO_DRIVERS: Final[tuple[str, ...]] = (
    "pulseaudio", "pipewire", "alsa", "jack", "coreaudio", "wasapi", "dsound",
)  # fmt: skip


def compiled_drivers() -> list[str]:
    """The audio drivers this libfluidsynth was built with (e.g. alsa, file, jack, oss, pulseaudio, sdl2).

    Empty when FluidSynth is not installed.
    """
    try:
        import fluidsynth

        lib = ctypes.CDLL(fluidsynth.find_libfluidsynth())
    except (ImportError, OSError):
        return []
    lib.new_fluid_settings.restype = ctypes.c_void_p
    lib.delete_fluid_settings.argtypes = [ctypes.c_void_p]
    lib.fluid_settings_foreach_option.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    names: list[str] = []
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)(
        lambda _data, _name, option: names.append((option or b"").decode())
    )
    settings = lib.new_fluid_settings()
    try:
        lib.fluid_settings_foreach_option(
            settings, b"audio.driver", None, ctypes.cast(callback, ctypes.c_void_p)
        )
    finally:
        lib.delete_fluid_settings(settings)
    return names


def audio_driver_choices() -> list[str]:
    """For a settings screen: "auto" then the drivers auto may pick that this FluidSynth has."""
    compiled = compiled_drivers()
    return ["auto"] + [name for name in AUTO_DRIVERS if name in compiled]


def open_synth(
    soundfont: str | os.PathLike[str] | None = None,
    driver: str | None = None,
    *,
    no_audio: bool = False,
) -> Synth:
    """Start the synth the user asked for: `driver` None or "auto" tries AUTO_DRIVERS in turn.

    Returns a FluidSynthSynth, or a NullSynth whose `reason` says why it is silent (`soundfont` or
    $PIANORHYTHM_SOUNDFONT naming a missing file, for one).
    """
    if no_audio:
        return NullSynth("audio off (--no-audio); notes still show")
    try:
        choice = find_soundfont(soundfont)
    except SoundfontError as error:
        return NullSynth(f"playing silently: {error}")
    if choice.path is None:
        return NullSynth(f"playing silently: {choice.reason}")
    compiled = compiled_drivers()
    if not compiled:
        return NullSynth("playing silently: FluidSynth is not installed (apt install libfluidsynth3)")
    # Never let a JACK probe launch a JACK server of its own (slow, and fails without a sound card).
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    if driver and driver != "auto":
        candidates = [driver]
    else:
        candidates = [name for name in AUTO_DRIVERS if name in compiled]
    failures: list[str] = []
    for name in candidates:
        try:
            synth = FluidSynthSynth(choice.path, driver=name)
        except AudioDriverError:
            failures.append(name)
            log.debug("audio driver %s did not start", name)
            continue
        except SoundfontError as error:
            return NullSynth(f"playing silently: {error}")
        log.debug("audio: %s (%s)", synth.description, choice.reason)
        return synth
    if driver and driver != "auto":
        hint = (
            f"choose one of {', '.join(compiled)}"
            if driver not in compiled
            else "is its sound server running?"
        )
        return NullSynth(f"playing silently: audio driver {driver!r} did not start ({hint})")
    return NullSynth(f"playing silently: no audio driver started (tried {', '.join(failures) or 'none'})")


def open_configured_synth(settings: Config, *, no_audio: bool = False) -> Synth:
    """open_synth() with the user's settings (config.toml with the flags on top): font, driver, levels."""
    synth = open_synth(settings.soundfont or None, settings.audio_driver or None, no_audio=no_audio)
    synth.set_volume(settings.volume)
    synth.set_reverb(settings.reverb)
    synth.set_chorus(settings.chorus)
    return synth
