"""Clock-offset estimator on synthetic timestamps: skewed clocks, jitter, one-sided spikes."""

import random

import pytest

from pianorhythm.clock import ClockEstimator, ClockSample


def exchange(t0: int, theta: int, up: int, down: int, hold: int = 50) -> ClockSample:
    t1 = t0 + theta + up
    t2 = t1 + hold
    return ClockSample(t0, t1, t2, t2 - theta + down)


def test_sample_formulas_match_the_wire_contract():
    s = ClockSample(t0=1_000, t1=6_000, t2=6_100, t3=2_300)
    assert s.offset_us == ((6_000 - 1_000) + (6_100 - 2_300)) / 2
    assert s.rtt_us == (2_300 - 1_000) - (6_100 - 6_000)


def test_symmetric_delays_give_the_exact_offset_of_a_skewed_clock():
    est = ClockEstimator()
    theta = 1_700_000_000_000_000 - 12_345
    estimate = est.add(exchange(0, theta, 3_000, 3_000))
    assert estimate is not None and estimate.offset_us == theta
    assert estimate.rtt_us == 6_000
    assert est.to_server_us(10) == theta + 10
    assert est.to_client_us(theta + 10) == 10


def test_jittered_delays_converge_within_a_millisecond():
    rng = random.Random(7)
    theta = -987_654_321
    est = ClockEstimator()
    for i in range(40):
        est.add(exchange(i * 100_000, theta, rng.randint(10_000, 30_000), rng.randint(10_000, 30_000)))
    assert est.estimate is not None
    assert abs(est.offset_us - theta) < 1_000
    assert 20_000 <= est.estimate.rtt_us <= 60_000
    assert est.estimate.jitter_us > 1_000


@pytest.mark.parametrize("side", ["up", "down"])
def test_one_sided_spikes_are_rejected(side):
    theta = 5_000_000
    est = ClockEstimator()
    for i in range(16):
        est.add(exchange(i * 100_000, theta, 2_000, 2_000))
    for i in range(16, 24):
        spike = 80_000
        up, down = (spike, 2_000) if side == "up" else (2_000, spike)
        est.add(exchange(i * 100_000, theta, up, down))
    assert est.offset_us == theta
    # The plain NTP offset of a spiked sample is 39 ms off; the estimate never moved.
    assert abs(exchange(0, theta, 80_000, 2_000).offset_us - theta) == 39_000


def test_min_rtt_sample_wins_over_many_asymmetric_ones():
    theta = 42_000
    est = ClockEstimator()
    est.add(exchange(0, theta, 500, 500))
    for i in range(1, 30):
        est.add(exchange(i * 1000, theta, 9_000 + i * 10, 1_000))
    assert abs(est.offset_us - theta) <= 500


def test_window_slides_and_follows_a_clock_step():
    est = ClockEstimator(window=8)
    for i in range(8):
        est.add(exchange(i * 1000, 0, 1_000, 1_000))
    assert est.offset_us == 0
    for i in range(8, 16):
        est.add(exchange(i * 1000, 250_000, 1_000, 1_000))
    assert est.offset_us == 250_000


def test_crossing_bounds_fall_back_to_lowest_rtt_samples():
    est = ClockEstimator(window=8)
    est.add(exchange(0, 0, 1_000, 1_000))
    estimate = est.add(exchange(1000, 10_000, 1_000, 1_000))
    assert estimate is not None and estimate.uncertainty_us == 0.0
    assert 0 <= est.offset_us <= 10_000


def test_impossible_samples_are_dropped():
    est = ClockEstimator()
    assert est.add(ClockSample(t0=100, t1=50, t2=60, t3=90)) is None
    assert not est.ready
    assert est.offset_us == 0.0
