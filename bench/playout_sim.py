"""The playout rule alone (pure `PlayoutState`, no OS, no network) over many seeds. Prints JSON.

A song's events (capture times from the file) arrive after transit = path + exp(tail) + U(0, 2·jitter),
order kept (an event never overtakes the one before it, as on one TCP stream). For each warm-up setting:
the median and worst-seed IOI error p99 (onset to onset, vs the file), the final playout delay and late
events under jitter, and the latency p99 of the first 32 notes on a jitter-free path (how quick a nearby
player's first notes are).

    .venv/bin/python bench/playout_sim.py [--seeds 40] [--setting 5:8 10:16] [--margin-ms 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pianorhythm.playout as playout  # noqa: E402
from tui.midi.fileplayer import read_events  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    captures: list[int], onsets: list[bool], seed: int, jitter_us: int, path_us: int, tail_us: int
) -> tuple[float, float, int, float]:
    rng = random.Random(seed)
    state = playout.PlayoutState(playout.LatencyPreset.BALANCED)
    previous = 0.0
    dues: list[int] = []
    for capture in captures:
        arrival = max(
            previous, capture + path_us + rng.expovariate(1 / tail_us) + rng.uniform(0, 2 * jitter_us)
        )
        previous = arrival
        dues.append(state.schedule(capture, int(arrival)).due_us)
    pairs = [(c, d) for c, d, on in zip(captures, dues, onsets, strict=True) if on]
    ioi = [abs((d1 - d0) - (c1 - c0)) / 1000 for (c0, d0), (c1, d1) in zip(pairs, pairs[1:], strict=False)]
    first = [(d - c) / 1000 for c, d in zip(captures[:32], dues[:32], strict=True)]
    return pct(ioi, 0.99), state.delay_us / 1000, state.late_count, pct(first, 0.99)


def simulate(song: str, seeds: int, headroom_us: int, warmup: int, margin_us: int) -> dict[str, Any]:
    playout.WARMUP_HEADROOM_US = headroom_us  # type: ignore[misc]  # the sim sweeps this Final on purpose
    defaults = list(playout.target_delay_us.__defaults__ or ())
    defaults[-1] = warmup
    playout.target_delay_us.__defaults__ = tuple(defaults)
    playout.PRESET_RULES[playout.LatencyPreset.BALANCED] = playout.PresetRule(0.99, margin_us)
    events = list(read_events(song))
    captures = [e.time_ns // 1000 for e in events]
    onsets = [e.is_note_on for e in events]
    jitter = [run(captures, onsets, s, 15_000, 1_500, 300) for s in range(seeds)]
    loopback = [run(captures, onsets, s, 0, 1_000, 300) for s in range(seeds)]
    return {
        "headroom_ms": headroom_us / 1000,
        "warmup_events": warmup,
        "margin_ms": margin_us / 1000,
        "jitter_ioi_p99_ms": {
            "median": round(statistics.median(r[0] for r in jitter), 2),
            "worst": round(max(r[0] for r in jitter), 2),
        },
        "jitter_final_delay_ms": round(statistics.median(r[1] for r in jitter), 1),
        "jitter_late_median": statistics.median(r[2] for r in jitter),
        "loopback_first32_latency_p99_ms": round(statistics.median(r[3] for r in loopback), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default=str(REPO / "tests" / "data" / "m21-test02.mid"))
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument(
        "--setting", nargs="*", default=["0:16", "5:16", "10:16", "5:8", "7:8"], help="ms:events"
    )
    parser.add_argument("--margin-ms", type=float, default=5.0, help="the balanced rule's margin")
    args = parser.parse_args()
    results = []
    for setting in args.setting:
        headroom_ms, warmup = setting.split(":")
        headroom_us, margin_us = int(float(headroom_ms) * 1000), int(args.margin_ms * 1000)
        results.append(simulate(args.song, args.seeds, headroom_us, int(warmup), margin_us))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
