"""SynthScheduler: hands every event to the synth at once, books it on the event loop once due; cancel,
pending, resend and failures (no timing asserted: bench/e2e_latency.py measures the sound)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui.audio.scheduler import SynthScheduler
from pianorhythm.tui.audio.soundfont import find_soundfont
from pianorhythm.tui.audio.synth import SAMPLE_RATE, FluidSynthSynth

SOUNDFONT = find_soundfont().path


def ev(key: int, velocity: int = 100) -> MusicEvent:
    return MusicEvent(EventKind.NOTE, key, velocity, 0)


class Recorder:
    def __init__(self) -> None:
        self.queued: list[tuple[int, object, int]] = []
        self.played: list[tuple[object, int]] = []
        self.clock_reads = 0

    def sound_at(self, due_ns: int, player: object, event: MusicEvent) -> int:
        if event.number == 13:
            raise RuntimeError("boom")
        self.queued.append((due_ns, player, event.number))
        return 0

    def book(self, due_ns: int, player: object, event: MusicEvent) -> None:
        self.played.append((player, event.number))

    def clock(self) -> None:
        self.clock_reads += 1


async def until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_events_go_to_the_synth_at_once_and_are_booked_in_due_order():
    r = Recorder()
    scheduler = SynthScheduler(r.sound_at, r.book, r.clock)
    scheduler.start()
    try:
        base = time.perf_counter_ns() + 30_000_000
        scheduler.schedule(base + 2_000_000, "a", ev(3))
        scheduler.schedule(base, "a", ev(1))
        scheduler.schedule(base, "a", ev(2))
        scheduler.schedule(base - 10_000_000, "b", ev(0))
        assert [n for _, _, n in r.queued] == [3, 1, 2, 0]  # handed over as they came, with their due
        assert r.played == [] and scheduler.pending() == 4 and scheduler.pending("a") == 3
        await until(lambda: len(r.played) == 4)
    finally:
        scheduler.stop()
    assert r.played == [("b", 0), ("a", 1), ("a", 2), ("a", 3)]
    assert scheduler.dispatched == 4 and scheduler.pending() == 0
    assert r.clock_reads >= 1
    assert scheduler.lateness_quantiles_ms(0.5, 0.99) == (0.0, 0.0)


async def test_cancel_forgets_one_players_pending_events_and_resend_queues_the_rest_again():
    r = Recorder()
    scheduler = SynthScheduler(r.sound_at, r.book)
    scheduler.start()
    try:
        far = time.perf_counter_ns() + 60 * 10**9
        scheduler.schedule(far, "a", ev(1))
        scheduler.schedule(far, "b", ev(2))
        scheduler.schedule(far, "a", ev(3))
        scheduler.schedule(time.perf_counter_ns() - 1_000_000, "b", ev(4))  # due: not booked yet
        assert scheduler.cancel("a") == 2
        assert scheduler.pending() == 2 and scheduler.pending("b") == 2
        r.queued.clear()
        assert scheduler.resend() == 1  # the one already due sounded on the old synth
        assert r.queued == [(far, "b", 2)]
    finally:
        scheduler.stop()
    assert scheduler.pending() == 0


async def test_cancel_books_what_has_sounded_before_forgetting_the_rest():
    r = Recorder()
    scheduler = SynthScheduler(r.sound_at, r.book)
    scheduler.start()
    try:
        now = time.perf_counter_ns()
        scheduler.schedule(now - 2_000_000, "a", ev(1))  # due already: the synth has played it
        scheduler.schedule(now + 60 * 10**9, "a", ev(2))
        scheduler.schedule(now - 1_000_000, "b", ev(3))
        assert scheduler.cancel("a") == 1
        assert r.played == [("a", 1)]  # booked now, so the engine's releases cover it
        assert scheduler.pending() == 1
    finally:
        scheduler.stop()


async def test_a_synth_that_raises_does_not_stop_the_others(caplog):
    r = Recorder()
    scheduler = SynthScheduler(r.sound_at, r.book)
    scheduler.start()
    try:
        now = time.perf_counter_ns()
        scheduler.schedule(now, "a", ev(13))
        scheduler.schedule(now + 1_000_000, "a", ev(2))
        await until(lambda: len(r.played) == 2)
    finally:
        scheduler.stop()
    assert [n for _, _, n in r.queued] == [2]
    assert "queueing a scheduled event in the synth failed" in caplog.text


@pytest.mark.skipif(SOUNDFONT is None, reason="no General MIDI SoundFont installed")
async def test_a_remote_note_through_the_scheduler_makes_sound():
    assert SOUNDFONT is not None
    synth = FluidSynthSynth(SOUNDFONT)
    booked: list[int] = []
    scheduler = SynthScheduler(
        lambda due, player, event: synth.play_at(0, event, due),
        lambda due, player, event: booked.append(event.number),
        synth.observe_clock,
    )
    scheduler.start()
    try:
        synth.render(480)
        due = time.perf_counter_ns() + 20_000_000
        scheduler.schedule(due, 7, ev(60))
        scheduler.schedule(due + 200_000_000, 7, ev(60, 0))
        audio = synth.render(SAMPLE_RATE // 5)  # offline: the synth's time is what it rendered
        assert float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) > 100.0
        await until(lambda: booked == [60, 60])
    finally:
        scheduler.stop()
        synth.close()
