"""The playout rule alone (pure `PlayoutState`, no OS, no network) over many seeds. Prints JSON.

A song's events (capture times from the file) arrive after transit = path + exp(tail) + U(0, 2·jitter),
order kept (an event never overtakes the one before it, as on one TCP stream). Scenarios:

- clean:  a loopback-like path, 1 ms + exp(0.3 ms), no jitter;
- jitter5 / jitter15: 1.5 ms + exp(0.3 ms) + U(0, 10 / 30 ms), i.e. ±5 / ±15 ms around a mean;
- burst:  the song three times in a row on the clean path, with ±15 ms jitter over 60 events in the middle
  of the first pass (the delay should rise within a few events and come down over the later passes).

For each rule variant and scenario: IOI error p99 (onset to onset, vs the file; median and worst seed),
the settled delay (at the end of the song; for burst, at the end of each pass), late events (played on
arrival), lost notes (a note whose release is due no later than its onset, so it never sounds), and the
latency p99 of the first 32 events (how quick a player's first notes are).

A variant is `spread_factor:margin_floor_ms:warmup_events:warmup_spread_factor:warmup_floor_ms` for the
balanced preset; `fixed` is the rule before the margin followed the spread (p99 + 5 ms; warm-up: max +
5 ms + 5 ms for 8 events), `default` the rule in pianorhythm/playout.py.

    .venv/bin/python bench/playout_sim.py [--seeds 40] [--variant fixed default 0.1:1:8:0.5:2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pianorhythm import playout  # noqa: E402
from pianorhythm.events import MusicEvent  # noqa: E402
from pianorhythm.tui.midi.fileplayer import read_events  # noqa: E402

BURST_EVENTS = range(120, 180)
PASSES = {"burst": 3}


@dataclass(frozen=True, slots=True)
class Path_:
    base_us: int
    tail_us: int
    jitter_us: int


SCENARIOS = {
    "clean": Path_(1_000, 300, 0),
    "jitter5": Path_(1_500, 300, 5_000),
    "jitter15": Path_(1_500, 300, 15_000),
    "burst": Path_(1_000, 300, 0),
}


@dataclass(frozen=True, slots=True)
class Run:
    ioi_p99_ms: float
    settled_ms: list[float]  # the delay at the end of each pass
    peak_ms: float
    late: int
    lost: int
    first32_p99_ms: float


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lost_notes(events: list[MusicEvent], captures: list[int], dues: list[int]) -> int:
    """Notes that sound in the file but whose release is due no later than their onset: silent."""
    onset: dict[int, tuple[int, int]] = {}
    lost = 0
    for event, capture, due in zip(events, captures, dues, strict=True):
        if event.is_note_on:
            onset[event.number] = (capture, due)
        elif event.number in onset:
            on_capture, on_due = onset.pop(event.number)
            lost += capture > on_capture and due <= on_due
    return lost


def run(
    events: list[MusicEvent], scenario: str, seed: int, rule: playout.PresetRule, warmup: playout.WarmupRule
) -> Run:
    rng = random.Random(seed)
    path = SCENARIOS[scenario]
    rules = dict(playout.PRESET_RULES)
    rules[playout.LatencyPreset.BALANCED] = rule
    state = playout.PlayoutState(playout.LatencyPreset.BALANCED, rules=rules, warmup=warmup)
    song_us = events[-1].time_ns // 1000 + 1_000_000
    passes = PASSES.get(scenario, 1)
    previous = 0.0
    captures: list[int] = []
    dues: list[int] = []
    settled: list[float] = []
    peak = 0
    for n in range(passes):
        for i, event in enumerate(events):
            capture = n * song_us + event.time_ns // 1000
            jitter = 15_000 if scenario == "burst" and n == 0 and i in BURST_EVENTS else path.jitter_us
            transit = path.base_us + rng.expovariate(1 / path.tail_us) + rng.uniform(0, 2 * jitter)
            arrival = max(previous, capture + transit)
            previous = arrival
            captures.append(capture)
            dues.append(state.schedule(capture, int(arrival)).due_us)
            peak = max(peak, state.delay_us)
        settled.append(state.delay_us / 1000)
    all_events = events * passes
    pairs = [(c, d) for c, d, e in zip(captures, dues, all_events, strict=True) if e.is_note_on]
    ioi = [abs((d1 - d0) - (c1 - c0)) / 1000 for (c0, d0), (c1, d1) in zip(pairs, pairs[1:], strict=False)]
    first = [(d - c) / 1000 for c, d in zip(captures[:32], dues[:32], strict=True)]
    return Run(
        pct(ioi, 0.99),
        settled,
        peak / 1000,
        state.late_count,
        lost_notes(all_events, captures, dues),
        pct(first, 0.99),
    )


def parse_variant(text: str) -> tuple[playout.PresetRule, playout.WarmupRule]:
    if text == "default":
        return playout.PRESET_RULES[playout.LatencyPreset.BALANCED], playout.WARMUP
    if text == "fixed":
        text = "0:5:8:0:5"
    k, floor_ms, events, h, h_floor_ms = text.split(":")
    rule = playout.PresetRule(0.99, float(k), int(float(floor_ms) * 1000))
    return rule, playout.WarmupRule(int(events), float(h), int(float(h_floor_ms) * 1000))


def summarize(runs: list[Run]) -> dict[str, Any]:
    passes = len(runs[0].settled_ms)
    settled = [round(statistics.median(r.settled_ms[n] for r in runs), 1) for n in range(passes)]
    return {
        "ioi_p99_ms": {
            "median": round(statistics.median(r.ioi_p99_ms for r in runs), 2),
            "worst": round(max(r.ioi_p99_ms for r in runs), 2),
        },
        "settled_delay_ms": {
            "median": settled if passes > 1 else settled[0],
            "worst": round(max(r.settled_ms[0] for r in runs), 1),
        },
        "peak_delay_ms": round(statistics.median(r.peak_ms for r in runs), 1),
        "late": {"median": statistics.median(r.late for r in runs), "worst": max(r.late for r in runs)},
        "lost": sum(r.lost for r in runs),
        "first32_latency_p99_ms": round(statistics.median(r.first32_p99_ms for r in runs), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default=str(REPO / "tests" / "data" / "m21-test02.mid"))
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--variant", nargs="*", default=["fixed", "default"])
    parser.add_argument("--scenario", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = parser.parse_args()
    events = list(read_events(args.song))
    results = []
    for variant in args.variant:
        rule, warmup = parse_variant(variant)
        scenarios = {
            name: summarize([run(events, name, seed, rule, warmup) for seed in range(args.seeds)])
            for name in args.scenario
        }
        results.append({"variant": variant, **scenarios})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
