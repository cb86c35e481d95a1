"""Playout delay: scripted transit sequences -> the delay follows the preset rule; late events counted."""

import math
import random

import pytest

from pianorhythm.playout import (
    CEILING_US,
    FLOOR_US,
    GROW_STEP_MAX_US,
    HISTORY,
    KEPT_INTERVAL_US,
    LATE_KEPT_US,
    PATH_EVENTS,
    PHRASE_GAP_US,
    PRESET_RULES,
    SHRINK_STEP_MAX_US,
    SHRINK_STEP_MIN_US,
    WARMUP,
    LatencyPreset,
    PlayoutState,
    TransitWindow,
    margin_us,
    quantile,
    spread_us,
    target_delay_us,
    warmup_headroom_us,
)

BALANCED = PRESET_RULES[LatencyPreset.BALANCED]


def feed(state: PlayoutState, transits, ioi_us=100_000, start=0):
    slots = []
    capture = start
    for transit in transits:
        slots.append((capture, state.schedule(capture, capture + transit)))
        capture += ioi_us
    return slots


def phrases(state: PlayoutState, transits, start=0):
    """Events 100 ms apart, a rest after every 16 (the delay may glide down): [(capture, arrival, slot)]."""
    out = []
    capture = start
    for i, transit in enumerate(transits):
        out.append((capture, capture + transit, state.schedule(capture, capture + transit)))
        capture += 100_000 + (PHRASE_GAP_US * 4 if i % 16 == 15 else 0)
    return out


def test_quantile_nearest_rank():
    values = list(range(1, 101))
    assert quantile(values, 0.95) == 95
    assert quantile(values, 0.99) == 99
    assert quantile(values, 1.0) == 100
    assert quantile([7], 0.5) == 7


def test_spread_is_p99_minus_p50():
    assert spread_us([i * 1_000 for i in range(1, 101)]) == 99_000 - 50_000
    assert spread_us([4_000] * 50) == 0
    assert spread_us([]) == 0


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        (LatencyPreset.LOW, 95_000 + 2_450),  # 0.05 x spread (49 ms)
        (LatencyPreset.BALANCED, 99_000 + 4_900),  # 0.1 x spread
        (LatencyPreset.SAFE, 100_000 + 24_500),  # 0.5 x spread
    ],
)
def test_preset_rules_scale_the_margin_with_the_spread(preset, expected):
    transits = [i * 1_000 for i in range(1, 101)]
    assert target_delay_us(transits, preset) == expected


@pytest.mark.parametrize(
    ("preset", "margin"),
    [(LatencyPreset.LOW, 500), (LatencyPreset.BALANCED, 1_000), (LatencyPreset.SAFE, 10_000)],
)
def test_a_narrow_spread_leaves_the_margin_at_its_floor(preset, margin):
    transits = [5_000] * 90 + [5_200] * 10  # spread 0.2 ms
    assert margin_us(transits, PRESET_RULES[preset]) == margin
    assert target_delay_us(transits, preset) == 5_200 + margin


def test_presets_order_low_balanced_safe():
    rng = random.Random(5)
    for spread in (0, 500, 3_000, 10_000, 30_000, 100_000):
        transits = sorted(rng.randint(5_000, 5_000 + spread) for _ in range(HISTORY))
        low, balanced, safe = (target_delay_us(transits, p) for p in LatencyPreset)
        assert low < balanced < safe, spread


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


def test_a_clean_path_gets_a_small_delay():
    rng = random.Random(1)
    state = PlayoutState()
    transits = [1_000 + rng.randint(0, 400) for _ in range(300)]
    phrases(state, transits)
    p99 = quantile(sorted(transits[-HISTORY:]), 0.99)
    assert state.delay_us == state.target_us == max(FLOOR_US, p99 + BALANCED.margin_floor_us)
    assert state.delay_us <= 3_000  # the fixed 5 ms margin gave p99 + 5 ms
    assert state.late_count == 0


def test_a_jittery_path_gets_a_delay_over_the_p99_transit_with_a_spread_share():
    rng = random.Random(2)
    state = PlayoutState()
    transits = [1_500 + rng.randint(0, 30_000) for _ in range(600)]  # ±15 ms around 16.5 ms
    slots = phrases(state, transits)
    window = sorted(transits[-HISTORY:])
    p99, spread = quantile(window, 0.99), spread_us(window)
    assert spread > 10 * BALANCED.margin_floor_us
    assert p99 + round(BALANCED.spread_factor * spread) <= state.delay_us <= 35_000
    on_time = sum(not slot.late for _, _, slot in slots[-HISTORY:])
    assert on_time >= 0.99 * HISTORY


