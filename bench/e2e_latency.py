"""Keypress -> remote sound through JACK 48 kHz/128, and rhythm (IOI) error, via a real relay on loopback.

A relay runs as a `pianorhythm-tui --server` process; two client engines: A plays, B listens. A plays a
song as if from a keyboard: each event's capture time is its perf_counter_ns stamp. B is a real listener:
its FluidSynth plays into a JACK server this bench starts (`jackd -R -d dummy -r 48000 -p 128`: no sound
card needed, realtime as JACK users run it; `--no-realtime` if that is refused), and a JACK client in a
process of its own (bench/_jack_capture.py) records what the synth sends out, with every cycle's frame time.

The sound is found in that audio: A plays a woodblock (GM 115, full level in its first block), reverb and
chorus off; the song's chords are 250 ms apart, so each chord's onset is the first 64-frame block (the
synth's own block) in its window whose peak jumps 4x over the two blocks before. Its time is the block's
JACK frame time (`left_synth`: the sample leaves the synth) and, adding the playback latency JACK reports
for the synth's port (256 frames here), when it is heard. Latency = heard - A's capture stamp; JACK's clock
is tied to perf_counter by a measured offset; A's and B's clocks are the same CLOCK_MONOTONIC, so there is
no clock-sync error in the measurement itself. Only note-ons are measured (a release has no onset).

A runs in a child process (with the jitter proxy on its path, in its event loop) so that B's process holds
only B's event loop and its synth, as a real listener's would: `listener_cpu_percent` is that process's CPU
(FluidSynth's rendering included) while the song plays.

Scenarios (each with fresh engines, room and JACK capture):
- loopback: A and B straight to the relay, balanced preset (target: keypress -> remote sound p99 <= 12 ms);
- jitter: A's path through a proxy adding 15 ms ± 15 ms (uniform, order kept) on the way up, balanced
  preset (targets: IOI error p99 <= 3 ms with a playout delay <= 35 ms).
- wan: both players on a long jittery path (issue 14): A's uplink through one proxy of base ± jitter
  (`--path`, default 150:60 ms, up only, in A's loop) and B's downlink through another (down only, in B's
  loop), balanced preset (targets: every note heard, IOI error p99 <= 3 ms over all notes). A starts playing
  LEAD_IN_S after both are in the room, as bench/network.py does. A proxy's seed fixes the delay each chunk
  draws, so one seed pair is one realisation of the path and repeated runs replay it (the pair 7/11 put a
  transit 1 ms under the path's very top on the same chunk in every run): `--wan-seeds N` runs N pairs
  (default 3) and the figures are over all of them, each run's own under "runs". The sound arrives later
  than the next chords' captures, so each chord's onset is looked for from ANCHOR_LEAD_NS before its due
  time (what B's playout asked the synth for) up to the next chord's; the other scenarios keep the
  capture-time window.
- floor: no network: B plays the song itself (engine.play_local, straight to the synth), the set-up's floor.

Figures are given for all note-ons and for the steady state after the first WARMUP events (the playout
delay starts with headroom and glides down 1-2 ms per rest as it learns the path). Over all notes: notes heard
of those sent, the IOI error of the first ten, the first note's delay and the settled delay (sound heard -
capture: the first note-on's, and the median of the last SETTLED_NOTES), against the largest transit
(B's synth call - capture).

    .venv/bin/python bench/e2e_latency.py [--song FILE.mid] [--scenario loopback jitter wan floor]
        [--path 150:60] [--wan-seeds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pianorhythm.client.effects import LOCAL  # noqa: E402
from pianorhythm.client.model import EngineEvent, NotesScheduled, PlayerStats  # noqa: E402
from pianorhythm.events import MusicEvent  # noqa: E402
from pianorhythm.interpreter import tuned_interpreter  # noqa: E402
from pianorhythm.playout import LatencyPreset  # noqa: E402
from pianorhythm.tui.audio.soundfont import find_soundfont  # noqa: E402
from pianorhythm.tui.audio.synth import BLOCK_FRAMES, FluidSynthSynth, NullSynth  # noqa: E402
from pianorhythm.tui.engine import Engine, EngineConfig, play_file_events  # noqa: E402
from pianorhythm.tui.midi.fileplayer import read_events  # noqa: E402
from tests.fixtures.daemons import die_with_parent  # noqa: E402
from tests.fixtures.proxy import JitterProxy  # noqa: E402

WARMUP = 32
WOODBLOCK = 115  # GM program: full level in its first block, gone well before the next chord
RATE = 48000
PERIOD = 128
JACK_ID = "pianorhythm-tui"
ONSET_JUMP = 4.0  # a block's peak over the larger of the two before it
ONSET_FLOOR = 0.01  # full scale 1.0; an idle synth is < 1e-4
CHORD_NS = 2_000_000  # note-ons captured this close together are one chord, one onset
WINDOW_NS = 200_000_000  # an onset is looked for this long after its capture (or up to the next chord)
ANCHOR_LEAD_NS = 20_000_000  # wan: a chord's window opens this long before its due time
SETTLED_NOTES = 20  # the settled delay: median over the last note-ons, as bench/network.py
LEAD_IN_S = 1.0  # both in the room -> first note: the clock burst is over
WAN_LEAD_IN_S = 2.0  # as bench/network.py: the clock exchanges have crossed the slow path a few times
# The proxies' seeds: the jitter scenario's, and the wan scenario's first pair (run k adds k to both). A seed
# fixes the delays each chunk draws, so repeated runs of one pair replay one realisation of the path.
UP_SEED = 7
DOWN_SEED = 11
TUNED = True  # --untuned: the listener runs without the entry point's interpreter settings (to compare)
CAPTURE = str(Path(__file__).with_name("_jack_capture.py"))
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


class TimingSynth(FluidSynthSynth):
    """B's FluidSynth on JACK; notes when each event was handed to it (play: now; play_at: queued)."""

    def __init__(self, soundfont: Path) -> None:
        settings = {"synth.reverb.active": 0, "synth.chorus.active": 0, "audio.jack.id": JACK_ID}
        super().__init__(soundfont, driver="jack", settings=settings)
        self.log: list[tuple[int, int, MusicEvent, int | None]] = []  # (call ns, channel, event, due)
        self._queueing = False

    def play(self, channel: int, event: MusicEvent) -> None:
        if not self._queueing:  # play_at plays an event that came too late for its block at once
            self.log.append((time.perf_counter_ns(), channel, event, None))
        super().play(channel, event)

    def play_at(self, channel: int, event: MusicEvent, due_ns: int) -> int:
        self.log.append((time.perf_counter_ns(), channel, event, due_ns))
        self._queueing = True
        try:
            return super().play_at(channel, event, due_ns)
        finally:
            self._queueing = False


