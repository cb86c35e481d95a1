"""Issue 14, item 1 over real sockets: two engines, each behind a proxy adding 20 ms ± 15 ms both ways.

Before the player's first note, the listener knows the player's uplink spread and floor (the relay measured
their pings and said it in presence) and its own downlink spread and floor (its pongs); the first note's
delay covers the floor + both spreads, whatever that note's own transit, and no note comes in below the floor.
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
        await until(lambda: them.info.uplink_floor_us > 0)
        assert listener.core.link.downlink_floor_us(time.perf_counter_ns()) is not None

        notes = [MusicEvent(EventKind.NOTE, 60 + i % 12, 90 * (1 - i % 2), 0) for i in range(20)]
        for i, note in enumerate(notes):
            notes[i] = note = MusicEvent(note.kind, note.number, note.value, time.perf_counter_ns())
            player.play_local(note)
            await asyncio.sleep(0.05)
            if i == 0:
                await until(lambda: len(scheduled) == 1)
                p = them.playout
                floor, spread = p.path_floor_us, p.path_spread_us
                first_delay, first_transit = p.delay_us, p.window.sorted[0]
        await until(lambda: len(scheduled) == len(notes))
        assert floor is not None and spread > SPREAD_US
        # The balanced rule: floor + both spreads + 0.1 x spread; the note's own transit does not add to it
        # (it was the lowest seen; Session 4 waited for that transit + the spreads).
        assert first_delay == max(floor + spread + max(1_000, round(spread / 10)), first_transit + 1_000)
        # The floor is where transits start. It is the lowest of the pings' transits on each leg, so a note
        # may come in a little below it (one run: 4.8 ms), never by a sizeable part of a leg's spread.
        assert them.playout.window.sorted[0] >= floor - SPREAD_US // 4, (them.playout.window.sorted[0], floor)
        assert them.playout.late_count == 0
    finally:
        await player.close()
        await listener.close()
