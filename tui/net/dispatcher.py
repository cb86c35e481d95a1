"""The dispatch thread: hands scheduled events to the synth at their due time (p50 ~0.02 ms late).

asyncio's timers wake up to a millisecond late (epoll rounds its timeout up to whole milliseconds) and the
event loop may be busy drawing the screen, so due events are played from a thread of their own. It waits
on a condition variable in two steps, a coarse wait to GUARD_NS before the earliest due time and a fine
wait to a short *margin* before it, then spins only that margin:

- the coarse wait may oversleep by milliseconds now and then (an idle VM's vCPU is slow to wake); the
  guard absorbs that, and the fine wait, a short sleep, wakes far more reliably. One extra wake per event
  (~0.3 % of a core at 100 events/s) took the dispatch error p99 from 2.5-3 ms to ~0.4 ms here;
- the thread's timer slack is set to 1 ns (Linux prctl), so a timed wait is not rounded up by the
  kernel's default 50 µs slack;
- the margin follows the waits' own overshoot: the 75th percentile of the last OVERSHOOT_HISTORY timed
  waits plus MARGIN_PAD_NS, within [MIN_MARGIN_NS, MAX_MARGIN_NS]. On a quiet machine that is ~0.15-0.25 ms,
  about 0.1 ms of spinning per wake (1-2 % of a core at 100 events/s); a fine wait that overshoots by
  more than the margin makes that event late by the difference (the old 1 ms spin cost ~10 % of a core
  and did not cut the tail further);
- events due within COALESCE_NS of the one being played go out in the same wake (a chord, a note-off
  right behind a note-on), up to that much early, rather than costing a wake or a spin of their own;
- the interpreter's switch interval is lowered to SWITCH_INTERVAL_S (from Python's 5 ms): when another
  thread is running Python the woken thread waits for the GIL, and at 5 ms that wait dominated the tail
  (bench/engine_cpu.py --busy-ms). With no spinning thread competing for the GIL, 1 ms costs nothing
  measurable; 0.5 ms bought nothing more.

`lateness_ns` keeps the recent dispatch errors (synth call time - due time; negative for coalesced
events); bench/engine_cpu.py and `--headless` (its stats line) report them.

Events of one player keep their order: the heap breaks ties on due time by insertion order.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Final

from pianorhythm.events import MusicEvent

log = logging.getLogger(__name__)

MIN_MARGIN_NS: Final = 50_000
MAX_MARGIN_NS: Final = 400_000
MARGIN_PAD_NS: Final = 25_000
MARGIN_QUANTILE: Final = 0.75
OVERSHOOT_HISTORY: Final = 64
COALESCE_NS: Final = 200_000
GUARD_NS: Final = 2_000_000
SWITCH_INTERVAL_S: Final = 0.001
LATENESS_HISTORY: Final = 4096
_PR_SET_TIMERSLACK: Final = 29

Sink = Callable[[int, Hashable, MusicEvent], None]  # (due_ns, player, event), called on the thread


class WakeMargin:
    """How long before a due time to stop sleeping and spin: follows the recent overshoot of timed waits."""

    def __init__(
        self,
        minimum_ns: int = MIN_MARGIN_NS,
        maximum_ns: int = MAX_MARGIN_NS,
        pad_ns: int = MARGIN_PAD_NS,
        history: int = OVERSHOOT_HISTORY,
    ) -> None:
        self.minimum_ns = minimum_ns
        self.maximum_ns = maximum_ns
        self.pad_ns = pad_ns
        self._overshoots: deque[int] = deque(maxlen=history)
        self.margin_ns = minimum_ns

    def add_overshoot(self, overshoot_ns: int) -> int:
        """Record how late one timed wait woke past its deadline; returns the new margin."""
        self._overshoots.append(max(0, overshoot_ns))
        ordered = sorted(self._overshoots)
        typical = ordered[min(len(ordered) - 1, int(MARGIN_QUANTILE * len(ordered)))]
        self.margin_ns = max(self.minimum_ns, min(self.maximum_ns, typical + self.pad_ns))
        return self.margin_ns


def set_thread_timer_slack(slack_ns: int = 1) -> bool:
    """Make this thread's timed sleeps wake as close to their deadline as the kernel can (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class Dispatcher:
    def __init__(
        self,
        sink: Sink,
        now_ns: Callable[[], int] = time.perf_counter_ns,
        *,
        margin: WakeMargin | None = None,
        coalesce_ns: int = COALESCE_NS,
        guard_ns: int = GUARD_NS,
        switch_interval_s: float | None = SWITCH_INTERVAL_S,
        timer_slack: bool = True,
    ) -> None:
        self._sink = sink
        self._now_ns = now_ns
        self.margin = margin if margin is not None else WakeMargin()
        self._coalesce_ns = coalesce_ns
        self._guard_ns = guard_ns
        self._switch_interval_s = switch_interval_s
        self._timer_slack = timer_slack
        self._heap: list[tuple[int, int, Hashable, MusicEvent]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False
        self.dispatched = 0
        self.wakes = 0
        self.max_lateness_ns = 0
        self.lateness_ns: deque[int] = deque(maxlen=LATENESS_HISTORY)  # synth call time - due, recent

    def start(self) -> None:
        if self._thread is not None:
            return
        interval = self._switch_interval_s
        if interval is not None and sys.getswitchinterval() > interval:
            sys.setswitchinterval(interval)
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

    def lateness_quantiles_ms(self, *qs: float) -> tuple[float, ...] | None:
        """Quantiles (0-1) of how late recent events reached the sink, in ms; None before the first."""
        values = sorted(self.lateness_ns)
        if not values:
            return None
        return tuple(values[min(len(values) - 1, int(q * len(values)))] / 1e6 for q in qs)

    def _run(self) -> None:
        if self._timer_slack and not set_thread_timer_slack():
            log.debug("could not lower the dispatch thread's timer slack")
        now = self._now_ns
        while True:
            with self._cond:
                if not self._running:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                due_ns = self._heap[0][0]
                deadline = due_ns - self.margin.margin_ns
                wait_ns = deadline - now()
                if self._guard_ns and wait_ns > self._guard_ns:  # far off: a coarse wait to the guard
                    self._cond.wait((wait_ns - self._guard_ns) / 1e9)
                    continue
                if wait_ns > 0:  # the fine wait, to within the margin
                    if not self._cond.wait(wait_ns / 1e9):  # timed out (not re-aimed by a new event)
                        self.margin.add_overshoot(now() - deadline)
                    continue
            while now() < due_ns:  # the margin: at most MAX_MARGIN_NS, usually ~0.1 ms
                pass
            self.wakes += 1
            self._play_due()

    def _play_due(self) -> None:
        while True:
            with self._cond:
                if not self._heap or self._heap[0][0] > self._now_ns() + self._coalesce_ns:
                    return
                due_ns, _, player, event = heapq.heappop(self._heap)
            lateness = self._now_ns() - due_ns
            if lateness > self.max_lateness_ns:
                self.max_lateness_ns = lateness
            self.lateness_ns.append(lateness)
            try:
                self._sink(due_ns, player, event)
            except Exception:  # a sink bug must not stop the music for everyone else
                log.exception("playing a scheduled event failed")
            self.dispatched += 1