@pytest.mark.parametrize("preset", list(LatencyPreset))
def test_delay_follows_the_preset_on_steady_jitter(preset):
    rng = random.Random(3)
    state = PlayoutState(preset)
    transits = [rng.randint(1_000, 20_000) for _ in range(400)]
    phrases(state, transits)
    target = target_delay_us(sorted(transits[-200:]), preset)
    assert state.target_us == target
    assert target <= state.delay_us <= target + SHRINK_STEP_MAX_US  # it glides down 1-2 ms per rest


def test_a_burst_raises_the_delay_within_a_few_events_and_it_decays_slowly():
    state = PlayoutState()
    clean = phrases(state, [1_200] * 300)
    quiet = state.delay_us
    start = clean[-1][0] + PHRASE_GAP_US * 4
    burst = phrases(state, [30_000, 2_000, 28_000, 31_000, 5_000, 30_000, 29_000, 1_500], start=start)
    assert [slot.late for _, _, slot in burst[:4]] == [True, False, True, True]
    assert state.delay_us >= 31_000 + BALANCED.margin_floor_us  # three high transits: p99 of the window
    assert all(not slot.late for _, _, slot in burst[4:])  # from then on the burst is covered
    peak = state.delay_us
    after = phrases(state, [1_200] * 190, start=burst[-1][0] + PHRASE_GAP_US * 4)
    assert state.delay_us == peak  # the burst is still in the window: no glide yet
    delays = [slot.due_us - capture for capture, _, slot in after]
    assert all(b >= a for a, b in zip(delays, delays[1:], strict=False))
    after = phrases(state, [1_200] * 300, start=after[-1][0] + PHRASE_GAP_US * 4)
    delays = [slot.due_us - capture for capture, _, slot in after]
    steps = [a - b for a, b in zip(delays, delays[1:], strict=False)]
    assert max(steps) <= SHRINK_STEP_MAX_US  # gliding down, one rest at a time
    assert state.delay_us == quiet


def test_delay_grows_at_once_and_nothing_reorders():
    state = PlayoutState(LatencyPreset.BALANCED)
    slots = feed(state, [1_000] * 50 + [40_000] + [1_000] * 50, ioi_us=10_000)
    assert state.delay_us >= 40_000
    dues = [slot.due_us for _, slot in slots]
    assert dues == sorted(dues)


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


def test_warmup_headroom_follows_the_reach_above_the_median_then_glides_to_the_rule():
    assert warmup_headroom_us([10_000]) == WARMUP.floor_us
    assert warmup_headroom_us([2_000, 5_000, 40_000]) == round(WARMUP.spread_factor * 35_000)
    assert warmup_headroom_us([-38_000, 1_000, 2_000]) == WARMUP.floor_us  # a low outlier is no risk
    assert warmup_headroom_us([10_000] * WARMUP.events) == 0

    state = PlayoutState(LatencyPreset.BALANCED)
    (_, first), *_ = feed(state, [10_000])
    assert first.due_us == 10_000 + BALANCED.margin_floor_us + WARMUP.floor_us
    slots = feed(state, [10_000] * (WARMUP.events + 30), start=200_000, ioi_us=PHRASE_GAP_US)
    assert state.delay_us == 10_000 + BALANCED.margin_floor_us
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


