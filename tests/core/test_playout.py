"""Playout delay: scripted transit sequences -> the delay follows the preset rule; late events counted."""

import random

import pytest

from pianorhythm.playout import (
    CEILING_US,
    FLOOR_US,
    PHRASE_GAP_US,
    SHRINK_STEP_MAX_US,
    SHRINK_STEP_MIN_US,
    WARMUP_EVENTS,
    WARMUP_HEADROOM_US,
    LatencyPreset,
    PlayoutState,
    TransitWindow,
    quantile,
    target_delay_us,
)


def feed(state: PlayoutState, transits, ioi_us=100_000, start=0):
    slots = []
    capture = start
    for transit in transits:
        slots.append((capture, state.schedule(capture, capture + transit)))
        capture += ioi_us
    return slots


def test_quantile_nearest_rank():
    values = list(range(1, 101))
    assert quantile(values, 0.95) == 95
    assert quantile(values, 0.99) == 99
    assert quantile(values, 1.0) == 100
    assert quantile([7], 0.5) == 7


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        (LatencyPreset.LOW, 95_000 + 2_000),
        (LatencyPreset.BALANCED, 99_000 + 5_000),
        (LatencyPreset.SAFE, 100_000 + 20_000),
    ],
)
def test_preset_rules(preset, expected):
    transits = [i * 1_000 for i in range(1, 101)]
    assert target_delay_us(transits, preset) == expected


def test_floor_and_ceiling():
    assert target_delay_us([0] * 100, LatencyPreset.LOW) == FLOOR_US
    assert target_delay_us([900_000] * 100, LatencyPreset.SAFE) == CEILING_US
    assert target_delay_us([], LatencyPreset.BALANCED) == FLOOR_US


def test_window_keeps_the_last_200():
    window = TransitWindow(200)
    for i in range(1000):
        window.add(i)
    assert len(window) == 200
    assert window.sorted == list(range(800, 1000))


@pytest.mark.parametrize("preset", list(LatencyPreset))
def test_delay_follows_the_preset_on_steady_jitter(preset):
    rng = random.Random(3)
    state = PlayoutState(preset)
    # Pauses of a phrase let the warm-up headroom go.
    transits = [rng.randint(1_000, 20_000) for _ in range(400)]
    for i, transit in enumerate(transits):
        capture = i * 100_000 + (i // 16) * PHRASE_GAP_US * 4
        state.schedule(capture, capture + transit)
    recent = sorted(transits[-200:])
    target = target_delay_us(recent, preset)
    assert state.target_us == target
    assert target <= state.delay_us <= target + SHRINK_STEP_MAX_US  # it glides down 1-2 ms per rest


def test_delay_grows_at_once_and_nothing_reorders():
    state = PlayoutState(LatencyPreset.BALANCED)
    slots = feed(state, [1_000] * 50 + [40_000] + [1_000] * 50, ioi_us=10_000)
    assert state.delay_us >= 45_000
    dues = [slot.due_us for _, slot in slots]
    assert dues == sorted(dues)
    assert state.late_count == 0


def test_shrinks_only_across_a_pause_and_by_one_step():
    state = PlayoutState(LatencyPreset.LOW)
    feed(state, [50_000] + [1_000] * 250, ioi_us=50_000)  # no pause: the early spike keeps the delay up
    before = state.delay_us
    assert before > 50_000 > state.target_us  # inside a phrase it does not shrink
    capture = 250 * 50_000 + PHRASE_GAP_US  # a pause of exactly PHRASE_GAP_US after the last capture
    slot = state.schedule(capture, capture + 1_000)
    assert state.delay_us == before - SHRINK_STEP_MAX_US  # far above the target: the larger step
    assert slot.due_us - capture == state.delay_us
    for _ in range(100):
        capture += PHRASE_GAP_US
        state.schedule(capture, capture + 1_000)
    assert state.delay_us == state.target_us == FLOOR_US


def test_warmup_headroom_then_glide_to_the_rule():
    state = PlayoutState(LatencyPreset.BALANCED)
    (_, first), *_ = feed(state, [10_000])
    assert first.due_us == 10_000 + 5_000 + WARMUP_HEADROOM_US
    slots = feed(state, [10_000] * (WARMUP_EVENTS + 30), start=200_000, ioi_us=PHRASE_GAP_US)
    assert state.delay_us == 10_000 + 5_000
    steps = [(b.due_us - a.due_us) - (cb - ca) for (ca, a), (cb, b) in zip(slots, slots[1:], strict=False)]
    assert min(steps) >= -SHRINK_STEP_MAX_US  # no interval shrank by more than one step
    assert -SHRINK_STEP_MIN_US in steps  # and the last bit of the glide used the small step


def test_a_chord_is_never_squashed_or_reordered():
    state = PlayoutState(LatencyPreset.BALANCED)
    rng = random.Random(9)
    dues = []
    capture = 0
    for _ in range(100):
        arrival = capture + rng.randint(1_000, 30_000)
        chord = [state.schedule(capture, arrival) for _ in range(4)]
        assert len({slot.due_us for slot in chord}) == 1  # same capture, same arrival: same due time
        dues += [slot.due_us for slot in chord]
        capture += rng.choice([20_000, 150_000, 400_000])
    assert dues == sorted(dues)


def test_late_events_play_at_once_and_are_counted():
    state = PlayoutState(LatencyPreset.LOW)
    feed(state, [2_000] * 300, ioi_us=300_000)
    delay = state.delay_us
    capture = 10_000_000_000
    slot = state.schedule(capture, capture + 200_000)  # one event 200 ms late: above p95 of the window
    assert slot.late
    assert slot.due_us == capture + 200_000
    assert state.late_count == 1
    assert state.delay_us == delay  # one outlier does not move p95


def test_preset_change_applies_to_later_events():
    state = PlayoutState(LatencyPreset.LOW)
    feed(state, [5_000] * 300, ioi_us=300_000)
    low = state.delay_us
    state.set_preset(LatencyPreset.SAFE)
    feed(state, [5_000], start=10**9)
    assert state.delay_us == 5_000 + 20_000 > low
