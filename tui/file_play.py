"""--play and --record in the TUI, as in headless mode: a file played into the room, a session recorded.

    playback = FilePlayback(engine, path, song, room, run=app.run_worker, notify=app.notify, changed=...)
    engine.subscribe(playback)          # starts once the room asked for (the lobby if none) is entered
    playback.status()                   # "▶ song.mid 0:07/0:18 · Ctrl+S stops" while it plays
    playback.stop()                     # releases every key it holds
    ok, sentence = close_recording(recorder, path)  # on quit: the file, and what to print after the UI

No UI code here: the app passes how to run a coroutine, how to tell the user, and what to redraw.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Protocol

from pianorhythm.client import model as m
from pianorhythm.tui.engine import Engine, play_file_events
from pianorhythm.tui.midi.fileplayer import MidiFileData
from pianorhythm.tui.midi.recorder import MidiRecorder

log = logging.getLogger(__name__)

DRAIN_S: Final = 0.5  # after the file ends: let the last notes reach the server before --exit-after-play
STOP_KEY: Final = "Ctrl+S"


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


class FilePlayback:
    """Plays `song` once into the room named `room` (None: the first room entered, i.e. the lobby).

    Leaving that room stops it. `done`, if given, is awaited after the file has played (--exit-after-play).
    """

    def __init__(
        self,
        engine: Engine,
        path: str,
        song: MidiFileData,
        room: str | None,
        *,
        run: Callable[..., Cancellable],  # App.run_worker
        notify: Callable[..., object],  # App.notify
        changed: Callable[[], None],
        done: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.name = Path(path).name
        self.song = song
        self.room = room
        self.state = "waiting"  # then "playing", and "done" or "stopped"
        self._run, self._notify, self._changed, self._done = run, notify, changed, done
        self._worker: Cancellable | None = None
        self._room_playing = self._where = ""
        self._started = 0.0

    def __call__(self, event: m.EngineEvent) -> None:
        if not isinstance(event, m.RoomEntered):
            return
        name = event.room.name
        if self.state == "waiting" and (self.room is None or name == self.room):
            self.state, self._room_playing, self._started = "playing", name, time.monotonic()
            self._where = "the lobby" if event.room.is_lobby else name
            self._worker = self._run(self._play(), group="play", exclusive=True)
            self._changed()
        elif self.state == "playing" and name != self._room_playing:
            self.stop(f"you left {self._where}")

    def status(self) -> str:
        """The status-bar text while the file plays, else ""."""
        if self.state != "playing":
            return ""
        at = min(time.monotonic() - self._started, self.song.duration)
        return f"▶ {self.name} {_clock(at)}/{_clock(self.song.duration)} · {STOP_KEY} stops"

    def stop(self, why: str = "") -> bool:
        """Stop playing (the keys it holds are released). False if it was not playing."""
        if self.state != "playing" or self._worker is None:
            return False
        self.state = "stopped"
        self._worker.cancel()
        self._notify(f"Stopped playing {self.name}" + (f" ({why})." if why else "."))
        self._changed()
        return True

    async def _play(self) -> None:
        program = self.song.first_program()
        if program is not None:
            self.engine.set_instrument(program)
        self._notify(f"Playing {self.name} into {self._where}; {STOP_KEY} stops it.")
        try:
            count = await play_file_events(self.engine, self.song.music())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the engine closed under it, a synth error: say so, keep the app
            log.exception("playing %s failed", self.name)
            self.state = "stopped"
            self._notify(f"Playing {self.name} stopped: {error}.", severity="error")
            self._changed()
            return
        self.state = "done"
        self._notify(f"Finished playing {self.name} ({count} events).")
        self._changed()
        if self._done is not None:
            await asyncio.sleep(DRAIN_S)
            await self._done()


def close_recording(recorder: MidiRecorder, path: str) -> tuple[bool, str]:
    """Write the --record file, even an empty one. Returns (ok, the sentence to show the user)."""
    try:
        recorder.save()
    except OSError as error:
        log.error("recording not written to %s: %s", path, error)
        return False, f"error: --record {path} was not written ({error.strerror or error}); check the path."
    return True, f"Recorded {recorder.event_count} events to {Path(path).resolve()}."


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
