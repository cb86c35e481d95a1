"""Clock sync through the client core: pings on schedule, offset and round trip from pong samples with
asymmetric delays, outgoing notes stamped in server time. Injected time (tests/core/client_harness.py)."""

from typing import Any

import pytest

from pianorhythm.client import model as m
from pianorhythm.events import EventKind, MusicEvent
from tests.core.client_harness import MS, ClientHarness


def connected(**settings: Any) -> ClientHarness:
    h = ClientHarness(**settings)
    h.connect()
    h.take()
    return h


def test_the_welcome_gives_the_offset_until_the_first_pong():
    h = connected()
    assert h.core.link.offset_us == h.server_offset_us  # the Welcome arrived at once
    h.server_offset_us += 40_000  # what a slow Welcome would have left: the pongs correct it
    h.exchange_ping(up_ms=2, down_ms=2)
    assert h.core.link.offset_us == h.server_offset_us


def test_one_sided_delays_only_loosen_their_own_bound():
    h = connected()
    h.exchange_ping(up_ms=1, down_ms=9)  # a slow way back
    h.advance(25)
    h.exchange_ping(up_ms=9, down_ms=1)  # a slow way out
    estimate = h.core.link.clock.estimate
    # Each sample alone is 4 ms off (its midpoint); the intersection of their bounds is exact.
    assert estimate and estimate.offset_us == h.server_offset_us
    assert estimate.uncertainty_us == 1_000
    assert estimate.rtt_us == 10_000 and estimate.min_rtt_us == 10_000


def test_the_round_trip_is_the_median_and_stale_while_disconnected():
    h = connected()
    for up, down in [(3, 3), (10, 2), (4, 4), (2, 2), (20, 1)]:
        h.exchange_ping(up_ms=up, down_ms=down, server_ms=0.5)
        h.advance(25)
    assert h.core.rtt_ms == 8.0  # median of 6, 12, 8, 4, 21 (the server's 0.5 ms is not part of it)
    h.drop()
    assert h.core.rtt_ms is None
    assert h.told(m.ConnectionChanged)[-1].state is m.ConnectionState.RECONNECTING


def test_a_new_link_starts_a_new_estimate():
    h = connected()
    h.exchange_ping(up_ms=1, down_ms=1)
    h.drop()
    h.server_offset_us += 7_000  # another relay process, another clock
    h.connect(resumed=True)
    assert h.core.link.clock.estimate is None
    assert h.core.link.offset_us == h.server_offset_us


def test_pings_come_in_a_burst_then_settle_then_at_the_slow_interval():
    h = connected(
        burst_pings=3, burst_spacing_s=0.01, settle_pings=2, settle_interval_s=0.5, ping_interval_s=5.0
    )
    times = []
    for _ in range(7):
        due = h.core.next_tick_ns
        assert due and due >= h.now  # a ping is always scheduled, never in the past
        h.now = due
        assert len(h.tick()) == 1
        times.append(h.now)
    gaps_ms = [(b - a) / MS for a, b in zip(times, times[1:], strict=False)]
    assert gaps_ms == [10, 10, 500, 500, 5000, 5000]
    h.advance(1000)
    assert h.tick() == []  # nothing early
    h.drop()
    assert h.core.next_tick_ns is None  # no pings for a link that is down


def test_no_ping_before_the_welcome():
    h = ClientHarness()
    h.run(h.core.link_up(h.now))
    assert h.core.next_tick_ns is None and h.tick() == []


@pytest.mark.parametrize("offset_us", [-2_000_000, 0, 123_456_789])
def test_local_notes_go_out_in_one_batch_stamped_with_their_capture_in_server_time(offset_us):
    h = connected()
    h.server_offset_us += offset_us
    h.exchange_ping(up_ms=1, down_ms=1)
    h.take()
    capture = h.now - 3 * MS
    for i, key in enumerate((60, 64, 67)):
        h.run(h.core.local_input(MusicEvent(EventKind.NOTE, key, 90, capture + i * MS), h.now))
    assert h.sent("note_batch") == []  # they wait for the end of the loop turn
    h.tick()
    [batch] = [s.note_batch for s in h.sent("note_batch")]
    assert batch.base_time_us == capture // 1000 + h.server_offset_us
    assert [(e.offset_us, e.note.key) for e in batch.events] == [(0, 60), (1000, 64), (2000, 67)]
    assert [e.events[0].number for e in h.told(m.NotesPlayed)] == [60, 64, 67]  # shown at once, as local
    assert all(e.local and e.user_id == 1 for e in h.told(m.NotesPlayed))
