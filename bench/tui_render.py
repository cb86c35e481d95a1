"""TUI render cost: the keyboard roll scrolling with 20 held notes from 4 players, and client CPU while idle
in a room that receives 50 notes/s. Prints JSON.

    .venv/bin/python bench/tui_render.py [--frames 300] [--idle-seconds 10] [--skip-idle]

1. Frames (headless Textual app, 80x24 and 160x48, the roll filling the screen): 20 notes held by 4
   players (player 1 with the sustain pedal, so up to one more bar is sustained); each frame advances the
   roll's clock by one row and changes one of the 20 notes (so the keyboard rows change too), then
   does what the app does for a frame: the roll's frame tick (`advance()`, which marks what must be
   redrawn) and Textual's render of every line of the widget (`render_lines` over the whole widget, line
   filters included). `roll_*` reports mean, p99 and max ms of that. `screen_*` also times the rest of the
   frame: the compositor's update of the screen and its conversion to the terminal's escape sequences.
   The garbage-collector policy is the app's (`settle_gc` once the screen has settled, `tuned_interpreter`).
   `room_120x36`: the same kind of frame in the room screen (two players, header, footer, status bar, chat
   and players list around the roll), timed up to the terminal write, with the count of `render_lines`
   calls per frame of each widget other than the roll (Textual's stock compositor asks the widgets whose
   clip overlaps the changed area; see bench/README.md, section H).
2. Idle CPU: a relay server, a sender playing 50 note-ons/s (each with its note-off 15 ms later) and the
   real client in the same room: the TUI in a real terminal (tmux, 120x36, --no-audio), then, for the
   split, `--headless` (the client engine alone) under the same load. Reports each process's CPU time /
   wall time as % of one core, for the main thread and the other threads (mostly the playout dispatch
   thread) apart. Needs tmux; skipped with a note when it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _note_sender import SCRIPT as SENDER_SCRIPT  # noqa: E402
from _note_sender import free_port  # noqa: E402
from textual._compositor import CompositorUpdate  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.geometry import Region  # noqa: E402
from textual.strip import Strip  # noqa: E402
from textual.widget import Widget  # noqa: E402

from pianorhythm.client import model as m  # noqa: E402
from pianorhythm.interpreter import settle_gc, tuned_interpreter  # noqa: E402
from pianorhythm.tui.screens.room import RoomScreen  # noqa: E402
from pianorhythm.tui.widgets.keyboard_roll import KeyboardRoll  # noqa: E402

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

    def on_mount(self) -> None:
        self.call_after_refresh(settle_gc)  # as PianoApp does once a screen has settled


class RoomApp(App[None]):
    """The room screen with two players and no network, its roll on the bench's clock."""

    CSS_PATH = ROOT / "tui" / "app.tcss"

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def on_mount(self) -> None:
        players = ((1, "ann"), (2, "bob"))
        users = tuple(m.UserInfo(uid, name, COLORS[uid], "online", 0, False, uid) for uid, name in players)
        settings = m.RoomSettingsInfo(True, False, 20, True, False)
        room = m.RoomInfo("jam session", False, 2, settings, users, (), 0)
        self.push_screen(RoomScreen(room, 1, None, clock=self.clock, stats_interval_s=0))
        self.call_after_refresh(settle_gc)


def _count_renders(widgets: list[Widget]) -> dict[str, int]:
    counts = {type(w).__name__: 0 for w in widgets}
    for widget in widgets:
        original, name = widget.render_lines, type(widget).__name__

        def counted(crop: Region, original: Any = original, name: str = name) -> list[Strip]:
            counts[name] += 1
            result: list[Strip] = original(crop)
            return result

        widget.render_lines = counted  # type: ignore[method-assign]
    return counts


