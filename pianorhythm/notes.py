"""Notes between MusicEvent and the wire, and which keys a player holds. Pure: times are passed in.

Outgoing: local MusicEvents (perf_counter_ns capture times) become NoteBatch messages whose base_time_us is
the first event's capture time in server time and whose events carry µs offsets from it. A batch holds at
most MAX_EVENTS_PER_BATCH events spanning at most MAX_OFFSET_US; longer runs are split.

Incoming: RelayedNotes become RemoteEvents, each with its capture time in server µs; the scheduler maps that
to our clock and adds the playout delay.

HeldNotes tracks what a player holds (keys down, keys sounding under the sustain pedal, pedal down) so that
when they leave, the recorder can be given the matching releases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.wire import pianorhythm_pb2 as pb

MAX_EVENTS_PER_BATCH: Final = 64
MAX_OFFSET_US: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class RemoteEvent:
    """An event from the wire: its capture time in server µs and what it is."""

    capture_server_us: int
    kind: EventKind
    number: int
    value: int

    def at(self, time_ns: int) -> MusicEvent:
        """The MusicEvent to play at `time_ns` (our perf_counter_ns clock)."""
        return MusicEvent(self.kind, self.number, self.value, time_ns)


def _valid(kind: EventKind, number: int, value: int) -> bool:
    return 0 <= number <= 127 and 0 <= value <= 127


def event_to_wire(event: MusicEvent, offset_us: int) -> pb.NoteEvent:
    wire = pb.NoteEvent(offset_us=offset_us)
    if event.kind is EventKind.NOTE:
        wire.note.key = event.number
        wire.note.velocity = event.value
    else:
        wire.control.controller = event.number
        wire.control.value = event.value
    return wire


def pack_batches(events: Sequence[MusicEvent], offset_us: float) -> list[pb.NoteBatch]:
    """Local events (capture order) -> NoteBatches. `offset_us` maps our µs clock to server µs.

    Events out of range are dropped; capture times going backwards are clamped to keep offsets >= 0.
    """
    batches: list[pb.NoteBatch] = []
    current: pb.NoteBatch | None = None
    base_local_us = 0
    for event in events:
        if not _valid(event.kind, event.number, event.value):
            continue
        local_us = event.time_ns // 1000
        delta = max(0, local_us - base_local_us)
        if current is None or len(current.events) >= MAX_EVENTS_PER_BATCH or delta > MAX_OFFSET_US:
            current = pb.NoteBatch(base_time_us=round(local_us + offset_us))
            batches.append(current)
            base_local_us = local_us
            delta = 0
        current.events.append(event_to_wire(event, delta))
    return batches


def unpack(base_time_us: int, events: Iterable[pb.NoteEvent]) -> list[RemoteEvent]:
    """The events of a NoteBatch/RelayedNotes with absolute server capture times; invalid ones dropped."""
    out: list[RemoteEvent] = []
    for wire in events:
        which = wire.WhichOneof("event")
        if which == "note":
            kind, number, value = EventKind.NOTE, wire.note.key, wire.note.velocity
        elif which == "control":
            kind, number, value = EventKind.CONTROL, wire.control.controller, wire.control.value
        else:
            continue
        if _valid(kind, number, value) and wire.offset_us <= MAX_OFFSET_US:
            out.append(RemoteEvent(base_time_us + wire.offset_us, kind, number, value))
    return out


def unpack_relayed(notes: pb.RelayedNotes) -> list[RemoteEvent]:
    return unpack(notes.base_time_us, notes.events)


class HeldNotes:
    """Keys and pedal one player holds, to release them when the player goes away."""

    def __init__(self) -> None:
        self.down: set[int] = set()  # keys pressed
        self.sustained: set[int] = set()  # released keys still sounding under the pedal
        self.pedal = False

    def apply(self, event: MusicEvent) -> None:
        if event.kind is EventKind.NOTE:
            if event.value > 0:
                self.down.add(event.number)
                self.sustained.discard(event.number)
            elif event.number in self.down:
                self.down.discard(event.number)
                if self.pedal:
                    self.sustained.add(event.number)
        elif event.number == SUSTAIN_PEDAL:
            self.pedal = event.value >= 64
            if not self.pedal:
                self.sustained.clear()

    @property
    def empty(self) -> bool:
        return not self.down and not self.pedal

    def release(self, time_ns: int) -> list[MusicEvent]:
        """Note-offs for every held key and a pedal-up if needed; the state is cleared."""
        out = [MusicEvent(EventKind.NOTE, key, 0, time_ns) for key in sorted(self.down)]
        if self.pedal:
            out.append(MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 0, time_ns))
        self.down.clear()
        self.sustained.clear()
        self.pedal = False
        return out
