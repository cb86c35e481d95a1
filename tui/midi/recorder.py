"""Recording a session to a standard MIDI file (--record FILE.mid).

Type 1, one track per player who played a note or a pedal, named after them (track_name meta), every
event at the perf_counter_ns time it was scheduled to the synth, so the file sounds like what was heard.
The time base is fixed: 120 bpm at 960 ticks per beat, one tick = 0.52 ms, so any time is within 0.26 ms
of exact.

The recorder keeps events in memory (a few MB for hours of playing) and writes the whole file atomically
(temp file + rename) on `flush()` and `close()`: an interrupted app leaves either the previous complete
file or the new one, never half of one. Call `close()` on every exit path (the SIGINT path included);
`flush()` now and then bounds what a hard kill can lose.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import mido

from pianorhythm.channels import usable_channels
from pianorhythm.events import EventKind, MusicEvent

log = logging.getLogger(__name__)

PPQ: Final = 960
TEMPO: Final = 500_000  # microseconds per beat: 120 bpm
NS_PER_TICK: Final = TEMPO * 1000 / PPQ  # 520,833.3 ns
FILE_CHANNELS: Final = usable_channels(16)  # 15 channels; the drum channel is skipped
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class _Track:
    name: str
    channel: int
    program: int | None
    # (time_ns, arrival order, kind, number, value); kind "note", "control" or "program"
    items: list[tuple[int, int, str, int, int]] = field(default_factory=list)


class MidiRecorder:
    """Collects events per player and writes them as a type-1 MIDI file.

    `start_ns` is time zero of the file; None makes the earliest recorded event time zero.
    Players are any hashable keys (user ids); a player seen for the first time gets a track named
    `name` if given to add_player(), else str(key).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, start_ns: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.start_ns = start_ns
        self.closed = False
        self._lock = threading.Lock()  # the engine records from its dispatch thread
        self._tracks: dict[Hashable, _Track] = {}
        self._order = 0
        self._dirty = False

    @property
    def event_count(self) -> int:
        """Events in the tracks the file will hold."""
        return sum(len(track.items) for track in self._played_tracks())

    def add_player(self, player: Hashable, name: str, program: int | None = None) -> None:
        """Name a player's track (and its starting program) before or after their first event."""
        with self._lock:
            track = self._track(player)
            track.name = _clean_name(name)
            if program is not None and track.program is None:
                track.program = min(127, max(0, program))

    def record(self, player: Hashable, event: MusicEvent) -> None:
        """A note or control event of `player`, at `event.time_ns` (when it was scheduled to the synth)."""
        if self.closed or not 0 <= event.number <= 127:
            return
        kind = "note" if event.kind is EventKind.NOTE else "control"
        self._add(player, event.time_ns, kind, event.number, min(127, max(0, event.value)))

    def add(self, track: Hashable, event: MusicEvent) -> None:
        """Same as record(): the engine's Recorder protocol, keyed by track (player) name."""
        self.record(track, event)

    def set_program(self, player: Hashable, program: int, time_ns: int) -> None:
        """The player switched to General MIDI `program` (0-127) at `time_ns`."""
        if not self.closed:
            self._add(player, time_ns, "program", min(127, max(0, program)), 0)

    def flush(self) -> None:
        """Write everything recorded so far to `path` (atomically). Does nothing if nothing changed."""
        with self._lock:
            if self._dirty and self.path is not None:
                self._write(self.path)
                self._dirty = False

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write everything recorded to `path` (default: the recorder's own path) and stop recording."""
        if path is not None:
            self.path = Path(path)
        if self.path is None:
            raise ValueError("MidiRecorder.save() needs a path")
        with self._lock:
            self._write(self.path)
            self._dirty = False
        self.closed = True

    def close(self) -> None:
        """Write the file and stop recording. Idempotent; safe on the SIGINT path."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True

    # ------------------------------------------------------------------------------------------------

    def _track(self, player: Hashable) -> _Track:
        track = self._tracks.get(player)
        if track is None:
            channel = FILE_CHANNELS[len(self._tracks) % len(FILE_CHANNELS)]
            track = self._tracks[player] = _Track(_clean_name(str(player)), channel, None)
        return track

    def _add(self, player: Hashable, time_ns: int, kind: str, number: int, value: int) -> None:
        with self._lock:
            self._track(player).items.append((time_ns, self._order, kind, number, value))
            self._order += 1
            self._dirty = True

    def _origin(self) -> int:
        if self.start_ns is not None:
            return self.start_ns
        times = [item[0] for track in self._tracks.values() for item in track.items]
        return min(times, default=0)

    def _played_tracks(self) -> list[_Track]:
        """Tracks with a note or pedal: not the recorder's own when it never played, nor people only seen."""
        return [track for track in self._tracks.values() if any(item[2] != "program" for item in track.items)]

    def _write(self, path: Path) -> None:
        origin = self._origin()
        mid = mido.MidiFile(type=1, ticks_per_beat=PPQ, charset="utf-8")
        mid.tracks.append(
            mido.MidiTrack(
                [
                    mido.MetaMessage("track_name", name="pianorhythm-tui"),
                    mido.MetaMessage("set_tempo", tempo=TEMPO),
                    mido.MetaMessage("time_signature", numerator=4, denominator=4),
                ]
            )
        )
        timed_tracks = []
        for track in self._played_tracks():
            items = sorted(track.items, key=lambda item: (item[0], item[1]))
            timed_tracks.append(
                (track, [(_ticks(item[0] - origin), _message(track.channel, item)) for item in items])
            )
        end_tick = max((timed[-1][0] for _, timed in timed_tracks if timed), default=0)
        for track, timed in timed_tracks:
            mid.tracks.append(_build_track(track, timed, end_tick))
        tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        mid.save(tmp)
        os.replace(tmp, path)
        log.info("recorded %d events to %s", self.event_count, path)


def unwritable(path: str | os.PathLike[str]) -> str | None:
    """Why a recording could not be written to `path`, found before a session is played into it; or None."""
    target = Path(path).expanduser()
    if target.is_dir():
        return "that is a folder; name a file, e.g. out.mid"
    folder = target.parent
    while not folder.exists():  # the recorder makes the missing folders
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"you may not write in {folder}"
    return None


def _clean_name(name: str) -> str:
    return _UNPRINTABLE.sub("", name).strip()[:64] or "player"


def _ticks(delta_ns: int) -> int:
    return max(0, round(delta_ns / NS_PER_TICK))


def _message(channel: int, item: tuple[int, int, str, int, int]) -> Any:
    _time, _order, kind, number, value = item
    if kind == "note":
        if value > 0:
            return mido.Message("note_on", channel=channel, note=number, velocity=value)
        return mido.Message("note_off", channel=channel, note=number, velocity=64)
    if kind == "control":
        return mido.Message("control_change", channel=channel, control=number, value=value)
    return mido.Message("program_change", channel=channel, program=number)


def _build_track(track: _Track, timed: list[tuple[int, Any]], end_tick: int) -> Any:
    """A track: name, starting program, the events as deltas, then releases for anything still down."""
    out = mido.MidiTrack([mido.MetaMessage("track_name", name=track.name)])
    if track.program is not None:
        out.append(mido.Message("program_change", channel=track.channel, program=track.program))
    held: set[int] = set()
    pedals: set[int] = set()
    last = 0
    for tick, message in timed:
        if message.type == "note_on":
            held.add(message.note)
        elif message.type == "note_off":
            held.discard(message.note)
        elif message.type == "control_change":
            (pedals.add if message.value >= 64 else pedals.discard)(message.control)
        out.append(message.copy(time=tick - last))
        last = tick
    tail = [mido.Message("note_off", channel=track.channel, note=note, velocity=64) for note in sorted(held)]
    tail += [
        mido.Message("control_change", channel=track.channel, control=c, value=0) for c in sorted(pedals)
    ]
    for message in tail:
        out.append(message.copy(time=end_tick - last))
        last = end_tick
    out.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - last)))
    return out


Recorder = MidiRecorder  # the name pianorhythm.tui.engine and pianorhythm.tui.headless use