async def bench_room_frames(frames: int) -> dict[str, Any]:
    clock = Clock()
    app = RoomApp(clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.pause()
        screen = app.screen
        roll = screen.query_one(KeyboardRoll)
        for key in (48, 52, 55, 60):
            roll.note_on(2, key, 90)
        await pilot.pause()
        counts = _count_renders([screen, *(w for w in screen.query(Widget) if w is not roll)])
        compositor = screen._compositor
        times: list[float] = []
        for frame in range(frames):
            clock.t += roll.seconds_per_row
            roll.note_off(2, 40 + (frame - 1) % 30)
            roll.note_on(2, 40 + frame % 30, 80)
            start = time.perf_counter()
            roll.advance()
            compositor.update_widgets({roll})
            update = compositor.render_update(screen_stack=app._background_screens)
            assert update is None or isinstance(update, CompositorUpdate)
            if update is not None:
                update.render_segments(app.console)
            times.append((time.perf_counter() - start) * 1000)
    return {
        "frames": frames,
        "frame": _stats(times),
        "other_widget_renders_per_frame": {name: round(n / frames, 2) for name, n in counts.items() if n},
    }


def _stats(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "mean_ms": round(statistics.fmean(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
        "max_ms": round(times[-1], 3),
    }


async def bench_frames(frames: int, size: tuple[int, int]) -> dict[str, Any]:
    clock = Clock()
    app = RollApp(clock)
    async with app.run_test(size=size) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.set_colors(COLORS)
        held: list[tuple[int, int]] = []
        for i in range(20):
            player, key = 1 + i % 4, 36 + i * 3
            roll.note_on(player, key, 90)
            held.append((player, key))
        roll.pedal(1, True)  # player 1 plays with the pedal down: a changed note leaves a sustained bar
        await pilot.pause()
        await pilot.pause()  # settle_gc runs after the first refresh
        screen = app.screen
        compositor = screen._compositor
        region = Region(0, 0, roll.size.width, roll.size.height)
        widget_ms: list[float] = []
        screen_ms: list[float] = []
        out_bytes = 0
        sounding = 0
        for frame in range(2 * frames):
            clock.t += roll.seconds_per_row
            player, key = held[frame % 20]
            if player == 1:  # lift and press the pedal again: the last sustained bar ends, this one starts
                roll.pedal(1, False)
                roll.pedal(1, True)
            roll.note_off(player, key)
            new_key = 36 + (key - 36 + 1) % 60
            roll.note_on(player, new_key, 90)
            held[frame % 20] = (player, new_key)
            sounding = max(sounding, roll.model.sounding_count())
            start = time.perf_counter()
            roll.advance()
            if frame < frames:
                roll.render_lines(region)
                widget_ms.append((time.perf_counter() - start) * 1000)
            else:  # the whole frame as Screen._compositor_refresh does it, up to the terminal write
                compositor.update_widgets({roll})
                update = compositor.render_update(screen_stack=app._background_screens)
                # textual annotates this RenderableType; it is a CompositorUpdate (or None)
                assert update is None or isinstance(update, CompositorUpdate)
                text = update.render_segments(app.console) if update is not None else ""
                screen_ms.append((time.perf_counter() - start) * 1000)
                out_bytes += len(text.encode())
        assert roll.frames >= frames, "the roll did not render"
    return {
        "frames": frames,
        "width": size[0],
        "height": size[1],
        "roll": _stats(widget_ms),
        "screen": _stats(screen_ms),
        "sounding_notes_max": sounding,
        "terminal_bytes_per_frame": out_bytes // frames,
    }


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by each thread of `pid` (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _measure(pid: int, seconds: float) -> dict[str, float]:
    before, t0 = _thread_cpu(pid), time.monotonic()
    time.sleep(seconds)
    after, t1 = _thread_cpu(pid), time.monotonic()
    wall = t1 - t0
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    main = used.get(pid, 0.0)
    return {
        "cpu_percent_of_one_core": round(100 * sum(used.values()) / wall, 1),
        "main_thread_percent": round(100 * main / wall, 1),
        "other_threads_percent": round(100 * (sum(used.values()) - main) / wall, 1),
    }


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def bench_idle(seconds: float, rate: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pr-bench-"))
    port = free_port()
    url = f"ws://127.0.0.1:{port}/api/websocket"
    cli = [sys.executable, "-m", "pianorhythm.tui.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIANORHYTHM_CONFIG_DIR": str(tmp / "cfg")}
    socket_name = f"pr-bench-{os.getpid()}"
    tmux = ["tmux", "-L", socket_name]
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"notes_per_s": rate, "seconds": seconds}

    def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, env=env, cwd=ROOT, **kwargs)
        procs.append(proc)
        return proc

    def load(room: str) -> None:
        sender = spawn(
            [sys.executable, SENDER_SCRIPT, url, room, str(rate), str(seconds + 4)], stdout=subprocess.PIPE
        )
        assert sender.stdout is not None
        sender.stdout.readline()
        time.sleep(1.5)  # the playout delay settles

    try:
        spawn([*cli, "--server", "--port", str(port), "--db", str(tmp / "s.db"), "--log-level", "warning"])
        _wait(lambda: _can_connect(port), 10, "the server did not start")
        # The TUI in a real terminal.
        command = " ".join(
            ["exec", "env", f"PYTHONPATH={shlex.quote(str(ROOT))}", f"PIANORHYTHM_CONFIG_DIR={tmp / 'cfg'}"]
            + [shlex.quote(a) for a in cli]
            + ["--no-audio", "--connect", url, "--room", "tui", "--name", "me"]
        )
        subprocess.run(
            [*tmux, "new-session", "-d", "-x", "120", "-y", "36", command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pane_pid = int(_tmux_out(tmux, "display-message", "-p", "#{pane_pid}"))
        _wait(lambda: "(you)" in _tmux_out(tmux, "capture-pane", "-p"), 20, "the TUI did not join its room")
        load("tui")
        result["tui_120x36"] = _measure(pane_pid, seconds)
        # The engine alone, same load.
        # A config dir of its own: sharing the TUI's would resume the TUI's identity and replace its session.
        env["PIANORHYTHM_CONFIG_DIR"] = str(tmp / "cfg-headless")
        spawn(
            [*cli, "--headless", "--no-audio", "--connect", url, "--room", "headless", "--name", "bot"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        headless_pid = procs[-1].pid
        time.sleep(2.0)
        load("headless")
        result["headless"] = _measure(headless_pid, seconds)
    finally:
        found = subprocess.run(
            [*tmux, "display-message", "-p", "#{socket_path}"], capture_output=True, text=True
        )
        subprocess.run([*tmux, "kill-server"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if found.returncode == 0 and found.stdout.strip():
            Path(found.stdout.strip()).unlink(missing_ok=True)
        for proc in reversed(procs):
            proc.kill()
            proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
        return True
    except OSError:
        return False


def _tmux_out(tmux: list[str], *args: str) -> str:
    return subprocess.run([*tmux, *args], capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--skip-idle", action="store_true")
    opts = parser.parse_args()
    with tuned_interpreter():  # as pianorhythm.tui.cli.main runs the app
        result: dict[str, Any] = {
            "roll_80x24": asyncio.run(bench_frames(opts.frames, (80, 24))),
            "roll_160x48": asyncio.run(bench_frames(opts.frames, (160, 48))),
            "room_120x36": asyncio.run(bench_room_frames(opts.frames)),
        }
    if opts.skip_idle:
        pass
    elif shutil.which("tmux") is None:
        result["idle_in_room"] = "skipped: tmux is not installed"
    else:
        result["idle_in_room"] = bench_idle(opts.idle_seconds, opts.rate)
    result["targets"] = {"roll_p99_ms": 3.0, "tui_cpu_percent": 10.0}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
