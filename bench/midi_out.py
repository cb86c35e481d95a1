"""MIDI out in rhythm: a played file's notes at a JACK MIDI port, IOI error, through a real relay.

A relay runs as a `pianorhythm-tui --server` process; a headless player plays tests/data/m21-test02.mid
(163 notes, 18.5 s) into a room; the listener is a client engine in this process whose MidiOut
(pianorhythm.tui.midi.output) sends to a JACK virtual MIDI input that bench/_midi_capture.py opens in a
process of its own and stamps on arrival (perf_counter_ns, CLOCK_MONOTONIC in every process). JACK runs
`jackd -d dummy -r 48000 -p PERIOD` (no sound card): JACK MIDI moves in whole periods (RtMidi writes each
message at the start of the next cycle), so the period bounds what any sender can do; it is run at 32
(0.67 ms) and 128 (2.7 ms) frames.

Figures per period, over the note-ons in file order:
- `ioi_error_ms`: |arrival IOI - file IOI| (p50/p99/max; target p99 <= 3 ms);
- `send_late_ms`: when MidiOut's thread sent each event less its due time (the sender alone);
- `notes`: note-ons that arrived / in the file.

    .venv/bin/python bench/midi_out.py [--periods 32 128] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from e2e_latency import Jackd, start_relay, summary  # noqa: E402

from pianorhythm.events import MusicEvent  # noqa: E402
from pianorhythm.tui.engine import Engine, EngineConfig  # noqa: E402
from pianorhythm.tui.midi.fileplayer import read_midi_file  # noqa: E402
from pianorhythm.tui.midi.output import MidiOut  # noqa: E402

SONG = REPO / "tests" / "data" / "m21-test02.mid"
CLIENT = "BENCHSYNTH"


async def _until(predicate: Any, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


class Counted:
    """The engine's MIDI out sink, counting the note-ons the client core scheduled (before MidiOut)."""

    def __init__(self, out: MidiOut) -> None:
        self.out = out
        self.note_ons = 0

    def schedule(self, due_ns: int, channel: int, event: MusicEvent) -> None:
        self.note_ons += event.is_note_on
        self.out.schedule(due_ns, channel, event)

    def program(self, channel: int, program: int, due_ns: int | None = None) -> None:
        self.out.program(channel, program, due_ns)

    def release(self, channel: int) -> None:
        self.out.release(channel)


async def listen(url: str, workdir: Path) -> Counted:
    """The listener: joins, sends the room to CLIENT, returns once the player has played and left."""
    out = Counted(MidiOut(CLIENT, api="jack"))
    engine = Engine(EngineConfig(url, "ben", room="bench", save_token=False))
    engine.attach_midi_out(out)
    await engine.start()
    try:
        await _until(lambda: engine.room is not None)
        env_dir = workdir / "cfg-ann"
        player = subprocess.Popen(
            [
                sys.executable, "-m", "pianorhythm.tui.cli", "--headless", "--connect", url, "--name", "ann",
                "--room", "bench", "--no-audio", "--play", str(SONG), "--exit-after-play",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"PIANORHYTHM_CONFIG_DIR": str(env_dir), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        await _until(lambda: len(engine.core.players) == 1)
        await _until(lambda: player.poll() is not None, timeout=90)
        await _until(lambda: not engine.core.players)
        await asyncio.sleep(0.3)
    finally:
        await engine.close()
        out.out.close()
    return out


def run(period: int, workdir: Path) -> dict[str, Any]:
    jackd = Jackd(workdir, period=period)
    capture_path = workdir / "capture.json"
    capture = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "_midi_capture.py"), CLIENT, str(capture_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    relay, url = start_relay(workdir)
    try:
        assert capture.stdout is not None and capture.stdout.readline().strip() == b"ready"
        out = asyncio.run(listen(url, workdir))
    finally:
        if capture.stdin is not None:
            capture.stdin.close()
        capture.wait(10)
        relay.terminate()
        relay.wait(10)
        jackd.stop()
    received = json.loads(capture_path.read_text())
    ons = [(ns, message) for ns, message in received if message[0] & 0xF0 == 0x90 and message[2] > 0]
    arrivals = [ns for ns, _ in ons]
    song = [t for t in read_midi_file(SONG).events if t.event.is_note_on]
    want = [t.seconds * 1e9 for t in song]
    keys = [message[1] for _, message in ons]
    if keys != [t.event.number for t in song]:
        pairs = enumerate(zip(keys, song, strict=False))
        first = next((i for i, (key, timed) in pairs if key != timed.event.number), None)
        around = ons[max(0, first - 2) : first + 3] if first is not None else ons[-3:]
        print(f"the notes differ from the file's at {first}: {around}", file=sys.stderr)
        print(f"extra note-ons (same key's previous one, ms before): {_repeats(ons)}", file=sys.stderr)
    errors = [
        abs((a1 - a0) - (w1 - w0)) / 1e6
        for a0, a1, w0, w1 in zip(arrivals, arrivals[1:], want, want[1:], strict=False)
    ]
    return {
        "period_frames": period,
        "period_ms": round(period / 48, 2),
        "notes": f"{len(arrivals)}/{len(want)}",
        "ioi_error_ms": summary(errors),
        "scheduled": out.note_ons,
        "send_late_ms": summary([late / 1e6 for late in out.out.lateness_ns]),
        "xruns": jackd.xruns(),
    }


def _repeats(ons: list[tuple[int, list[int]]]) -> list[tuple[int, int, float]]:
    """(index, key, ms since that key's previous note-on) for note-ons within 20 ms of the previous one."""
    last: dict[int, int] = {}
    out = []
    for i, (ns, message) in enumerate(ons):
        before = last.get(message[1])
        if before is not None and ns - before < 20_000_000:
            out.append((i, message[1], round((ns - before) / 1e6, 3)))
        last[message[1]] = ns
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    results = []
    for period in args.periods:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run(period, Path(tmp)))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "midi_out", "song": SONG.name, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
