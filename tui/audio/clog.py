"""Keep diagnostics of the C libraries (FluidSynth, JACK, ALSA) off the terminal, in `logging` instead.

Those libraries print straight to the process's stderr, which scribbles over a full-screen TUI (probing
for an audio driver or a MIDI system that is absent prints half a dozen lines). Two tools:
- `route_fluidsynth_logs()` installs FluidSynth's documented log hook (`fluid_set_log_function`).
- `captured_stderr()` points file descriptor 2 at a temporary file while a device is probed or opened,
  then logs what was written there at DEBUG. JACK's and ALSA's error hooks are not used: JACK 2 ignores
  `jack_set_error_function` while a client opens, and ALSA's hook is variadic (unsafe through ctypes).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("tui.clib")

_LOCK = threading.RLock()
_routed = False
_captured: list[str] | None = None  # FluidSynth messages collected while captured_stderr() is active
_keep_alive: list[Any] = []  # ctypes callbacks must outlive the C library's use of them

# void (*)(int level, const char *message, void *data)
_FLUID_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_FLUID_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG}


def route_fluidsynth_logs() -> None:
    """Send FluidSynth's messages to the `tui.clib` logger instead of stderr (once per process)."""
    global _routed
    with _LOCK:
        if _routed:
            return
        _routed = True
        try:
            import fluidsynth  # pyfluidsynth's loader knows where libfluidsynth lives on each platform

            lib = ctypes.CDLL(fluidsynth.find_libfluidsynth())
        except (ImportError, OSError):
            return

        def on_log(level: int, message: bytes | None, _data: int | None) -> None:
            text = (message or b"").decode("utf-8", "replace").strip()
            if _captured is not None:  # a probe: failures are expected, keep them at DEBUG
                _captured.append(f"fluidsynth: {text}")
                return
            log.log(_FLUID_LEVELS.get(level, logging.DEBUG), "fluidsynth: %s", text)

        callback = _FLUID_LOG_FN(on_log)
        _keep_alive.append(callback)
        for level in _FLUID_LEVELS:
            lib.fluid_set_log_function(level, callback, None)


@contextlib.contextmanager
def captured_stderr(what: str) -> Iterator[None]:
    """While the block runs, C-level writes to fd 2 go to a temp file, then to the log (DEBUG, `what`).

    FluidSynth messages logged meanwhile are collected too. Process-wide, so kept short (a device probe).
    """
    global _captured
    with _LOCK:
        outer = _captured
        _captured = lines = []
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            try:
                yield
            finally:
                _captured = outer
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                _captured = outer
                sink.seek(0)
                lines += sink.read().decode("utf-8", "replace").strip().splitlines()
                if lines:
                    log.debug("%s: %s", what, " | ".join(lines))
