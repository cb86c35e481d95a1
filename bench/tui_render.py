"""TUI render cost: the keyboard roll scrolling with 20 held notes from 4 players, and client CPU while idle
in a room that receives 50 notes/s. Prints JSON.

    .venv/bin/python bench/tui_render.py [--frames 300] [--idle-seconds 10]

1. Frames: a headless app at 160x48 with the keyboard roll; each frame advances the roll's clock by one
   row, changes one of the 20 held notes (so the keyboard rows re-render too) and renders every line of
   the widget through Textual (`render_lines`). Reports mean and p99 ms per frame.
2. Idle CPU: a relay server and a sender run in subprocesses; the sender plays 50 note-ons/s (each with
   its note-off) into a room where the real app (real engine, no audio) sits. Reports the app process's
   CPU time / wall time over the window, as % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402
from textual.geometry import Region  # noqa: E402

from tui.widgets.keyboard_roll import KeyboardRoll  # noqa: E402

COLORS = {1: "#e6194b", 2: "#3cb44b", 3: "#4363d8", 4: "#f58231"}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class RollApp(App[None]):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield KeyboardRoll(clock=self.clock)


async def bench_frames(frames: int, size: tuple[int, int]) -> dict[str, float]:
    clock = Clock()
    app = RollApp(clock)
    async with app.run_test(size=size) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.set_colors(COLORS)
        held: list[tuple[int, int]] = []
        for i in range(20):
            player, key = 1 + i % 4, 36 + i * 3
            roll.pedal(player, i % 8 == 0)
            roll.note_on(player, key, 90)
            held.append((player, key))
        await pilot.pause()
        region = Region(0, 0, roll.size.width, roll.size.height)
        times = []
        for frame in range(frames):
            clock.t += roll.seconds_per_row
            player, key = held[frame % 20]
            roll.note_off(player, key)
            new_key = 36 + (key - 36 + 1) % 60
            roll.note_on(player, new_key, 90)
            held[frame % 20] = (player, new_key)
            start = time.perf_counter()
            roll.refresh()
            roll.render_lines(region)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "frames": frames,
        "width": size[0],
        "height": size[1],
        "mean_ms": round(statistics.fmean(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
        "max_ms": round(times[-1], 3),
    }


SENDER = r"""
import asyncio, sys, time
from websockets.asyncio.client import connect
from pianorhythm.wire import codec, pianorhythm_pb2 as pb

async def main(url, room, rate, seconds):
    async with connect(url, compression=None) as ws:
        await ws.send(codec.encode(pb.ClientMessage(hello=pb.Hello(name="sender"))))
        await ws.send(codec.encode(pb.ClientMessage(join_room=pb.JoinRoom(name=room))))
        async def drain():
            async for _ in ws:
                pass
        task = asyncio.create_task(drain())
        await asyncio.sleep(1.0)
        print("ready", flush=True)
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            key = 48 + i % 24
            events = [pb.NoteEvent(offset_us=0, note=pb.Note(key=key, velocity=90)),
                      pb.NoteEvent(offset_us=15000, note=pb.Note(key=key, velocity=0))]
            batch = pb.NoteBatch(base_time_us=time.time_ns() // 1000, events=events)
            await ws.send(codec.encode(pb.ClientMessage(note_batch=batch)))
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        task.cancel()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bench_idle(seconds: float, rate: float) -> dict[str, float]:
    from tui.app import PianoApp, options_from_args
    from tui.cli import build_parser
    from tui.screens.room import RoomScreen

    tmp = Path(tempfile.mkdtemp(prefix="pr-bench-"))
    os.environ["PIANORHYTHM_CONFIG_DIR"] = str(tmp)
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/api/websocket"
    cli = [sys.executable, "-m", "tui.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [*cli, "--server", "--port", str(port), "--db", str(tmp / "s.db"), "--log-level", "warning"],
        env=env,
        cwd=ROOT,
    )
    sender = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        args = build_parser().parse_args(["--no-audio", "--connect", url, "--room", "bench", "--name", "me"])
        app = PianoApp(options_from_args(args, tmp / "config.toml"))
        async with app.run_test(size=(120, 36)) as pilot:
            for _ in range(200):
                if isinstance(app.screen, RoomScreen):
                    break
                await pilot.pause(0.05)
            sender = subprocess.Popen(
                [sys.executable, "-c", SENDER, url, "bench", str(rate), str(seconds + 3)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
            )
            assert sender.stdout is not None
            await asyncio.to_thread(sender.stdout.readline)
            await asyncio.sleep(1.0)  # let the playout delay settle
            roll = app.screen.query_one(KeyboardRoll)
            frames0 = roll.frames
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, wall1 = time.process_time(), time.monotonic()
            frames = roll.frames - frames0
    finally:
        if sender is not None:
            sender.kill()
        server.terminate()
        server.wait(5)
    return {
        "notes_per_s": rate,
        "seconds": seconds,
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "roll_frames_per_s": round(frames / (wall1 - wall0), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0)
    opts = parser.parse_args()
    result = {
        "roll_80x24": asyncio.run(bench_frames(opts.frames, (80, 24))),
        "roll_160x48": asyncio.run(bench_frames(opts.frames, (160, 48))),
        "idle_in_room": asyncio.run(bench_idle(opts.idle_seconds, opts.rate)),
        "targets": {"p99_ms": 3.0, "cpu_percent": 10.0},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
