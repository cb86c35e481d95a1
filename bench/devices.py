"""Device adapters: FluidSynth render cost, synth call cost, and MIDI input latency through JACK.

Prints JSON. Targets: a 32-player room (4 sustained notes each) renders >= 5x faster than real time on one
core; play() <= 20 us per event; MIDI input (JACK, 256-frame period at 48 kHz) p99 <= 2 periods, none lost.

    .venv/bin/python bench/devices.py            # everything (starts its own jackd if installed)
    .venv/bin/python bench/devices.py --no-jack  # synth only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pianorhythm.channels import ChannelAllocator  # noqa: E402
from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent  # noqa: E402
from pianorhythm.tui.audio.soundfont import find_soundfont  # noqa: E402
from pianorhythm.tui.audio.synth import SAMPLE_RATE, FluidSynthSynth  # noqa: E402

PERIOD = 256


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_render(players: int, notes_each: int, seconds: float) -> dict[str, float | int]:
    soundfont = find_soundfont().path
    assert soundfont is not None, "no SoundFont installed"
    synth = FluidSynthSynth(soundfont, polyphony=1024)
    alloc = ChannelAllocator(synth.channels)
    for player in range(players):
        channel, _ = alloc.acquire(player)
        synth.set_program(channel, player % 8)
        synth.play(channel, MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127, 0))
        for i in range(notes_each):
            synth.play(channel, MusicEvent(EventKind.NOTE, 36 + (player * 7 + i * 5) % 60, 90, 0))
    synth.render(PERIOD)
    voices = synth.active_voices()
    frames = int(seconds * SAMPLE_RATE)
    started = time.perf_counter()
    for _ in range(frames // PERIOD):
        synth.render(PERIOD)
    elapsed = time.perf_counter() - started
    synth.close()
    return {
        "players": players,
        "notes_each": notes_each,
        "voices": voices,
        "audio_s": seconds,
        "cpu_s": round(elapsed, 3),
        "realtime_factor": round(seconds / elapsed, 1),
    }


def bench_play_calls(events: int) -> dict[str, float | int]:
    soundfont = find_soundfont().path
    assert soundfont is not None
    synth = FluidSynthSynth(soundfont)
    on = [MusicEvent(EventKind.NOTE, 40 + i % 48, 80, 0) for i in range(events)]
    off = [MusicEvent(EventKind.NOTE, 40 + i % 48, 0, 0) for i in range(events)]
    started = time.perf_counter_ns()
    for a, b in zip(on, off, strict=True):
        synth.play(i := a.number % 15, a)
        synth.play(i, b)
        if a.number == 40:
            synth.render(64)  # let voices finish so polyphony does not saturate
    per_event = (time.perf_counter_ns() - started) / (2 * events) / 1000
    synth.close()
    return {"events": 2 * events, "us_per_event": round(per_event, 2)}


async def midi_latency(count: int) -> dict[str, float | int]:
    import rtmidi

    from pianorhythm.tui.midi.input import RtMidiInput

    keyboard = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bench-kbd")
    keyboard.open_virtual_port("keys")
    arrivals: asyncio.Queue[tuple[MusicEvent, int]] = asyncio.Queue()
    midi = RtMidiInput(
        lambda event: arrivals.put_nowait((event, time.perf_counter_ns())), api="jack", wanted="bench-kbd"
    )
    stamp_ms: list[float] = []
    loop_ms: list[float] = []
    lost = 0
    try:
        await asyncio.sleep(0.2)
        for i in range(count):
            sent = time.perf_counter_ns()
            keyboard.send_message([0x90, 60, 1 + i % 127])
            try:
                event, delivered = await asyncio.wait_for(arrivals.get(), timeout=1)
            except TimeoutError:
                lost += 1
                continue
            stamp_ms.append((event.time_ns - sent) / 1e6)
            loop_ms.append((delivered - sent) / 1e6)
            await asyncio.sleep(0.0013 * (1 + i % 7))  # spread sends across the JACK period
    finally:
        midi.close()
        keyboard.close_port()
        keyboard.delete()
    return {
        "events": count,
        "lost": lost,
        "period_ms": round(PERIOD / 48000 * 1000, 2),
        "stamp_p50_ms": round(statistics.median(stamp_ms), 2),
        "stamp_p99_ms": round(percentile(stamp_ms, 0.99), 2),
        "delivered_p50_ms": round(statistics.median(loop_ms), 2),
        "delivered_p99_ms": round(percentile(loop_ms, 0.99), 2),
    }


def with_jackd(count: int) -> dict[str, float | int] | str:
    binary = shutil.which("jackd")
    if binary is None:
        return "skipped: jackd not installed"
    name = f"bench-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [binary, "-n", name, "-d", "dummy", "-r", "48000", "-p", str(PERIOD)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        os.environ["JACK_DEFAULT_SERVER"] = name
        os.environ["JACK_NO_START_SERVER"] = "1"
        for _ in range(100):
            check = subprocess.run(["jack_wait", "-s", name, "-c"], capture_output=True, check=False)
            if check.stdout.strip() == b"running":
                break
            time.sleep(0.1)
        return asyncio.run(midi_latency(count))
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-jack", action="store_true")
    parser.add_argument("--midi-events", type=int, default=500)
    args = parser.parse_args()
    result: dict[str, object] = {
        "render": [bench_render(p, 4, 5.0) for p in (1, 8, 32)],
        "play_calls": bench_play_calls(20_000),
    }
    if not args.no_jack:
        result["midi_input_jack"] = with_jackd(args.midi_events)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
