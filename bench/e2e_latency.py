"""Keypress -> remote synth latency and rhythm (IOI) error, through a real relay on loopback. Prints JSON.

A relay runs as a `pianorhythm-tui --server` process; two client engines: A plays, B listens. A plays a
if from a keyboard: each event's capture time is its perf_counter_ns stamp. B's synth records the
perf_counter_ns at which each event is handed to it. Both clocks are the same CLOCK_MONOTONIC, so
latency = B's synth time - A's capture time, with no clock-sync error in the measurement itself.

A runs in a child process (with the jitter proxy on its path, in its event loop) so that B's process holds
only B's event loop and dispatch thread, as a real listener's would.

Scenarios (each with fresh engines and room):
- loopback: A and B straight to the relay, balanced preset (target: keypress -> remote sound p99 <= 12 ms
  through JACK 48 kHz/128; B's synth here is a null synth, so the sound itself comes up to a period later);
- jitter: A's path through a proxy adding 15 ms ± 15 ms (uniform, order kept) on the way up, balanced
  preset (targets: IOI error p99 <= 3 ms with a playout delay <= 35 ms).

Figures are given for all events and for the steady state after the first WARMUP events (the playout
delay starts with headroom and glides down 1-2 ms per rest as it learns the path).

    .venv/bin/python bench/e2e_latency.py [--song tests/data/m21-test02.mid] [--scenario loopback jitter]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pianorhythm.client.effects import LOCAL  # noqa: E402
from pianorhythm.client.model import EngineEvent, NotesScheduled, PlayerStats  # noqa: E402
from pianorhythm.events import MusicEvent  # noqa: E402
from pianorhythm.playout import LatencyPreset  # noqa: E402
from tests.fixtures.proxy import JitterProxy  # noqa: E402
from tui.audio.synth import NullSynth  # noqa: E402
from tui.engine import Engine, EngineConfig, play_file_events  # noqa: E402
from tui.midi.fileplayer import read_events  # noqa: E402

WARMUP = 32
FREEZE_GC = True  # --no-freeze-gc: the listener leaves the cyclic GC as it is (to compare)
T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class TimingSynth(NullSynth):
    """Silent, but notes when each event reached it."""

    def __init__(self) -> None:
        super().__init__("bench")
        self.log: list[tuple[int, int, MusicEvent]] = []

    def play(self, channel: int, event: MusicEvent) -> None:
        self.log.append((time.perf_counter_ns(), channel, event))
        super().play(channel, event)


def start_relay(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    err = (workdir / "server.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--server", "--port", "0", "--db", str(workdir / "s.db")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        match = re.search(r"listening on (ws://\S+)", (workdir / "server.err").read_text())
        if match:
            return proc, match.group(1)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the relay did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _wait(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def sender(url: str, room: str, song_path: str, jitter_ms: float, out: str) -> None:
    """The child process: engine A (and the jitter proxy on its path) plays the song; stamps go to `out`."""
    proxy = None
    if jitter_ms:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        proxy = JitterProxy("127.0.0.1", port, jitter_ms / 1000, jitter_ms / 1000, seed=7, down=False)
        await proxy.start()
        url = proxy.url()
    a = Engine(EngineConfig(url, "player", room=room, save_token=False), synth=NullSynth())
    sent: list[MusicEvent] = []
    play_local = a.play_local

    def capture(event: MusicEvent) -> None:
        sent.append(event)
        play_local(event)

    a.play_local = capture  # type: ignore[method-assign]
    await a.start()
    await _wait(lambda: a.room is not None and a.room.name == room and len(a.room.users) == 2)
    await asyncio.sleep(1.0)  # the clock burst
    await play_file_events(a, read_events(song_path))
    await asyncio.sleep(0.3)
    clock = a.session.clock.estimate
    true_offset_us = (
        time.time_ns() - time.perf_counter_ns()
    ) / 1000  # the relay's clock (see server/clock.py)
    await a.close()
    if proxy is not None:
        await proxy.close()
    Path(out).write_text(
        json.dumps(
            {
                "user_id": a.session.user_id,
                "rtt_ms": clock.rtt_us / 1000 if clock else None,
                "clock_error_ms": (clock.offset_us - true_offset_us) / 1000 if clock else None,
                "clock_samples": clock.samples if clock else 0,
                "events": [(e.time_ns, e.number, e.value, e.is_note_on) for e in sent],
            }
        )
    )


class GcPauses:
    """The longest cyclic-GC pauses in this process (they hold the GIL: the dispatch thread waits)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], (time.perf_counter() - self._start) * 1000))

    def summary(self) -> dict[str, float]:
        full = [ms for gen, ms in self.pauses if gen == 2]
        return {
            "collections": len(self.pauses),
            "full": len(full),
            "max_ms": round(max((ms for _, ms in self.pauses), default=0.0), 2),
        }


