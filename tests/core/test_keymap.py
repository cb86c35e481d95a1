from pianorhythm.keymap import (
    DEFAULT_BASE,
    MAX_BASE,
    MIN_BASE,
    KeymapState,
    PlayNote,
    StateChange,
    handle_key,
    key_label_map,
)


def test_bottom_row_plays_the_lower_octave_from_its_c():
    state = KeymapState()
    assert handle_key(state, "z", "z") == PlayNote(DEFAULT_BASE, state.velocity, state.note_length_s)
    assert handle_key(state, "s", "s") == PlayNote(DEFAULT_BASE + 1, state.velocity, state.note_length_s)
    assert handle_key(state, "m", "m") == PlayNote(DEFAULT_BASE + 11, state.velocity, state.note_length_s)


def test_top_row_plays_the_octave_above():
    state = KeymapState(base=60)
    result = handle_key(state, "q", "q")
    assert isinstance(result, PlayNote) and result.key == 72
    result = handle_key(state, "2", "2")
    assert isinstance(result, PlayNote) and result.key == 73
    result = handle_key(state, "right_square_bracket", "]")
    assert isinstance(result, PlayNote) and result.key == 91


def test_two_octaves_are_covered_without_gaps():
    state = KeymapState(base=48)
    played = set()
    for char in "zsxdcvgbhnjm,l.;/q2w3er5t6y7ui9o0p[=]":
        result = handle_key(state, char, char)
        assert isinstance(result, PlayNote)
        played.add(result.key)
    assert set(range(48, 48 + 32)) == played


def test_shifted_letters_are_left_for_app_commands():
    state = KeymapState()
    assert handle_key(state, "R", "R") is None
    assert handle_key(state, "Z", "Z") is None


def test_other_keys_pass_through():
    state = KeymapState()
    assert handle_key(state, "enter", "\r") is None
    assert handle_key(state, "a", "a") is None
    assert handle_key(state, "f1", None) is None


def test_octave_shift_is_clamped():
    state = KeymapState(base=MIN_BASE)
    result = handle_key(state, "left", None)
    assert result == StateChange(KeymapState(base=MIN_BASE))
    up = handle_key(state, "right", None)
    assert isinstance(up, StateChange) and up.state.base == MIN_BASE + 12
    top = handle_key(KeymapState(base=MAX_BASE), "right", None)
    assert isinstance(top, StateChange) and top.state.base == MAX_BASE
    # At the highest octave the highest key is still a valid MIDI key.
    highest = handle_key(KeymapState(base=MAX_BASE), "]", "]")
    assert isinstance(highest, PlayNote) and highest.key <= 127


def test_velocity_steps_and_applies_to_notes():
    state = KeymapState(velocity=96)
    louder = handle_key(state, "up", None)
    assert isinstance(louder, StateChange) and louder.state.velocity == 112
    softer = handle_key(state, "down", None)
    assert isinstance(softer, StateChange) and softer.state.velocity == 80
    note = handle_key(softer.state, "z", "z")
    assert isinstance(note, PlayNote) and note.velocity == 80
    top = handle_key(KeymapState(velocity=127), "up", None)
    assert isinstance(top, StateChange) and top.state.velocity == 127
    bottom = handle_key(KeymapState(velocity=16), "down", None)
    assert isinstance(bottom, StateChange) and bottom.state.velocity == 16


def test_note_length_comes_from_state():
    note = handle_key(KeymapState(note_length_s=0.75), "z", "z")
    assert isinstance(note, PlayNote) and note.length_s == 0.75


def test_octave_label_and_key_labels():
    state = KeymapState(base=48)
    assert state.octave_label == "C3"
    labels = key_label_map(state)
    assert labels[48] == "Z"
    assert labels[61] == "L"  # the lower row wins where the rows overlap
    assert labels[79] == "]"
