"""The dispatch thread: due order, per-player order on ties, cancellation (no timing asserted here)."""

import threading
import time

from pianorhythm.events import EventKind, MusicEvent
from tui.net.dispatcher import Dispatcher


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
