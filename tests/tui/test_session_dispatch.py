"""The dispatch thread: due order, per-player order on ties, cancellation, the wake margin, chords in one
wake (no timing asserted here: bench/engine_cpu.py measures it)."""

import ctypes
import sys
import threading
import time

import pytest

from pianorhythm.events import EventKind, MusicEvent
from tui.net.dispatcher import COALESCE_NS, Dispatcher, WakeMargin, set_thread_timer_slack


def ev(key):
    return MusicEvent(EventKind.NOTE, key, 100, 0)


def test_plays_in_due_order_and_keeps_ties_in_insertion_order():
    played = []
    done = threading.Event()

    def sink(due, player, event):
        played.append((player, event.number))
        if len(played) == 5:
            done.set()

    dispatcher = Dispatcher(sink)
    dispatcher.start()
    try:
        base = time.perf_counter_ns() + 30_000_000
        dispatcher.schedule(base + 2_000_000, "a", ev(3))
        dispatcher.schedule(base, "a", ev(1))
        dispatcher.schedule(base, "a", ev(2))
        dispatcher.schedule(base - 10_000_000, "b", ev(0))
        dispatcher.schedule(base + 2_000_000, "a", ev(4))
        assert done.wait(2)
    finally:
        dispatcher.stop()
    assert played == [("b", 0), ("a", 1), ("a", 2), ("a", 3), ("a", 4)]
    assert dispatcher.dispatched == 5


def test_cancel_drops_one_players_pending_events():
    played = []
    dispatcher = Dispatcher(lambda due, player, event: played.append(player))
    far = time.perf_counter_ns() + 60 * 10**9
    dispatcher.schedule(far, "a", ev(1))
    dispatcher.schedule(far, "b", ev(2))
    dispatcher.schedule(far, "a", ev(3))
    assert dispatcher.cancel("a") == 2
    assert dispatcher.pending() == 1
    assert dispatcher.pending("b") == 1


def test_a_failing_sink_does_not_stop_the_thread():
    played = []
    done = threading.Event()

    def sink(due, player, event):
        if event.number == 1:
            raise RuntimeError("boom")
        played.append(event.number)
        done.set()

    dispatcher = Dispatcher(sink)
    dispatcher.start()
    try:
        now = time.perf_counter_ns()
        dispatcher.schedule(now, "a", ev(1))
        dispatcher.schedule(now + 1_000_000, "a", ev(2))
        assert done.wait(2)
    finally:
        dispatcher.stop()
    assert played == [2]


def test_wake_margin_follows_the_p90_overshoot_within_its_bounds():
    margin = WakeMargin(minimum_ns=100_000, maximum_ns=600_000, pad_ns=50_000, history=10)
    assert margin.margin_ns == 100_000
    for _ in range(9):
        margin.add_overshoot(20_000)
    assert margin.add_overshoot(20_000) == 100_000  # quiet: the floor
    for _ in range(5):
        margin.add_overshoot(300_000)
    assert margin.margin_ns == 350_000  # half the window woke 0.3 ms late: p90 + pad
    for _ in range(10):
        margin.add_overshoot(5_000_000)
    assert margin.margin_ns == 600_000  # a stalled machine: capped, spinning stays short
    for _ in range(10):
        margin.add_overshoot(-1_000)  # woke early: counts as on time
    assert margin.margin_ns == 100_000


def test_events_due_together_share_one_wake_and_lateness_is_kept():
    played = []
    done = threading.Event()

    def sink(due, player, event):
        played.append(event.number)
        if len(played) == 4:
            done.set()

    dispatcher = Dispatcher(sink)
    assert dispatcher.lateness_quantiles_ms(0.5) is None
    base = time.perf_counter_ns() + 50_000_000
    # A chord, then a note within the coalescing window, then one well after it.
    dispatcher.schedule(base, "a", ev(1))
    dispatcher.schedule(base, "a", ev(2))
    dispatcher.schedule(base + COALESCE_NS // 2, "a", ev(3))
    dispatcher.schedule(base + 20_000_000, "a", ev(4))
    dispatcher.start()
    try:
        assert done.wait(2)
    finally:
        dispatcher.stop()
    assert played == [1, 2, 3, 4]
    assert dispatcher.wakes <= 2  # 1 only if the machine held the thread back 20 ms
    assert len(dispatcher.lateness_ns) == 4
    quantiles = dispatcher.lateness_quantiles_ms(0.5, 0.99)
    assert quantiles is not None and quantiles[0] <= quantiles[1]  # p50 <= p99


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl timer slack is Linux only")
def test_timer_slack_is_lowered_for_the_calling_thread_only():
    libc = ctypes.CDLL(None)
    pr_get_timerslack = 30
    main_slack = libc.prctl(pr_get_timerslack, 0, 0, 0, 0)
    seen = []

    def worker():
        seen.append(set_thread_timer_slack(1))
        seen.append(libc.prctl(pr_get_timerslack, 0, 0, 0, 0))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [True, 1]
    assert libc.prctl(pr_get_timerslack, 0, 0, 0, 0) == main_slack != 1