class Jackd:
    """`jackd -d dummy` at 48 kHz/`period` under a name of its own; this process's JACK clients talk to it."""

    def __init__(self, workdir: Path, period: int = PERIOD) -> None:
        binary = shutil.which("jackd")
        if binary is None:
            raise SystemExit("jackd is not installed (apt install jackd2)")
        self.name = f"pr-bench-{uuid.uuid4().hex[:8]}"
        self.log = workdir / "jackd.log"
        self.realtime = True
        for realtime in ("-R", "--no-realtime"):
            self.realtime = realtime == "-R"
            args = [binary, "-n", self.name, realtime, "-d", "dummy", "-r", str(RATE), "-p", str(period)]
            self.proc = subprocess.Popen(
                args, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
            if self._ready():
                break
            self.proc.kill()
            self.proc.wait(5)
        else:
            raise RuntimeError(f"jackd did not start: {self.log.read_text()}")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        os.environ["JACK_NO_START_SERVER"] = "1"

    def _ready(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            check = subprocess.run(["jack_lsp", "-s", self.name], capture_output=True, check=False)
            if check.returncode == 0 and b"system:" in check.stdout:
                return True
            time.sleep(0.1)
        return False

    def xruns(self) -> int:
        return self.log.read_text(errors="replace").count("XRun")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Capture:
    """bench/_jack_capture.py recording B's synth; `stop()` returns its npz."""

    def __init__(self, out: Path, seconds: float) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, CAPTURE, JACK_ID, str(out), str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the JACK capture did not start")

    def stop(self) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        return np.load(self.out)


def onsets(capture: Any, chords_ns: list[int]) -> list[float | None]:
    """The perf_counter time (ns) at which each chord's sound leaves the synth, found in the audio; None if
    no onset is found in its window (from the chord's time in `chords_ns` up to the next chord's, at most
    WINDOW_NS). Blocks are the synth's own (it renders whole 128-frame periods)."""
    audio = np.abs(capture["audio"]).max(axis=1)
    blocks = len(audio) // BLOCK_FRAMES
    peak = audio[: blocks * BLOCK_FRAMES].reshape(blocks, BLOCK_FRAMES).max(axis=1)
    per_cycle = PERIOD // BLOCK_FRAMES
    cycle_us = capture["cycle_us"].astype(np.float64) + float(capture["jack_to_perf_us"])
    index = np.arange(blocks)
    block_ns = (cycle_us[index // per_cycle] + (index % per_cycle) * BLOCK_FRAMES * 1e6 / RATE) * 1000
    before = np.maximum(np.concatenate([[0.0, 0.0], peak[:-2]]), np.concatenate([[0.0], peak[:-1]]))
    hits = (peak > ONSET_FLOOR) & (peak > ONSET_JUMP * before)
    found: list[float | None] = []
    for i, start in enumerate(chords_ns):
        end = min(start + WINDOW_NS, chords_ns[i + 1] if i + 1 < len(chords_ns) else start + WINDOW_NS)
        lo, hi = np.searchsorted(block_ns, start), np.searchsorted(block_ns, end)
        where = np.flatnonzero(hits[lo:hi])
        found.append(float(block_ns[lo + where[0]]) if len(where) else None)
    return found


def start_relay(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    err = (workdir / "server.err").open("wb")
    db = str(workdir / "s.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pianorhythm.tui.cli", "--server", "--port", "0", "--db", db],
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


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(pct(values, 0.5), 3),
        "p99": round(pct(values, 0.99), 3),
        "max": round(max(values), 3),
    }


async def _wait(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


def url_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def sender(
    url: str,
    room: str,
    song_path: str,
    base_ms: float,
    jitter_ms: float,
    lead_in_s: float,
    out: str,
    seed: int = UP_SEED,
) -> None:
    """The child process: engine A (and the jitter proxy on its path) plays the song; stamps go to `out`."""
    proxy = None
    if jitter_ms:
        port = url_port(url)
        proxy = JitterProxy("127.0.0.1", port, base_ms / 1000, jitter_ms / 1000, seed=seed, down=False)
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
    a.set_instrument(WOODBLOCK)
    await asyncio.sleep(lead_in_s)
    await play_file_events(a, read_events(song_path))
    await asyncio.sleep(max(0.3, 2 * (base_ms + jitter_ms) / 1000))  # the last chunks leave the uplink proxy
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
    """The longest cyclic-GC pauses in this process (they hold the GIL)."""

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


def sound_figures(
    sent: list[tuple[int, int, int, bool]],
    capture: Any,
    due_of_onset: list[int | None],
    anchor_on_due: bool = False,
) -> tuple[dict[str, Any], list[float]]:
    """Latency, IOI error and the scheduler's error, from the onsets found in the capture; and the IOI
    errors themselves (ms, one per interval between heard note-ons)."""
    playback_ns = int(capture["playback_latency"]) * 1e9 / RATE
    note_ons = [(i, s[0]) for i, s in enumerate(sent) if s[3]]
    chords: list[list[int]] = []  # indices into note_ons
    for n, (_, t) in enumerate(note_ons):
        if chords and t - note_ons[chords[-1][0]][1] <= CHORD_NS:
            chords[-1].append(n)
        else:
            chords.append([n])
    starts = [note_ons[c[0]][1] for c in chords]
    if anchor_on_due:
        starts = [
            (due_of_onset[c[0]] or start) - ANCHOR_LEAD_NS for c, start in zip(chords, starts, strict=True)
        ]
    found = onsets(capture, starts)
    latency: list[tuple[int, float]] = []  # (event index, ms)
    heard: list[tuple[int, float]] = []  # (capture ns, onset ns) per note-on: a chord's notes share one
    scheduler_error: list[float] = []
    for chord, onset in zip(chords, found, strict=True):
        if onset is None:
            continue
        for n in chord:
            index, captured = note_ons[n]
            heard.append((captured, onset))
            latency.append((index, (onset + playback_ns - captured) / 1e6))
            due = due_of_onset[n]
            if due is not None:
                scheduler_error.append((onset - due) / 1e6)
    # Between consecutive note-ons, as the null-synth figures before (within a chord: ~0 both ways).
    ioi = [abs((b1 - b0) - (a1 - a0)) / 1e6 for (a0, b0), (a1, b1) in zip(heard, heard[1:], strict=False)]
    steady_onsets = sum(1 for i, _ in note_ons if i < WARMUP)
    delays = [ms for _, ms in latency]
    figures = {
        "chords": len(chords),
        "onsets_missed": sum(1 for f in found if f is None),
        "notes_sent": len(note_ons),
        "notes_heard": len(heard),
        "first_note_delay_ms": round(latency[0][1], 2)
        if latency and latency[0][0] == note_ons[0][0]
        else None,
        "settled_delay_ms": round(statistics.median(delays[-SETTLED_NOTES:]), 2) if delays else None,
        "latency_ms": summary([ms for _, ms in latency]),
        "latency_ms_steady": summary([ms for i, ms in latency if i >= WARMUP]),
        "left_synth_ms": summary([ms - playback_ns / 1e6 for _, ms in latency]),
        "playback_latency_ms": round(playback_ns / 1e6, 3),
        "ioi_error_ms": summary(ioi),
        "ioi_error_ms_first10": round(max(ioi[:10]), 3) if ioi else None,
        "ioi_error_ms_steady": summary(ioi[steady_onsets:]),
        "sound_minus_due_ms": summary(scheduler_error),
        "sound_minus_due_ms_min": round(min(scheduler_error), 3) if scheduler_error else None,
    }
    return figures, ioi


def run_scenario(
    url: str,
    song: str,
    room: str,
    up: tuple[float, float],
    preset: LatencyPreset,
    tmp: Path,
    font: Path,
    down: tuple[float, float] | None = None,
    seeds: tuple[int, int] = (UP_SEED, DOWN_SEED),
) -> tuple[dict[str, Any], list[float]]:
    """`up`: A's uplink (base, jitter) ms, (0, 0) for none; `down`: B's downlink (base, jitter), or None;
    `seeds`: the uplink's and the downlink's proxy. The figures, and the IOI errors (sound_figures)."""
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    loop = LoopThread("B")
    synth = TimingSynth(font)
    proxy = None
    b_url = url
    if down is not None:
        proxy = JitterProxy(
            "127.0.0.1", url_port(url), down[0] / 1000, down[1] / 1000, seed=seeds[1], up=False
        )
        loop.run(proxy.start())
        b_url = proxy.url()
    config = EngineConfig(b_url, "listener", room=room, save_token=False, preset=preset)
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
    lead_in = LEAD_IN_S if down is None else WAN_LEAD_IN_S
    child += [
        "--base-ms",
        str(up[0]),
        "--jitter-ms",
        str(up[1]),
        "--lead-in-s",
        str(lead_in),
        "--out",
        str(out),
        "--seed",
        str(seeds[0]),
    ]
    capture = Capture(tmp / f"{room}.npz", 120)
    cpu0, wall0 = time.process_time(), time.monotonic()
    subprocess.run(child, check=True, timeout=300, cwd=REPO)
    time.sleep(0.3)
    cpu_percent = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
    report = json.loads(out.read_text())
    mine = b.channels.channel_of(LOCAL)
    if down is not None:  # the last notes are still on B's downlink or in B's playout queue

        def remote() -> list[tuple[MusicEvent, int | None]]:
            return [(e, due) for _, ch, e, due in synth.log if ch != mine and e.kind.name == "NOTE"]

        loop.run(_wait(lambda: len(remote()) >= len(report["events"]), timeout=5))
        last_due = max(e.time_ns if due is None else due for e, due in remote())
        time.sleep(max(0.0, (last_due - time.perf_counter_ns()) / 1e9) + 0.3)
    audio = capture.stop()
    uid = report["user_id"]
    stats = last_stats.get(uid)
    b_clock = b.session.clock.estimate
    b_clock_error = (
        (b_clock.offset_us - (time.time_ns() - time.perf_counter_ns()) / 1000) / 1000 if b_clock else None
    )
    got = [(t, e, due) for t, ch, e, due in synth.log if ch != mine and e.kind.name == "NOTE"]
    lateness = b.scheduler.lateness_quantiles_ms(0.5, 0.99)
    loop.run(b.close())
    if proxy is not None:
        loop.run(proxy.close())
    loop.stop()
    synth.close()
    gc.callbacks.remove(gc_pauses)

    sent = [tuple(s) for s in report["events"]]
    assert len(got) == len(sent), f"B's synth got {len(got)} of {len(sent)} events"
    assert all((g.number, g.value) == (s[1], s[2]) for (_, g, _), s in zip(got, sent, strict=True))
    # The due time of each note-on: the event's time_ns as scheduled (what play_at got, or B's stamp).
    due = [g.time_ns if d is None else d for (_, g, d), s in zip(got, sent, strict=True) if s[3]]
    figures, ioi = sound_figures(sent, audio, list(due), anchor_on_due=down is not None)
    transit = [(t - s[0]) / 1e6 for (t, _, _), s in zip(got, sent, strict=True)]
    result = {
        "seeds": list(seeds) if up[1] or down is not None else None,
        "events": len(sent),
        "onsets": sum(1 for s in sent if s[3]),
        "jitter_ms": up[1],
        "path_up_ms": f"{up[0]:g}±{up[1]:g}",
        "path_down_ms": f"{down[0]:g}±{down[1]:g}" if down is not None else None,
        "largest_transit_ms": round(max(transit), 2),
        "preset": preset.value,
        **figures,
        "listener_cpu_percent": round(cpu_percent, 1),
        "queue_late_ms": {"p50": lateness[0], "p99": lateness[1]} if lateness else None,
        "playout_delay_ms_final": round(stats.delay_ms, 2) if stats else None,
        "late_events": stats.late_count if stats else None,
        "listener_gc": gc_pauses.summary(),
        "sender_clock_rtt_ms": round(report["rtt_ms"], 2) if report["rtt_ms"] else None,
        "sender_clock_error_ms": round(report["clock_error_ms"], 3)
        if report["clock_error_ms"] is not None
        else None,
        "listener_clock_error_ms": round(b_clock_error, 3) if b_clock_error is not None else None,
    }
    return result, ioi


def pooled(runs: list[tuple[dict[str, Any], list[float]]]) -> dict[str, Any]:
    """The wan scenario over several seed pairs: each is one realisation of the path (the delay every chunk
    draws), so the issue's figures are taken over all of them (IOI error over every run's intervals, late
    events over every run's events), with each run's own figures under "runs"."""
    figures = [f for f, _ in runs]

    def span(key: str) -> list[float] | None:
        values = [f[key] for f in figures if f.get(key) is not None]
        return [min(values), max(values)] if values else None

    late = sum(f["late_events"] or 0 for f in figures)
    events = sum(f["events"] for f in figures)
    return {
        "runs": figures,
        "seeds": [f["seeds"] for f in figures],
        "path_up_ms": figures[0]["path_up_ms"],
        "path_down_ms": figures[0]["path_down_ms"],
        "notes_sent": sum(f["notes_sent"] for f in figures),
        "notes_heard": sum(f["notes_heard"] for f in figures),
        "onsets_missed": sum(f["onsets_missed"] for f in figures),
        "ioi_error_ms": summary([ms for _, ioi in runs for ms in ioi]),
        "ioi_error_ms_first10": max((f["ioi_error_ms_first10"] or 0.0) for f in figures),
        "ioi_error_p99_ms_per_run": [f["ioi_error_ms"].get("p99") for f in figures],
        "late_events": late,
        "events": events,
        "late_percent": round(100 * late / max(1, events), 2),
        "first_note_delay_ms": span("first_note_delay_ms"),
        "settled_delay_ms": span("settled_delay_ms"),
        "largest_transit_ms": span("largest_transit_ms"),
        "settled_over_largest_ms": [
            round(min(f["settled_delay_ms"] - f["largest_transit_ms"] for f in figures), 2),
            round(max(f["settled_delay_ms"] - f["largest_transit_ms"] for f in figures), 2),
        ],
    }


def run_floor(song: str, tmp: Path, font: Path) -> dict[str, Any]:
    """No network: B's own keypresses straight into the synth (play_local), as the set-up's floor."""
    loop = LoopThread("B")
    synth = TimingSynth(font)
    b = Engine(EngineConfig("ws://127.0.0.1:9/unused", "alone", save_token=False), synth=synth)
    loop.run(b.start())
    synth.set_program(b.channels.channel_of(LOCAL) or 0, WOODBLOCK)
    capture = Capture(tmp / "floor.npz", 120)
    sent: list[tuple[int, int, int, bool]] = []

    def local(event: MusicEvent) -> None:
        sent.append((event.time_ns, event.number, event.value, event.is_note_on))
        synth.play(b.channels.channel_of(LOCAL) or 0, event)

    async def play() -> None:
        from pianorhythm.tui.midi.fileplayer import play_events

        await play_events(read_events(song), local, start_ns=time.perf_counter_ns() + 50_000_000)

    loop.run(play())
    time.sleep(0.3)
    audio = capture.stop()
    loop.run(b.close())
    loop.stop()
    synth.close()
    figures, _ = sound_figures(sent, audio, [None] * sum(1 for s in sent if s[3]))
    return {"events": len(sent), **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default=str(REPO / "tests" / "data" / "m21-test02.mid"))
    parser.add_argument(
        "--scenario",
        nargs="*",
        default=["loopback", "jitter"],
        choices=["loopback", "jitter", "wan", "floor"],
    )
    parser.add_argument(
        "--path", default="150:60", help="wan: BASE:JITTER ms of A's uplink and of B's downlink (each)"
    )
    parser.add_argument(
        "--wan-seeds",
        type=int,
        default=3,
        help="wan: run the path with this many seed pairs (run k: uplink 7+k, downlink 11+k) and pool them",
    )
    parser.add_argument("--preset", default="balanced", choices=[p.value for p in LatencyPreset])
    parser.add_argument("--role", default="main", choices=["main", "sender"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--room", help=argparse.SUPPRESS)
    parser.add_argument("--base-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--jitter-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--lead-in-s", type=float, default=LEAD_IN_S, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=UP_SEED, help=argparse.SUPPRESS)
    parser.add_argument(
        "--untuned", action="store_true", help="listener: without tuned_interpreter() (no gc.freeze)"
    )
    args = parser.parse_args()
    global TUNED
    TUNED = not args.untuned
    if args.role == "sender":
        asyncio.run(
            sender(
                args.url,
                args.room,
                args.song,
                args.base_ms,
                args.jitter_ms,
                args.lead_in_s,
                args.out,
                args.seed,
            )
        )
        return
    base_text, _, jitter_text = args.path.partition(":")
    try:
        base, jitter = float(base_text), float(jitter_text)
    except ValueError:
        raise SystemExit(f"--path {args.path!r}: give BASE:JITTER in ms, e.g. 150:60") from None
    font = find_soundfont().path
    if font is None:
        raise SystemExit("no SoundFont found (apt install timgm6mb-soundfont)")
    results: dict[str, Any] = {
        "song": Path(args.song).name,
        "warmup_events": WARMUP,
        "tuned_interpreter": TUNED,
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp, tuned_interpreter() if TUNED else nullcontext():
        jackd = Jackd(Path(tmp))
        results["jack"] = {"rate": RATE, "period": PERIOD, "realtime": jackd.realtime}
        proc, url = start_relay(Path(tmp))
        try:
            for name in args.scenario:
                if name == "floor":
                    results[name] = run_floor(args.song, Path(tmp), font)
                    continue
                preset = LatencyPreset(args.preset)
                room = f"bench-{name}"
                if name == "wan":
                    path = (base, jitter)
                    runs = [
                        run_scenario(
                            url,
                            args.song,
                            f"{room}-{k}",
                            path,
                            preset,
                            Path(tmp),
                            font,
                            down=path,
                            seeds=(UP_SEED + k, DOWN_SEED + k),
                        )
                        for k in range(args.wan_seeds)
                    ]
                    results[name] = pooled(runs)
                    continue
                up = (15.0, 15.0) if name == "jitter" else (0.0, 0.0)
                results[name], _ = run_scenario(url, args.song, room, up, preset, Path(tmp), font)
        finally:
            proc.terminate()
            proc.wait(10)
            results["jack"]["xruns"] = jackd.xruns()
            jackd.stop()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
