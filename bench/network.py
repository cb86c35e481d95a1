"""Rhythm on real networks: a MIDI file relayed from one headless client to another, both paths jittery.

A relay runs as a `pianorhythm-tui --server` process. Player A and listener B are client engines in this
process (null synths), each behind its own JitterProxy (tests/fixtures/proxy.py) that delays every chunk by
base ± jitter (uniform, order kept, as TCP keeps it) in both directions: A -> relay and relay -> B carry the
notes, and the pings of both clients cross the same paths. A plays the song as if from a keyboard a couple of
seconds after both are in the room (the clock burst is over; B has heard none of A's notes yet).

A's capture stamps and B's due times are on the same clock (perf_counter, one process), so every figure is
exact and carries no clock-sync error of its own; the due times are what B hands its synth (the synth's own
timing is measured by bench/e2e_latency.py). Over all notes, the first ones included:

- IOI error: |(due[i+1] - due[i]) - (capture[i+1] - capture[i])| between consecutive note-ons;
- late: events B's playout counted as arriving after their due time (played at once);
- settled delay: due - capture over the last 20 note-ons (median), against the largest transit (arrival -
  capture) seen over the whole song: the delay can never be below what the path's tail needs;
- lost: events A played that B never scheduled.

    .venv/bin/python bench/network.py [--paths 20:15 80:30 150:60] [--seeds 3] [--preset balanced]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pianorhythm.client.model import EngineEvent, NotesScheduled  # noqa: E402
from pianorhythm.events import MusicEvent  # noqa: E402
from pianorhythm.playout import LatencyPreset  # noqa: E402
from pianorhythm.tui.audio.synth import NullSynth  # noqa: E402
from pianorhythm.tui.engine import Engine, EngineConfig, play_file_events  # noqa: E402
from pianorhythm.tui.midi.fileplayer import read_events  # noqa: E402
from tests.fixtures.proxy import JitterProxy  # noqa: E402

LEAD_IN_S = 2.0  # in the room -> first note: the clock burst is over, as when a player sits down and plays
SETTLED_NOTES = 20


def start_relay(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    err_path = workdir / "server.err"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pianorhythm.tui.cli",
            "--server",
            "--port",
            "0",
            "--db",
            str(workdir / "s.db"),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=err_path.open("wb"),
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        match = re.search(r"listening on ws://[^:]+:(\d+)", err_path.read_text())
        if match:
            return proc, int(match.group(1))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the relay did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _wait(predicate: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met: {inspect.getsource(predicate).strip()}")
        await asyncio.sleep(0.02)


async def run_path(
    relay_port: int,
    song: list[MusicEvent],
    base_ms: float,
    jitter_ms: float,
    seed: int,
    preset: LatencyPreset,
) -> dict[str, Any]:
    proxies = [
        JitterProxy("127.0.0.1", relay_port, base_ms / 1000, jitter_ms / 1000, seed=seed + i) for i in (0, 1)
    ]
    for proxy in proxies:
        await proxy.start()
    room = f"net-{base_ms:g}-{jitter_ms:g}-{seed}"
    a = Engine(EngineConfig(proxies[0].url(), "player", room=room, save_token=False), synth=NullSynth())
    b = Engine(
        EngineConfig(proxies[1].url(), "listener", room=room, save_token=False, preset=preset),
        synth=NullSynth(),
    )
    sent: list[MusicEvent] = []
    play_local = a.play_local

    def capture(event: MusicEvent) -> None:
        sent.append(event)
        play_local(event)

    a.play_local = capture  # type: ignore[method-assign]
    got: list[tuple[int, MusicEvent]] = []  # (arrival ns, event as scheduled: time_ns = due)
    late = 0

    def on_event(event: EngineEvent) -> None:
        nonlocal late
        if isinstance(event, NotesScheduled):
            now = time.perf_counter_ns()
            got.extend((now, e) for e in event.events)
            late += event.late

    b.subscribe(on_event)
    await b.start()
    await a.start()
    await _wait(lambda: b.room is not None and b.room.name == room)
    await _wait(lambda: a.room is not None and a.room.name == room)
    await _wait(lambda: [p.info.name for p in b.core.players.values()] == ["player"])
    await asyncio.sleep(LEAD_IN_S)
    await play_file_events(a, song)
    await _wait(lambda: len(got) >= len(sent), timeout=5 + 3 * (base_ms + jitter_ms) / 1000)
    stats = b.all_player_stats()
    await a.close()
    await b.close()
    for proxy in proxies:
        await proxy.close()

    pairs = list(zip(sent, got, strict=False))
    ons = [(s.time_ns, g.time_ns) for s, (_, g) in pairs if s.is_note_on]
    ioi = [abs((d1 - d0) - (c1 - c0)) / 1e6 for (c0, d0), (c1, d1) in zip(ons, ons[1:], strict=False)]
    transit = [(arrival - s.time_ns) / 1e6 for s, (arrival, _) in pairs]
    delay = [(d - c) / 1e6 for c, d in ons]
    settled = statistics.median(delay[-SETTLED_NOTES:])
    return {
        "path": f"{base_ms:g}±{jitter_ms:g}",
        "seed": seed,
        "events": len(sent),
        "lost": len(sent) - len(got),
        "late": late,
        "late_percent": round(100 * late / max(1, len(got)), 2),
        "ioi_error_ms": {
            "p50": round(pct(ioi, 0.5), 3),
            "p99": round(pct(ioi, 0.99), 3),
            "max": round(max(ioi), 3),
        },
        "ioi_error_ms_first10": round(max(ioi[:10]), 3),
        "first_note_delay_ms": round(delay[0], 2),
        "settled_delay_ms": round(settled, 2),
        "largest_transit_ms": round(max(transit), 2),
        "settled_over_largest_ms": round(settled - max(transit), 2),
        "playout_delay_ms_final": [round(s.delay_ms, 2) for s in stats],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    song = list(read_events(args.song))
    results: dict[str, Any] = {
        "song": Path(args.song).name,
        "preset": args.preset,
        "load_before": os.getloadavg()[0],
    }
    runs = []
    for path in args.paths:
        base, jitter = (float(x) for x in path.split(":"))
        # A relay per path: one address may create only so many rooms at once (new_room_burst, 10).
        with tempfile.TemporaryDirectory() as tmp:
            proc, port = start_relay(Path(tmp))
            try:
                for seed in range(args.seeds):
                    runs.append(await run_path(port, song, base, jitter, seed, LatencyPreset(args.preset)))
            finally:
                proc.terminate()
                proc.wait(10)
    results["runs"] = runs
    results["load_after"] = os.getloadavg()[0]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default=str(REPO / "tests" / "data" / "m21-test02.mid"))
    parser.add_argument("--paths", nargs="*", default=["20:15", "80:30", "150:60"], help="base_ms:jitter_ms")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--preset", default="balanced", choices=[p.value for p in LatencyPreset])
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=1))


if __name__ == "__main__":
    main()
