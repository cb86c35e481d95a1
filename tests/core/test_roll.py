from hypothesis import given
from hypothesis import strategies as st

from pianorhythm.roll import KeyState, RollModel


def test_note_on_lights_key_for_player_and_off_clears_it():
    roll = RollModel()
    roll.note_on(1, 60, 100, now=0.0)
    assert roll.lit_keys() == {60: [(1, KeyState.HELD)]}
    roll.note_off(1, 60, now=0.5)
    assert roll.lit_keys() == {}
    [bar] = list(roll.bars(0.0, 1.0))
    assert (bar.start, bar.release, bar.end) == (0.0, 0.5, 0.5)


def test_several_players_on_one_key_in_strike_order():
    roll = RollModel()
    roll.note_on(2, 60, 100, now=0.0)
    roll.note_on(1, 60, 100, now=0.1)
    roll.note_on(3, 62, 100, now=0.2)
    assert roll.lit_keys() == {60: [(2, KeyState.HELD), (1, KeyState.HELD)], 62: [(3, KeyState.HELD)]}
    roll.note_off(2, 60, now=0.3)
    assert roll.lit_keys()[60] == [(1, KeyState.HELD)]


def test_release_under_pedal_sustains_until_pedal_up():
    roll = RollModel()
    roll.pedal(1, True, now=0.0)
    roll.note_on(1, 60, 90, now=0.1)
    roll.note_off(1, 60, now=0.2)
    assert roll.lit_keys() == {60: [(1, KeyState.SUSTAINED)]}
    [bar] = list(roll.bars(0.0, 1.0))
    assert bar.state_at(0.15) is KeyState.HELD
    assert bar.state_at(0.25) is KeyState.SUSTAINED
    roll.pedal(1, False, now=0.4)
    assert roll.lit_keys() == {}
    assert bar.end == 0.4
    assert bar.state_at(0.45) is None


def test_held_key_survives_pedal_up():
    roll = RollModel()
    roll.pedal(1, True, now=0.0)
    roll.note_on(1, 60, 90, now=0.1)
    roll.pedal(1, False, now=0.2)
    assert roll.lit_keys() == {60: [(1, KeyState.HELD)]}


def test_restrike_ends_previous_bar():
    roll = RollModel()
    roll.pedal(1, True, now=0.0)
    roll.note_on(1, 60, 90, now=0.1)
    roll.note_off(1, 60, now=0.2)
    roll.note_on(1, 60, 90, now=0.3)
    bars = list(roll.bars(0.0, 1.0))
    assert len(bars) == 2
    assert bars[0].end == 0.3
    assert roll.lit_keys() == {60: [(1, KeyState.HELD)]}


def test_velocity_zero_is_note_off():
    roll = RollModel()
    roll.note_on(1, 60, 90, now=0.0)
    roll.note_on(1, 60, 0, now=0.1)
    assert roll.lit_keys() == {}


def test_player_leaving_releases_everything():
    roll = RollModel()
    roll.pedal(1, True, now=0.0)
    roll.note_on(1, 60, 90, now=0.0)
    roll.note_on(1, 64, 90, now=0.0)
    roll.note_off(1, 64, now=0.1)
    roll.note_on(2, 67, 90, now=0.0)
    roll.release_player(1, now=0.5)
    assert roll.lit_keys() == {67: [(2, KeyState.HELD)]}
    assert all(bar.end == 0.5 for bar in roll.bars(0.0, 1.0) if bar.player == 1)
    # The pedal is gone too: a new note from player 1 ends at its release.
    roll.note_on(1, 60, 90, now=1.0)
    roll.note_off(1, 60, now=1.1)
    assert 60 not in roll.lit_keys()


def test_stray_note_off_is_ignored_and_version_tracks_changes():
    roll = RollModel()
    v0 = roll.version
    roll.note_off(1, 60, now=0.0)
    assert roll.version == v0
    roll.note_on(1, 60, 90, now=0.0)
    assert roll.version > v0


def test_state_in_a_time_slice():
    roll = RollModel()
    roll.pedal(1, True, now=0.0)
    roll.note_on(1, 60, 90, now=1.0)
    roll.note_off(1, 60, now=2.0)
    roll.pedal(1, False, now=3.0)
    [bar] = list(roll.bars(0.0, 10.0))
    assert bar.state_in(0.0, 0.5) is None
    assert bar.state_in(0.9, 1.1) is KeyState.HELD
    assert bar.state_in(1.9, 2.1) is KeyState.HELD
    assert bar.state_in(2.1, 2.2) is KeyState.SUSTAINED
    assert bar.state_in(3.0, 3.1) is None
    assert list(roll.bars(3.0, 4.0)) == []


def test_old_bars_are_pruned_but_sounding_ones_stay():
    roll = RollModel(history_s=10.0)
    roll.note_on(1, 60, 90, now=0.0)
    roll.note_on(1, 62, 90, now=0.0)
    roll.note_off(1, 62, now=1.0)
    roll.prune(now=20.0)
    assert [bar.key for bar in roll.bars(0.0, 100.0)] == [60]
    assert roll.sounding_count() == 1


def test_held_query():
    roll = RollModel()
    roll.pedal(1, True, now=0.0)
    roll.note_on(1, 60, 90, now=0.0)
    roll.note_on(1, 62, 90, now=0.0)
    roll.note_off(1, 62, now=0.1)
    assert roll.held(1) == {60: KeyState.HELD, 62: KeyState.SUSTAINED}
    assert roll.held(9) == {}


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["on", "off", "pedal_down", "pedal_up", "leave"]),
        st.integers(1, 3),  # player
        st.integers(58, 63),  # key
        st.sampled_from([0.0, 0.05, 0.5, 2.0]),  # time step: the clock only moves forward, as the widget's
    ),
    max_size=60,
)


@given(_EVENTS, st.floats(0.0, 40.0), st.floats(0.0, 3.0), st.booleans())
def test_bars_window_matches_a_scan_of_every_bar(events, t0, width, prune):
    """bars(t0, t1) skips most of the history; it must yield what a plain scan finds, in the same order."""
    roll = RollModel(history_s=10.0)
    now = 0.0
    for kind, player, key, step in events:
        now += step
        if kind == "on":
            roll.note_on(player, key, 90, now)
        elif kind == "off":
            roll.note_off(player, key, now)
        elif kind == "leave":
            roll.release_player(player, now)
        else:
            roll.pedal(player, kind == "pedal_down", now)
    if prune:
        roll.prune(now)
    t1 = t0 + width
    every = [bar for bar in roll._bars if bar.overlaps(t0, t1)]
    assert list(roll.bars(t0, t1)) == every
