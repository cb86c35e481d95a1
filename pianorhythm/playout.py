"""Playout delay per remote player: when to play a note that arrived over the network. Pure, times in µs.

A remote event captured at `capture` (the sender's capture time, mapped to our clock) is due at
`capture + delay`. The *transit* of an event is `arrival - capture`: everything between the sender's key and
our socket (their uplink, the relay, our downlink, clock-estimate error). The delay adapts to the transit
distribution of the player's last ~200 events: a quantile of the transits plus a safety margin that
follows their *spread* (p99 - p50), so a clean path gets a small delay and a jittery one a safe delay:

- low:      p95 + max(0.5 ms, 0.05 x spread)
- balanced: p99 + max(1 ms, 0.1 x spread)   (default)
- safe:     max + max(10 ms, 0.5 x spread)

never below a floor and never above 500 ms. The margin's floor covers the dispatch error and small
clock-estimate moves; its share of the spread covers the tail the window has not shown yet. An event that
arrives after its due time plays at once and is counted as late: a note is never dropped. Up to LATE_KEPT_US
late, the phrase stays where that event put it (the delay takes its transit) and glides back over rests, so
one outlier stretches one interval instead of stretching one and squashing the next; a stall snaps back.

Changing the delay must not reorder or squash a player's events. Growing stretches the interval before the
event it applies to, so it goes by GROW_STEP_MAX_US (1.5 ms) per event while that still covers the event; an
event that would be late even so takes the whole step at once (worth one stretched interval, and its
neighbours then need none), so a burst of jitter raises the delay within a few events. Shrinking only happens
across a gap of at least PHRASE_GAP_US between captures, by a quarter of the excess but 1-1.5 ms per gap, so
a shorter delay never pulls an event before its predecessor (or squashes a chord) and no interval changes by
more than the issue's 3 ms as heard: with the synth's block (FluidSynth plays a note in its 64-frame block,
1.33 ms at 48 kHz, so a heard interval is off by up to a block more than its due times) and the clocks' slew
and rounding added (pianorhythm.clock); and a burst leaves
the window only after ~200 more events: the delay comes down slowly, over a few rests.

The path is known before the first note: the relay measures each member's uplink spread and floor from their
pings and shares them in presence, and our own pongs give our downlink's (pianorhythm.clock derives the floor:
where arrival - capture starts, against the stamps' offsets). The floors' sum (`path_floor_us`) is where the
transit starts and the spreads' sum (`path_spread_us`) how far above it it can reach, so the target is at
least the floor + the preset's share of the spread (low 0.8, balanced 1, safe 1.25) + the preset's margin over
that spread, from the first note until the window holds PATH_EVENTS transits: the first note waits for the
path, not for its own transit + the path (which cost 60-80 ms at 150 ± 60 ms), the window's own quantile has
nothing to step up to later, and once it knows the path the sum of both legs' extremes (which rarely meet) no
longer holds the delay up; from then on the path only caps the window's margin (for a tail it has not seen) at
the floor + the spread + the margin floor, and the window's own largest transit caps it at that + the preset's
seen headroom (low 1, balanced 3, safe 10 ms): at 150 ± 60 ms the path's top sat 400-406 ms while the largest
transit a run saw varied 389-419 ms, and 100-200 transits show the tail well enough (replaying the transits of
38 bench runs, 11 of them at 150 ± 60 ms: with 3 ms no more late notes and the same IOI error p99, with 1-2 ms
a late note more or a higher p99). The path's margin covers what a few dozen pings have not shown of each leg.
An unknown floor (an older relay or client) is the lowest transit seen. Without the path (an older relay),
until WARMUP.events transits are known, the target carries headroom over the largest transit seen: a quarter
of how far the largest reaches above the median, at least 4 ms. A handful of samples says little about the
tail and every step up costs a stretched interval; the extra room goes again, gliding, once the window knows
better. A trade-off (simulated by bench/playout_sim.py, measured by bench/e2e_latency.py; figures in
bench/README.md): more headroom protects the rhythm of a jittery player's first notes, less keeps a nearby
player's first notes quick. With a floor of 2-3 ms the first jittery notes stepped up again and again
(simulated IOI error p99 2.9-3.2 ms under ±15 ms jitter, against 2.0 ms with 4 ms); a clean path's first notes
pay the floor.
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
# The issue bounds a stretched interval at 3 ms as heard: the synth adds up to one block (1.33 ms at 48 kHz)
# to a step, the clocks' slew (pianorhythm.clock.SLEW_PPM) and the µs rounding of the stamps a little more.
# With 2.5 ms steps, heard through FluidSynth at 150 ± 60 ms, the glide's intervals came out at 3.3-4.0 ms.
SHRINK_STEP_MAX_US: Final = 1_500  # as much as growing may stretch
GROW_STEP_MAX_US: Final = 1_500  # an interval stretched by this much is not heard as a hiccup
# A late event shifts the phrase; up to this much the shift stays and glides back 1-1.5 ms per rest, more (a
# stall) goes at the next rest: gliding back from 200 ms would take 130 rests.
LATE_KEPT_US: Final = 50_000
PATH_EVENTS: Final = 100  # the path's spread sizes the delay until the window holds this many transits
# Intervals up to this long are never shortened; a glide shortens a longer rest to this at the most.
KEPT_INTERVAL_US: Final = PHRASE_GAP_US - SHRINK_STEP_MAX_US


class LatencyPreset(StrEnum):
    LOW = "low"
    BALANCED = "balanced"
    SAFE = "safe"


@dataclass(frozen=True, slots=True)
class PresetRule:
    quantile: float  # 0.95 = p95, 1.0 = max
    spread_factor: float  # the margin is this many times the transit spread (p99 - p50) ...
    margin_floor_us: int  # ... but never less than this
    path_share: float = 1.0  # the delay covers the lowest transit + this share of the known path spread
    # Once the window knows the path (PATH_EVENTS transits), the target goes at most this far above the
    # largest transit it holds (never below its quantile + the margin floor).
    seen_headroom_us: int = 3_000


@dataclass(frozen=True, slots=True)
class WarmupRule:
    """Extra room over the largest transit seen while the window holds fewer than `events` transits."""

    events: int
    spread_factor: float  # times the reach (max - median) of the transits seen so far ...
    floor_us: int  # ... but never less than this


PRESET_RULES: Final[dict[LatencyPreset, PresetRule]] = {
    LatencyPreset.LOW: PresetRule(0.95, 0.05, 500, 0.8, 1_000),
    LatencyPreset.BALANCED: PresetRule(0.99, 0.1, 1_000, 1.0, 3_000),
    LatencyPreset.SAFE: PresetRule(1.0, 0.5, 10_000, 1.25, 10_000),
}
DEFAULT_PRESET: Final = LatencyPreset.BALANCED
WARMUP: Final = WarmupRule(8, 0.25, 4_000)


def quantile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank quantile of an ascending list (q=1.0 is the maximum)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def spread_us(sorted_transits: list[int]) -> int:
    """How far the transit tail reaches above the typical transit: p99 - p50 (0 without transits)."""
    if not sorted_transits:
        return 0
    return quantile(sorted_transits, 0.99) - quantile(sorted_transits, 0.5)


def margin_us(sorted_transits: list[int], rule: PresetRule) -> int:
    return max(rule.margin_floor_us, round(rule.spread_factor * spread_us(sorted_transits)))


def warmup_headroom_us(sorted_transits: list[int], warmup: WarmupRule = WARMUP) -> int:
    """0 once the window is warm; before, room for the tail that a handful of samples has not shown yet."""
    if not sorted_transits or len(sorted_transits) >= warmup.events:
        return 0
    # Upward only: a transit far below the rest (a clock step, a note stamped ahead) says nothing of the tail.
    reach = sorted_transits[-1] - quantile(sorted_transits, 0.5)
    return max(warmup.floor_us, round(warmup.spread_factor * reach))


def target_delay_us(
    sorted_transits: list[int],
    preset: LatencyPreset,
    floor_us: int = FLOOR_US,
    ceiling_us: int = CEILING_US,
    rules: dict[LatencyPreset, PresetRule] = PRESET_RULES,
    warmup: WarmupRule = WARMUP,
    path_spread_us: int = 0,
    path_floor_us: int | None = None,
) -> int:
    """The delay the preset asks for given the recent transits (ascending) and the path's known spread and
    floor (None: unknown, the lowest transit seen stands in), clamped to [floor, ceiling]."""
    if not sorted_transits:
        return floor_us
    rule = rules[preset]
    margin = margin_us(sorted_transits, rule)
    reach = quantile(sorted_transits, rule.quantile)
    target = reach + margin
    if path_spread_us:
        lowest = sorted_transits[0] if path_floor_us is None else path_floor_us
        path = lowest + round(rule.path_share * path_spread_us)
        if len(sorted_transits) < PATH_EVENTS:
            # The same margin as the window's, over the path's spread: a few dozen pings show less of the
            # tail than the path has (at 150 ± 60 ms the first spreads fell 30-80 ms short of the 240 ms).
            target = max(target, path + max(rule.margin_floor_us, round(rule.spread_factor * path_spread_us)))
        else:
            # The window's margin is for a tail it has not seen; the path says how far that can go, and so do
            # the window's own PATH_EVENTS-200 transits.
            seen = sorted_transits[-1] + rule.seen_headroom_us
            target = max(reach + rule.margin_floor_us, min(target, path + rule.margin_floor_us, seen))
    elif not path_spread_us and (headroom := warmup_headroom_us(sorted_transits, warmup)):
        target = max(target, sorted_transits[-1] + margin + headroom)
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
        rules: dict[LatencyPreset, PresetRule] = PRESET_RULES,
        warmup: WarmupRule = WARMUP,
    ) -> None:
        self.preset = preset
        self.rules = rules
        self.warmup = warmup
        self.floor_us = floor_us
        self.ceiling_us = ceiling_us
        self.window = TransitWindow(history)
        self.delay_us = floor_us
        self.path_spread_us = 0  # their uplink's spread + our downlink's, measured from pings (0: unknown)
        self.path_floor_us: int | None = None  # their uplink's floor + our downlink's (None: unknown)
        self.late_count = 0
        self.event_count = 0
        self._last_capture_us: int | None = None
        self._last_due_us: int | None = None

    def set_preset(self, preset: LatencyPreset) -> None:
        """Switch presets; the new rule applies from the next event (shrinking still waits for a pause)."""
        self.preset = preset

    @property
    def target_us(self) -> int:
        return target_delay_us(
            self.window.sorted,
            self.preset,
            self.floor_us,
            self.ceiling_us,
            self.rules,
            self.warmup,
            self.path_spread_us,
            self.path_floor_us,
        )

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
            # Step by step while each step still covers this event; all at once if it would be late anyway.
            grown = min(target, self.delay_us + GROW_STEP_MAX_US)
            self.delay_us = grown if arrival_us - capture_us <= grown else target
        elif target < self.delay_us and gap >= PHRASE_GAP_US:
            step = min(SHRINK_STEP_MAX_US, max(SHRINK_STEP_MIN_US, (self.delay_us - target) // 4))
            self.delay_us = max(target, self.delay_us - step)
        due = capture_us + self.delay_us
        if self._last_due_us is not None:
            # Never reorder a player's events, nor shorten an interval shorter than a rest: after a late event
            # the phrase stays shifted until the next rest, so a note released just after it still sounds.
            kept = 0 if gap is None or gap <= 0 else min(gap, KEPT_INTERVAL_US)
            due = max(due, self._last_due_us + kept)
        late = due < arrival_us
        if late:
            if arrival_us - due <= LATE_KEPT_US:
                # Keep the phrase where the late event put it and glide back over rests: snapping back at the
                # next rest would squash that interval by as much as the late one was stretched.
                self.delay_us = min(self.ceiling_us, max(self.delay_us, arrival_us - capture_us))
            due = arrival_us
            self.late_count += 1
        self._last_capture_us = max(capture_us, self._last_capture_us or capture_us)
        self._last_due_us = due
        return Slot(due, late)
