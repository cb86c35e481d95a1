"""Remote notes at their due time: handed to the synth's own sequencer ahead, booked on the event loop.

The playout (pianorhythm.playout) gives every remote event a due time a few ms ahead. `schedule()` hands it
at once to the synth (`Synth.play_at`): FluidSynth's sequencer plays it in the audio thread, in the 64-frame
block that holds the due time (1.3 ms at 48 kHz), with no Python thread between the due time and the sound,
so neither the GIL, a busy event loop nor a garbage collection can make it late once it is queued. What is
not timing-critical (held notes, the recorder, which takes the event's own time, the keyboard on screen) is
done by `played`, called on the event loop once the event is due, for all events due so far at most every
BOOK_INTERVAL_NS: one loop wake per due time cost more main-thread CPU than the dispatch thread saved.

This replaced a dispatch thread that slept and then spun to each due time and called the synth there
(bench/README.md, "Session 4, C"): that thread needed the GIL at the due time, a lowered switch interval,
1 ns timer slack and 1-2 % of a core of spinning, and FluidSynth still only acted at its next period.

Runs on the event loop's thread only: `start()` inside the running loop, and every other call from it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Final

from pianorhythm.events import MusicEvent

log = logging.getLogger(__name__)

CLOCK_POLL_S: Final = 0.05  # how often the synth's clock is read (its offset: max over a 5 s window)
LATENESS_HISTORY: Final = 4096
BOOK_EARLY_NS: Final = 1_000_000  # asyncio runs a timer up to its clock resolution early: book those too
BOOK_INTERVAL_NS: Final = 25_000_000  # the screen draws at 20 frames/s: a later booking changes nothing

SoundAt = Callable[[int, Hashable, MusicEvent], int]  # (due_ns, player, event) -> ns late when handed over
Played = Callable[[int, Hashable, MusicEvent], None]  # (due_ns, player, event), on the loop, at ~due


class SynthScheduler:
    """Queue remote events in the synth at once; tell `played` about each on the loop when it is due.

    `sound_at` puts one event into the synth's own queue (the engine: the player's channel, then
    `Synth.play_at`) and returns how late it was handed over; `clock` reads the synth's clock
    (`Synth.observe_clock`), polled every CLOCK_POLL_S so the due-time mapping stays tight between notes.
    """

    def __init__(
        self,
        sound_at: SoundAt,
        played: Played,
        clock: Callable[[], None] | None = None,
        now_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._sound_at = sound_at
        self._played = played
        self._clock = clock
        self._now_ns = now_ns
        self._heap: list[tuple[int, int, Hashable, MusicEvent]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0
        self._booked_ns = 0  # when the last booking ran
        self._poll: asyncio.TimerHandle | None = None
        self.dispatched = 0
        self.max_lateness_ns = 0
        self.lateness_ns: deque[int] = deque(maxlen=LATENESS_HISTORY)  # hand-over time - due, if late

    def start(self) -> None:
        """Call on the running event loop: `played` and the clock polls run on it."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._poll_clock()
        self._arm()

    def stop(self) -> None:
        """Stop the loop timers and forget pending events (release the synth's channels to silence them)."""
        for timer in (self._timer, self._poll):
            if timer is not None:
                timer.cancel()
        self._timer = self._poll = None
        self._loop = None
        self._heap.clear()

    def schedule(self, due_ns: int, player: Hashable, event: MusicEvent) -> None:
        """Sound `event` for `player` at `due_ns` (perf_counter_ns): queued in the synth now."""
        late = 0
        try:
            late = self._sound_at(due_ns, player, event)
        except Exception:  # one bad event must not stop the music for everyone else
            log.exception("queueing a scheduled event in the synth failed")
        if late > 0:
            self.max_lateness_ns = max(self.max_lateness_ns, late)
        self.lateness_ns.append(late)
        heapq.heappush(self._heap, (due_ns, next(self._seq), player, event))
        self._arm()

    def resend(self) -> int:
        """Queue the events still to come again (into a new synth: the old one's queue went with it); those
        already due sounded on the old one and are not played twice. Returns how many were queued."""
        now = self._now_ns()
        coming = [item for item in sorted(self._heap) if item[0] > now]
        for due_ns, _, player, event in coming:
            try:
                self._sound_at(due_ns, player, event)
            except Exception:
                log.exception("queueing a pending event in the new synth failed")
        return len(coming)

    def cancel(self, player: Hashable) -> int:
        """Book `player`'s events that are due already (they have sounded), forget the rest; returns how
        many were forgotten. The synth drops what it queued for their channel in `Synth.release_all`, which
        is what to call next (they left, or we lost the link): its releases then cover every booked note."""
        now = self._now_ns()
        mine = sorted(item for item in self._heap if item[2] == player)
        self._heap = [item for item in self._heap if item[2] != player]
        heapq.heapify(self._heap)
        sounded = [item for item in mine if item[0] <= now + BOOK_EARLY_NS]
        for due_ns, _, key, event in sounded:
            self._book_one(due_ns, key, event)
        return len(mine) - len(sounded)

    def pending(self, player: Hashable | None = None) -> int:
        return sum(1 for item in self._heap if player is None or item[2] == player)

    def lateness_quantiles_ms(self, *qs: float) -> tuple[float, ...] | None:
        """Quantiles (0-1) of how late recent events reached the synth's queue, in ms (0: in time)."""
        values = sorted(self.lateness_ns)
        if not values:
            return None
        return tuple(values[min(len(values) - 1, int(q * len(values)))] / 1e6 for q in qs)

    def _arm(self) -> None:
        loop = self._loop
        if loop is None or not self._heap:
            return
        due_ns = max(self._heap[0][0], self._booked_ns + BOOK_INTERVAL_NS)
        if self._timer is not None:
            if self._timer_due <= due_ns:
                return
            self._timer.cancel()
        at = loop.time() + (due_ns - self._now_ns()) / 1e9
        self._timer_due = due_ns
        self._timer = loop.call_at(at, self._book)

    def _book(self) -> None:
        self._timer = None
        now = self._booked_ns = self._now_ns()
        while self._heap and self._heap[0][0] <= now + BOOK_EARLY_NS:
            due_ns, _, player, event = heapq.heappop(self._heap)
            self._book_one(due_ns, player, event)
        self._arm()

    def _book_one(self, due_ns: int, player: Hashable, event: MusicEvent) -> None:
        try:
            self._played(due_ns, player, event)
        except Exception:
            log.exception("booking a played event failed")
        self.dispatched += 1

    def _poll_clock(self) -> None:
        if self._clock is not None:
            try:
                self._clock()
            except Exception:
                log.exception("reading the synth's clock failed")
        loop = self._loop
        if loop is not None:
            self._poll = loop.call_later(CLOCK_POLL_S, self._poll_clock)
