"""Musical events as the client handles them between MIDI input, the wire, the scheduler and the synth."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

SUSTAIN_PEDAL: Final = 64


class EventKind(IntEnum):
    NOTE = 0
    CONTROL = 1


@dataclass(frozen=True, slots=True)
class MusicEvent:
    """A key press/release or a control change, stamped with a perf_counter_ns time.

    For NOTE, `number` is the MIDI key and `value` the velocity (0 = release). For CONTROL, `number` is the
    controller (64 = sustain pedal) and `value` its value (>= 64 = down).
    """

    kind: EventKind
    number: int
    value: int
    time_ns: int

    @property
    def is_note_on(self) -> bool:
        return self.kind is EventKind.NOTE and self.value > 0

    @property
    def is_note_off(self) -> bool:
        return self.kind is EventKind.NOTE and self.value == 0
