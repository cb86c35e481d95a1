"""Issue 14, item 1 over real sockets: two engines, each behind a proxy adding 20 ms ± 15 ms both ways.

Before the player's first note, the listener knows the player's uplink spread (the relay measured their
pings and said it in presence) and its own downlink spread (its pongs); the first note's delay covers both.
"""

from __future__ import annotations

import asyncio
import time

from pianorhythm.client.model import EngineEvent, NotesScheduled
from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui.audio.synth import NullSynth
from pianorhythm.tui.engine import Engine, EngineConfig

SPREAD_US = 30_000  # ± 15 ms


async def until(predicate, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_the_first_note_is_delayed_for_both_legs_of_the_path(relay_server, jitter_proxy):
    up = await jitter_proxy(relay_server.port, delay_s=0.020, jitter_s=0.015, seed=1)
    down = await jitter_proxy(relay_server.port, delay_s=0.020, jitter_s=0.015, seed=2)
    config = {"room": "jam", "save_token": False, "ping_interval_s": 0.15}
    player = Engine(EngineConfig(up.url(), "player", **config), synth=NullSynth())  # type: ignore[arg-type]
    listener = Engine(EngineConfig(down.url(), "listener", **config), synth=NullSynth())  # type: ignore[arg-type]
    scheduled: list[tuple[int, MusicEvent]] = []

    def on_event(event: EngineEvent) -> None:
        if isinstance(event, NotesScheduled):
            scheduled.extend((time.perf_counter_ns(), e) for e in event.events)

    listener.subscribe(on_event)
    await listener.start()
    await player.start()
    try:
        await until(lambda: listener.room is not None and listener.room.name == "jam")
        await until(lambda: [p.info.name for p in listener.core.players.values()] == ["player"])
        them = next(iter(listener.core.players.values()))
        # Both legs measured over the real path, before any note: most of the ± 15 ms each way.
        await until(lambda: them.info.uplink_spread_us > SPREAD_US / 2)
        await until(lambda: listener.core.link.downlink.spread_us > SPREAD_US / 2)
        known = them.info.uplink_spread_us + listener.core.link.downlink.spread_us

        sent = MusicEvent(EventKind.NOTE, 60, 90, time.perf_counter_ns())
        player.play_local(sent)
        await until(lambda: len(scheduled) == 1)
        arrival_ns, due = scheduled[0]
        transit_ms, delay_ms = (arrival_ns - sent.time_ns) / 1e6, (due.time_ns - sent.time_ns) / 1e6
        # The lowest transit seen (this one) + both spreads + the balanced margin floor, give or take the
        # clock estimate's error (both clocks are this process's, so the figures are exact otherwise).
        assert delay_ms > transit_ms + known / 1000 - 2, (delay_ms, transit_ms, known)
        assert them.playout.late_count == 0
    finally:
        await player.close()
        await listener.close()
