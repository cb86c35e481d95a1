"""Playout delay per remote player: when to play a note that arrived over the network. Pure, times in µs.

A remote event captured at `capture` (the sender's capture time, mapped to our clock) is due at
`capture + delay`. The *transit* of an event is `arrival - capture`: everything between the sender's key and
our socket (their uplink, the relay, our downlink, clock-estimate error). The delay adapts to the transit
distribution of the player's last ~200 events:

- low:      p95 + 2 ms
- balanced: p99 + 5 ms   (default)
- safe:     max + 20 ms

never below a floor and never above 500 ms. An event that arrives after its due time plays at once and is
counted as late.

Changing the delay must not reorder or squash a player's events. Growing is applied at once: an event that
would otherwise be late is worth a slightly stretched interval. Shrinking only happens across a gap of at
least PHRASE_GAP_US between captures, by a quarter of the excess but 1-2 ms per gap, so a shorter delay never
pulls an event before its predecessor (or squashes a chord) and no interval changes by more than 2 ms: the
delay glides down over a few rests instead of jumping.

Until WARMUP_EVENTS transits are known, the target carries WARMUP_HEADROOM_US of extra room over the
largest transit seen: a handful of samples says little about the tail, every step up costs a stretched
interval, and the extra room goes again, gliding, once the window knows better. A trade-off (simulated by
bench/playout_sim.py, measured by bench/e2e_latency.py; figures in bench/README.md): more headroom
protects the rhythm of a jittery player's first notes, less keeps a nearby player's first notes quick;
and every ms of headroom still held when the warm-up ends is glided away later in 1-2 ms steps, each a
slightly shortened interval. 5 ms for the first 8 events kept the simulated IOI error p99 at 1.3 ms under
±15 ms jitter (2.0 ms with 10 ms for 16 events) and a nearby player's first notes at 11.5 ms p99 (16.9).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

HISTORY: Final = 200
FLOOR_US: Final = 3_000
CEILING_US: Final = 500_000
PHRASE_GAP_US: Final = 100_000
SHRINK_STEP_MIN_US: Final = 1_000
SHRINK_STEP_MAX_US: Final = 2_000
WARMUP_EVENTS: Final = 8
WARMUP_HEADROOM_US: Final = 5_000


class LatencyPreset(StrEnum):
    LOW = "low"
    BALANCED = "balanced"
    SAFE = "safe"


@dataclass(frozen=True, slots=True)
class PresetRule:
    quantile: float  # 0.95 = p95, 1.0 = max
    margin_us: int


PRESET_RULES: Final[dict[LatencyPreset, PresetRule]] = {
    LatencyPreset.LOW: PresetRule(0.95, 2_000),
    LatencyPreset.BALANCED: PresetRule(0.99, 5_000),
    LatencyPreset.SAFE: PresetRule(1.0, 20_000),
}
DEFAULT_PRESET: Final = LatencyPreset.BALANCED


def quantile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank quantile of an ascending list (q=1.0 is the maximum)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def target_delay_us(
    sorted_transits: list[int],
    preset: LatencyPreset,
    floor_us: int = FLOOR_US,
    ceiling_us: int = CEILING_US,
    warmup: int = WARMUP_EVENTS,
) -> int:
    """The delay the preset asks for given the recent transits (ascending), clamped to [floor, ceiling]."""
    if not sorted_transits:
        return floor_us
    rule = PRESET_RULES[preset]
    target = quantile(sorted_transits, rule.quantile) + rule.margin_us
    if len(sorted_transits) < warmup:
        target = max(target, sorted_transits[-1] + rule.margin_us + WARMUP_HEADROOM_US)
    return max(floor_us, min(ceiling_us, target))


class TransitWindow:
    """The last `size` transits, kept sorted as well as in arrival order."""

    def __init__(self, size: int = HISTORY) -> None:
        self._order: deque[int] = deque()
        self._sorted: list[int] = []
        self._size = size

    def add(self, transit_us: int) -> None:
        self._order.append(transit_us)
        bisect.insort(self._sorted, transit_us)
        if len(self._order) > self._size:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    @property
    def sorted(self) -> list[int]:
        return self._sorted

    def __len__(self) -> int:
        return len(self._order)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one event goes: its due time (our clock, µs) and whether it arrived too late for it."""

    due_us: int
    late: bool


class PlayoutState:
    """One remote player's playout delay, late count and ordering guard."""

    def __init__(
        self,
        preset: LatencyPreset = DEFAULT_PRESET,
        floor_us: int = FLOOR_US,
        ceiling_us: int = CEILING_US,
        history: int = HISTORY,
    ) -> None:
        self.preset = preset
        self.floor_us = floor_us
        self.ceiling_us = ceiling_us
        self.window = TransitWindow(history)
        self.delay_us = floor_us
        self.late_count = 0
        self.event_count = 0
        self._last_capture_us: int | None = None
        self._last_due_us: int | None = None

    def set_preset(self, preset: LatencyPreset) -> None:
        """Switch presets; the new rule applies from the next event (shrinking still waits for a pause)."""
        self.preset = preset

    @property
    def target_us(self) -> int:
        return target_delay_us(self.window.sorted, self.preset, self.floor_us, self.ceiling_us)

    @property
    def transit_p50_us(self) -> int | None:
        return quantile(self.window.sorted, 0.5) if len(self.window) else None

    def schedule(self, capture_us: int, arrival_us: int) -> Slot:
        """Place one event captured at `capture_us` that arrived at `arrival_us` (both on our clock)."""
        self.window.add(arrival_us - capture_us)
        self.event_count += 1
        target = self.target_us
        gap = None if self._last_capture_us is None else capture_us - self._last_capture_us
        if gap is None:
            self.delay_us = target
        elif gap <= 0:
            pass  # the same instant as the previous event (a chord): same delay, so it stays a chord
        elif target > self.delay_us:
            self.delay_us = target
        elif target < self.delay_us and gap >= PHRASE_GAP_US:
            step = min(SHRINK_STEP_MAX_US, max(SHRINK_STEP_MIN_US, (self.delay_us - target) // 4))
            self.delay_us = max(target, self.delay_us - step)
        due = capture_us + self.delay_us
        if self._last_due_us is not None and due < self._last_due_us:
            due = self._last_due_us  # never reorder a player's events
        late = due < arrival_us
        if late:
            due = arrival_us
            self.late_count += 1
        self._last_capture_us = max(capture_us, self._last_capture_us or capture_us)
        self._last_due_us = due
        return Slot(due, late)
