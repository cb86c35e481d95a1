"""The dispatch thread: hands scheduled events to the synth at their due time (p50 about 0.2 ms late).

asyncio's timers wake up to a millisecond late (epoll rounds its timeout up to whole milliseconds) and the
event loop may be busy drawing the screen, so due events are played from a thread of their own. It sleeps
on a condition variable until SPIN_NS before the earliest due time (a condition wait may overshoot by a
millisecond or more), then halves the remaining time with short sleeps and spins for the last millisecond
(a thread that sleeps again under CPU contention may wait a whole scheduler slice, several ms, to run).
The interpreter's switch interval is lowered so the thread gets the GIL promptly when another is busy.
On a loaded machine the OS can still hold the thread back; bench/e2e_latency.py reports what it got.

Events of one player keep their order: the heap breaks ties on due time by insertion order.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Final

from pianorhythm.events import MusicEvent

log = logging.getLogger(__name__)

SPIN_NS: Final = 2_000_000
FINAL_SPIN_NS: Final = 1_000_000
SWITCH_INTERVAL_S: Final = 0.0005

Sink = Callable[[int, Hashable, MusicEvent], None]  # (due_ns, player, event), called on the thread


class Dispatcher:
    def __init__(self, sink: Sink, spin_ns: int = SPIN_NS, now_ns: Callable[[], int] = time.perf_counter_ns):
        self._sink = sink
        self._spin_ns = spin_ns
        self._now_ns = now_ns
        self._heap: list[tuple[int, int, Hashable, MusicEvent]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False
        self.dispatched = 0
        self.max_lateness_ns = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="playout-dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def schedule(self, due_ns: int, player: Hashable, event: MusicEvent) -> None:
        """Play `event` for `player` at `due_ns` (perf_counter_ns). Thread-safe."""
        with self._cond:
            heapq.heappush(self._heap, (due_ns, next(self._seq), player, event))
            if self._heap[0][0] == due_ns:  # the new earliest: wake the thread to re-aim
                self._cond.notify()

    def cancel(self, player: Hashable) -> int:
        """Drop every pending event of `player` (they left, or we lost the connection). Returns how many."""
        with self._cond:
            before = len(self._heap)
            self._heap = [item for item in self._heap if item[2] != player]
            heapq.heapify(self._heap)
            return before - len(self._heap)

    def pending(self, player: Hashable | None = None) -> int:
        with self._cond:
            return sum(1 for item in self._heap if player is None or item[2] == player)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._running:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                wait_ns = self._heap[0][0] - self._now_ns() - self._spin_ns
                if wait_ns > 0:
                    self._cond.wait(wait_ns / 1e9)
                    continue
                due_ns = self._heap[0][0]
            self._wait_until(due_ns)
            self._play_due()

    def _wait_until(self, due_ns: int) -> None:
        """The last stretch: short sleeps (they release the GIL and the CPU), then a spin of 1 ms."""
        while True:
            remaining = due_ns - self._now_ns()
            if remaining <= 0:
                return
            if remaining > FINAL_SPIN_NS:
                time.sleep(remaining / 2e9)

    def _play_due(self) -> None:
        while True:
            with self._cond:
                if not self._heap or self._heap[0][0] > self._now_ns():
                    return
                due_ns, _, player, event = heapq.heappop(self._heap)
            lateness = self._now_ns() - due_ns
            if lateness > self.max_lateness_ns:
                self.max_lateness_ns = lateness
            try:
                self._sink(due_ns, player, event)
            except Exception:  # a sink bug must not stop the music for everyone else
                log.exception("playing a scheduled event failed")
            self.dispatched += 1