def run_scenario(
    url: str, song: str, room: str, jitter_ms: float, preset: LatencyPreset, tmp: Path
) -> dict[str, Any]:
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    loop = LoopThread("B")
    synth = TimingSynth()
    config = EngineConfig(url, "listener", room=room, save_token=False, preset=preset, freeze_gc=FREEZE_GC)
    b = Engine(config, synth=synth)
    last_stats: dict[int, PlayerStats | None] = {}

    def on_event(event: EngineEvent) -> None:
        if isinstance(event, NotesScheduled):
            last_stats[event.user_id] = b.player_stats(event.user_id)

    b.subscribe(on_event)
    loop.run(b.start())
    loop.run(_wait(lambda: b.room is not None and b.room.name == room))
    out = tmp / f"{room}.json"
    child = [sys.executable, __file__, "--role", "sender", "--url", url, "--room", room, "--song", song]
    child += ["--jitter-ms", str(jitter_ms), "--out", str(out)]
    subprocess.run(child, check=True, timeout=300, cwd=REPO)
    time.sleep(0.3)
    report = json.loads(out.read_text())
    uid = report["user_id"]
    stats = last_stats.get(uid)
    b_clock = b.session.clock.estimate
    b_clock_error = (
        (b_clock.offset_us - (time.time_ns() - time.perf_counter_ns()) / 1000) / 1000 if b_clock else None
    )
    mine = b.channels.channel_of(LOCAL)
    got = [(t, e) for t, ch, e in synth.log if ch != mine]
    loop.run(b.close())
    loop.stop()
    gc.callbacks.remove(gc_pauses)

    sent = report["events"]
    assert len(got) == len(sent), f"B played {len(got)} of {len(sent)} events"
    assert all((g.number, g.value) == (s[1], s[2]) for (_, g), s in zip(got, sent, strict=True))
    latency = [(t - s[0]) / 1e6 for (t, _), s in zip(got, sent, strict=True)]
    dispatch_error = [(t - g.time_ns) / 1e6 for t, g in got]
    onsets = [(s[0], t) for (t, _), s in zip(got, sent, strict=True) if s[3]]
    ioi_error = [
        abs((b1 - b0) - (a1 - a0)) / 1e6 for (a0, b0), (a1, b1) in zip(onsets, onsets[1:], strict=False)
    ]
    steady_onsets = sum(1 for s in sent[:WARMUP] if s[3])

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50": round(pct(values, 0.5), 3),
            "p99": round(pct(values, 0.99), 3),
            "max": round(max(values), 3),
        }

    return {
        "events": len(sent),
        "onsets": len(onsets),
        "jitter_ms": jitter_ms,
        "preset": preset.value,
        "latency_ms": summary(latency),
        "latency_ms_steady": summary(latency[WARMUP:]),
        "ioi_error_ms": summary(ioi_error),
        "ioi_error_ms_steady": summary(ioi_error[steady_onsets:]),
        "dispatch_error_ms": summary(dispatch_error),
        "playout_delay_ms_final": round(stats.delay_ms, 2) if stats else None,
        "late_events": stats.late_count if stats else None,
        "listener_gc": gc_pauses.summary(),
        "sender_clock_rtt_ms": round(report["rtt_ms"], 2) if report["rtt_ms"] else None,
        "sender_clock_error_ms": round(report["clock_error_ms"], 3)
        if report["clock_error_ms"] is not None
        else None,
        "sender_clock_samples": report["clock_samples"],
        "listener_clock_error_ms": round(b_clock_error, 3) if b_clock_error is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default=str(REPO / "tests" / "data" / "m21-test02.mid"))
    parser.add_argument(
        "--scenario", nargs="*", default=["loopback", "jitter"], choices=["loopback", "jitter"]
    )
    parser.add_argument("--preset", default="balanced", choices=[p.value for p in LatencyPreset])
    parser.add_argument("--role", default="main", choices=["main", "sender"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--room", help=argparse.SUPPRESS)
    parser.add_argument("--jitter-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--no-freeze-gc", action="store_true", help="listener: do not gc.freeze() at start")
    args = parser.parse_args()
    global FREEZE_GC
    FREEZE_GC = not args.no_freeze_gc
    if args.role == "sender":
        asyncio.run(sender(args.url, args.room, args.song, args.jitter_ms, args.out))
        return
    results: dict[str, Any] = {"song": Path(args.song).name, "warmup_events": WARMUP, "freeze_gc": FREEZE_GC}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_relay(Path(tmp))
        try:
            for name in args.scenario:
                jitter = 15.0 if name == "jitter" else 0.0
                preset = LatencyPreset(args.preset)
                results[name] = run_scenario(url, args.song, f"bench-{name}", jitter, preset, Path(tmp))
        finally:
            proc.terminate()
            proc.wait(10)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