@pytest.mark.parametrize("preset", list(LatencyPreset))
def test_no_note_is_ever_dropped_or_squashed(preset):
    """Clean stretches, jitter, bursts and stalls (a TCP stream: order kept): every event gets a slot no
    earlier than its arrival, and an interval shorter than a rest is never shortened."""
    rng = random.Random(11)
    state = PlayoutState(preset)
    capture, arrival = 0, 0
    events = []
    for i in range(3_000):
        capture += rng.choice([0, 0, 3_000, 40_000, 90_000, 100_000, 250_000, 1_000_000])
        phase = (i // 250) % 4
        transit = [1_000, rng.randint(1_000, 31_000), 1_000 + rng.randint(0, 300), 1_000][phase]
        if phase == 3 and i % 250 == 10:
            transit = 400_000  # a stall: the next events queue up behind it
        arrival = max(arrival, capture + transit)
        events.append((capture, arrival, state.schedule(capture, arrival)))
    assert state.event_count == len(events)
    assert state.late_count == sum(slot.late for _, _, slot in events) > 0
    for (c0, _, s0), (c1, a1, s1) in zip(events, events[1:], strict=False):
        assert s1.due_us >= a1
        assert s1.due_us - s0.due_us >= min(c1 - c0, KEPT_INTERVAL_US)


def test_after_a_late_note_its_release_still_sounds():
    state = PlayoutState(LatencyPreset.LOW)
    feed(state, [2_000] * 300, ioi_us=300_000)
    capture = 10**10
    on = state.schedule(capture, capture + 200_000)  # stalled 200 ms
    off = state.schedule(capture + 30_000, capture + 200_000)  # released 30 ms later, queued behind it
    assert on.late
    assert off.due_us - on.due_us == 30_000


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
    target = 5_000 + PRESET_RULES[LatencyPreset.SAFE].margin_floor_us
    steps = math.ceil((target - low) / GROW_STEP_MAX_US)  # the first of these events steps up too
    slots = feed(state, [5_000] * steps, start=10**9)
    assert state.delay_us == target > low
    last = target - low - (steps - 1) * GROW_STEP_MAX_US
    assert stretches(slots) == [GROW_STEP_MAX_US] * (steps - 2) + [last]


# -- issue 14, item 2: adapt without breaking phrases ------------------------------------------------------


def stretches(slots):
    """How much longer than captured each interval between consecutive events was scheduled."""
    return [(d1.due_us - d0.due_us) - (c1 - c0) for (c0, d0), (c1, d1) in zip(slots, slots[1:], strict=False)]


def test_a_growing_delay_stretches_no_interval_by_more_than_3_ms():
    state = PlayoutState(LatencyPreset.BALANCED)
    steady = feed(state, [2_000] * 50, ioi_us=50_000)
    rise = GROW_STEP_MAX_US  # 1.5 ms: the 3 ms less a synth block and room for the slew and rounding
    ramp = feed(state, [2_000 + rise * i for i in range(1, 30)], ioi_us=50_000, start=steady[-1][0] + 50_000)
    assert max(stretches(steady[-1:] + ramp)) == GROW_STEP_MAX_US < 3_000  # the transit rose a step per note
    assert state.late_count == 0  # and a step per note kept up with it
    assert state.delay_us >= 2_000 + rise * 29


def test_a_note_that_would_be_late_takes_the_whole_step_at_once():
    state = PlayoutState(LatencyPreset.BALANCED)
    steady = feed(state, [2_000] * 50, ioi_us=50_000)
    before = state.delay_us
    jump = feed(state, [30_000, 2_000, 2_000], ioi_us=50_000, start=steady[-1][0] + 50_000)
    assert [slot.late for _, slot in jump] == [False, False, False]
    assert stretches(steady[-1:] + jump)[0] == state.delay_us - before > GROW_STEP_MAX_US
    assert stretches(jump) == [0, 0]  # its neighbours need no more


def test_late_notes_are_counted_per_player():
    bob, cat = PlayoutState(), PlayoutState()
    feed(bob, [2_000] * 250 + [200_000, 2_000])
    feed(cat, [2_000] * 252)
    assert (bob.late_count, cat.late_count) == (1, 0)


def test_the_known_path_sizes_the_delay_until_the_window_knows_it():
    state = PlayoutState(LatencyPreset.BALANCED)
    state.path_spread_us = 50_000
    feed(state, [10_000] * (PATH_EVENTS - 1))
    assert state.target_us == 10_000 + 50_000 + 5_000  # lowest + spread + the balanced 0.1 x spread
    feed(state, [10_000], start=10**9)
    assert state.target_us == 10_000 + BALANCED.margin_floor_us  # the window's own rule from now on


def test_the_paths_floor_sizes_the_first_note_whatever_its_own_transit():
    """Issue 14, session 5: the floor from the clocks, not the first transit, is where the path starts."""
    delays = []
    for first_transit in (12_000, 40_000, 60_000):
        state = PlayoutState(LatencyPreset.BALANCED)
        state.path_spread_us, state.path_floor_us = 50_000, 10_000
        state.schedule(10**9, 10**9 + first_transit)
        delays.append(state.delay_us)
    assert delays == [10_000 + 50_000 + 5_000] * 3  # was transit + 55 ms: 67, 95 and 115 ms


@pytest.mark.parametrize(
    ("preset", "expected_us"),
    [
        (LatencyPreset.LOW, 10_000 + 40_000 + 2_500),  # 0.8 x spread, margin 0.05 x spread
        (LatencyPreset.BALANCED, 10_000 + 50_000 + 5_000),
        (LatencyPreset.SAFE, 10_000 + 62_500 + 25_000),  # 1.25 x spread, margin 0.5 x spread
    ],
)
def test_the_path_target_per_preset(preset: LatencyPreset, expected_us: int) -> None:
    assert target_delay_us([30_000], preset, path_spread_us=50_000, path_floor_us=10_000) == expected_us


def test_a_slightly_late_note_keeps_the_phrase_where_it_put_it_and_glides_back_over_rests():
    """Session 5: snapping back at the next rest squashed that interval by as much as the late one stretched
    (two errors of 9-11 ms from one 11 ms outlier at 20 ± 15 ms)."""
    state = PlayoutState(LatencyPreset.BALANCED)
    steady = feed(state, [10_000] * 300, ioi_us=250_000)
    delay = state.delay_us
    after = feed(
        state,
        [delay + 11_000] + [10_000] * 12,
        ioi_us=250_000,
        start=steady[-1][0] + 250_000,
    )
    assert after[0][1].late and state.late_count == 1
    moves = stretches(steady[-1:] + after)
    assert moves[0] == 11_000  # the late note's own interval: it came 11 ms after its due time
    assert all(-SHRINK_STEP_MAX_US <= m <= 0 for m in moves[1:])  # then back, at most a step a rest
    assert sum(moves[1:]) == -11_000 and state.delay_us == delay


def test_a_stall_snaps_back_at_the_next_rest():
    state = PlayoutState(LatencyPreset.BALANCED)
    steady = feed(state, [10_000] * 300, ioi_us=250_000)
    delay = state.delay_us
    stall = LATE_KEPT_US + 50_000
    after = feed(state, [delay + stall, 10_000], ioi_us=250_000, start=steady[-1][0] + 250_000)
    assert after[0][1].late
    assert stretches(steady[-1:] + after) == [stall, -stall]  # gliding back from 100 ms would take 40 rests
    assert state.delay_us == delay


def test_once_the_window_knows_the_path_its_margin_goes_no_further_than_the_path():
    state = PlayoutState(LatencyPreset.BALANCED)
    state.path_spread_us, state.path_floor_us = 100_000, 10_000
    feed(state, [10_000 + 1_000 * (i % 101) for i in range(PATH_EVENTS + 100)])  # 10-110 ms, evenly
    sorted_transits = state.window.sorted
    reach, margin = quantile(sorted_transits, 0.99), margin_us(sorted_transits, BALANCED)
    assert reach + margin > 110_000 + BALANCED.margin_floor_us  # the window alone would ask for more ...
    assert state.target_us == 110_000 + BALANCED.margin_floor_us  # ... than floor + spread + the margin floor


@pytest.mark.parametrize(
    ("preset", "expected_us"),
    [
        (LatencyPreset.LOW, 60_000 + 1_000),  # p95 + 0.05 x spread would be 62.5 ms
        (LatencyPreset.BALANCED, 60_000 + 3_000),  # p99 + 0.1 x spread would be 65 ms
        (LatencyPreset.SAFE, 60_000 + 10_000),  # max + 0.5 x spread would be 85 ms
    ],
)
def test_once_the_window_knows_the_path_the_target_stays_near_its_largest_transit(preset, expected_us):
    """Session 5, C2: at 150 ± 60 ms the path's top (floor + both spreads) sat 13 ms above the largest
    transit a run saw; the window's own largest says where this run's tail reaches."""
    transits = sorted([10_000] * 100 + [60_000] * 100)  # spread 50 ms, the path's top 110 ms
    rule = PRESET_RULES[preset]
    assert rule.seen_headroom_us == expected_us - 60_000
    assert target_delay_us(transits, preset, path_spread_us=100_000, path_floor_us=10_000) == expected_us
    assert quantile(transits, rule.quantile) + margin_us(transits, rule) > expected_us
    # Before the window knows the path, the path sizes the delay as before.
    early = transits[: PATH_EVENTS - 2] + [60_000]
    path = (
        10_000
        + round(rule.path_share * 100_000)
        + max(rule.margin_floor_us, round(rule.spread_factor * 100_000))
    )
    assert target_delay_us(early, preset, path_spread_us=100_000, path_floor_us=10_000) == path


def test_the_delay_glides_down_to_the_largest_transit_seen_over_rests_and_nothing_is_late():
    state = PlayoutState(LatencyPreset.BALANCED)
    state.path_spread_us, state.path_floor_us = 200_000, 10_000
    rng = random.Random(14)
    # Mostly 10-20 ms, one in ten 100-110 ms: p99 + 0.1 x spread reaches ~9 ms above the largest.
    transits = [
        rng.randrange(100_000, 110_001) if i % 10 == 5 else rng.randrange(10_000, 20_001) for i in range(1200)
    ]
    slots = phrases(state, transits)
    largest = max(transits)
    assert slots[0][2].due_us - slots[0][0] == 10_000 + 200_000 + 20_000  # the first note waits for the path
    moves = stretches([(capture, slot) for capture, _, slot in slots])
    assert min(moves) >= -SHRINK_STEP_MAX_US and max(moves) <= GROW_STEP_MAX_US
    assert state.late_count == 0
    sorted_transits = state.window.sorted
    assert quantile(sorted_transits, 0.99) + margin_us(sorted_transits, BALANCED) > largest + 6_000
    assert largest < state.delay_us <= largest + 3_000  # not ~9 ms above it
