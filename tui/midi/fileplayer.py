"""Playing standard MIDI files: read one into a timed event list, then play it in real time.

`read_midi_file()` merges every track (types 0 and 1), honours tempo changes wherever they are, and works
in exact integer arithmetic (ticks x microseconds per beat), so a 10-minute file has no rounding drift.
`play_events()` calls back at absolute perf_counter times computed from one start instant, so late
wake-ups never accumulate; each MusicEvent it delivers carries its scheduled time, not the wake-up time.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent

DEFAULT_TEMPO: Final = 500_000  # microseconds per beat (120 bpm), the MIDI default
DRUM_CHANNEL: Final = 9
PEDALS: Final = frozenset({SUSTAIN_PEDAL, 66, 67})


class MidiFileError(Exception):
    """The file cannot be played; str() is one sentence naming the file and the problem."""


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """A note or pedal event of a file; `event.time_ns` is the offset from the start, like `seconds`."""

    seconds: float
    event: MusicEvent
    channel: int
    track: int


@dataclass(frozen=True, slots=True)
class ProgramChange:
    seconds: float
    channel: int
    program: int
    track: int


@dataclass(slots=True)
class MidiFileData:
    path: Path
    file_type: int
    events: list[TimedEvent] = field(default_factory=list)
    programs: list[ProgramChange] = field(default_factory=list)
    track_names: list[str] = field(default_factory=list)
    duration: float = 0.0  # seconds to the last event (end of track included)

    @property
    def note_count(self) -> int:
        return sum(1 for timed in self.events if timed.event.is_note_on)

    def music(self) -> list[MusicEvent]:
        """The note and pedal events, `time_ns` = offset from the file's start (what play_events takes)."""
        return [timed.event for timed in self.events]

    def first_program(self) -> int | None:
        """The first program change at the file's start (an instrument to play it with), if any."""
        return self.programs[0].program if self.programs else None


def _load(path: Path) -> Any:
    import mido

    try:
        return mido.MidiFile(path, charset="utf-8", clip=True)
    except FileNotFoundError as error:
        raise MidiFileError(f"MIDI file {str(path)!r} does not exist.") from error
    except EOFError as error:  # mido says nothing more: the data stops inside a chunk
        raise MidiFileError(
            f"{str(path)!r} is not a readable MIDI file (it ends before its last track does: "
            "cut short while copying or downloading?)."
        ) from error
    except (OSError, ValueError, KeyError, IndexError) as error:
        reason = str(error) or "its contents do not follow the MIDI file format"
        raise MidiFileError(f"{str(path)!r} is not a readable MIDI file ({reason}).") from error


def read_midi_file(
    path: str | os.PathLike[str], *, include_drums: bool = False, controllers: frozenset[int] = PEDALS
) -> MidiFileData:
    """Every note and pedal event of the file in time order. Drums (channel 10) are left out unless asked:
    a piano playing drum-kit notes sounds like noise. Raises MidiFileError.
    """
    mid = _load(Path(path))
    if mid.type == 2:
        raise MidiFileError(f"{str(path)!r} is a type 2 MIDI file (independent patterns); only 0 and 1 play.")
    ppq = int(mid.ticks_per_beat)
    if ppq <= 0:
        raise MidiFileError(f"{str(path)!r} uses SMPTE timing, which is not supported.")
    stamped: list[tuple[int, int, int, Any]] = []
    names: list[str] = []
    for index, track in enumerate(mid.tracks):
        tick = 0
        names.append(str(track.name))
        for seq, message in enumerate(track):
            tick += int(message.time)
            stamped.append((tick, index, seq, message))
    stamped.sort(key=lambda item: item[:3])
    data = MidiFileData(Path(path), int(mid.type), track_names=names)
    tempo, last_tick, elapsed = DEFAULT_TEMPO, 0, 0  # elapsed: microseconds x ppq, exact
    for tick, index, _seq, message in stamped:
        elapsed += (tick - last_tick) * tempo
        last_tick = tick
        time_ns = elapsed * 1000 // ppq
        seconds = time_ns / 1e9
        kind = message.type
        if kind == "set_tempo":
            tempo = int(message.tempo)
            continue
        channel = getattr(message, "channel", None)
        if channel is None or (channel == DRUM_CHANNEL and not include_drums):
            continue
        event: MusicEvent | None = None
        if kind == "note_on":
            event = MusicEvent(EventKind.NOTE, message.note, message.velocity, time_ns)
        elif kind == "note_off":
            event = MusicEvent(EventKind.NOTE, message.note, 0, time_ns)
        elif kind == "control_change" and message.control in controllers:
            event = MusicEvent(EventKind.CONTROL, message.control, message.value, time_ns)
        elif kind == "program_change":
            data.programs.append(ProgramChange(seconds, channel, message.program, index))
        if event is not None:
            data.events.append(TimedEvent(seconds, event, channel, index))
    data.duration = elapsed / ppq / 1e6
    return data


def read_events(path: str | os.PathLike[str]) -> list[MusicEvent]:
    """The file's note and pedal events, `time_ns` = offset from the file's start. Raises MidiFileError."""
    return read_midi_file(path).music()


async def play_events(
    events: Iterable[MusicEvent],
    on_event: Callable[[MusicEvent], None],
    *,
    start_ns: int | None = None,
    speed: float = 1.0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> int:
    """Call `on_event` for each event at `start_ns + event.time_ns / speed` on `clock` (default: now).

    Delivered events carry that scheduled time in `time_ns`. Returns how many were played. When cancelled
    (the user stops playback), releases every key and pedal still down before re-raising, so nothing
    sticks on the listeners' side.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    origin = clock() if start_ns is None else start_ns
    held: set[int] = set()
    pedals: set[int] = set()
    played = 0
    try:
        for timed in events:
            due = origin + int(timed.time_ns / speed)
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            event = MusicEvent(timed.kind, timed.number, timed.value, due)
            if event.kind is EventKind.NOTE:
                (held.add if event.value > 0 else held.discard)(event.number)
            else:
                (pedals.add if event.value >= 64 else pedals.discard)(event.number)
            on_event(event)
            played += 1
    except asyncio.CancelledError:
        now = clock()
        for key in sorted(held):
            on_event(MusicEvent(EventKind.NOTE, key, 0, now))
        for pedal in sorted(pedals):
            on_event(MusicEvent(EventKind.CONTROL, pedal, 0, now))
        raise
    return played


async def play_file(
    path: str | os.PathLike[str],
    on_event: Callable[[MusicEvent], None],
    *,
    start_ns: int | None = None,
    speed: float = 1.0,
) -> int:
    """Read and play a MIDI file (see read_midi_file and play_events). Raises MidiFileError."""
    data = read_midi_file(path)
    return await play_events(data.music(), on_event, start_ns=start_ns, speed=speed)
