"""Keyboard geometry, the roll's lighting per player colour, and playing with keys and mouse."""

from __future__ import annotations

import pytest
from rich.color import Color
from textual.app import App, ComposeResult

from pianorhythm.keymap import KeymapState
from pianorhythm.tui.widgets.keyboard_layout import ALL_WHITES, KeyboardGeometry, fit, is_white, note_name
from pianorhythm.tui.widgets.keyboard_roll import KeyboardRoll
from pianorhythm.tui.widgets.roll_render import HELD_BAR, SUSTAINED_BAR

RED, GREEN, BLUE = "#ff0000", "#00ff00", "#0000ff"


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class RollApp(App[None]):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.local_notes: list[tuple[int, int]] = []

    def compose(self) -> ComposeResult:
        yield KeyboardRoll(clock=self.clock)

    def on_keyboard_roll_local_note(self, message: KeyboardRoll.LocalNote) -> None:
        self.local_notes.append((message.key, message.velocity))


def cell_styles(roll: KeyboardRoll, y: int) -> list[tuple[str, str | None, str | None]]:
    """(char, fg, bg) per cell of a rendered line."""
    cells: list[tuple[str, str | None, str | None]] = []
    for segment in roll.render_line(y):
        style = segment.style
        fg = style.color.get_truecolor().hex if style and style.color else None
        bg = style.bgcolor.get_truecolor().hex if style and style.bgcolor else None
        cells.extend((ch, fg, bg) for ch in segment.text)
    return cells


def test_geometry_full_keyboard_when_wide():
    assert len(ALL_WHITES) == 52
    wide = fit(160)
    assert (wide.first, wide.last, wide.white_width, wide.key_count) == (21, 108, 3, 88)
    assert fit(104).key_count == 88


def test_geometry_at_80_columns_has_more_than_61_keys_around_middle_c():
    geometry = fit(80)
    assert geometry.width <= 80
    assert geometry.key_count >= 61
    assert geometry.first < 60 < geometry.last


@pytest.mark.parametrize("white_width", [2, 3])
def test_every_key_owns_distinct_top_columns(white_width):
    geometry = KeyboardGeometry(21, 108, white_width)
    seen: set[int] = set()
    for key in geometry.keys:
        cols = geometry.top[key]
        assert cols, note_name(key)
        assert not seen & set(cols)
        seen.update(cols)
        if is_white(key):
            assert geometry.key_at(geometry.bottom[key][0], upper=False) == key
        assert geometry.key_at(cols[0], upper=True) == key
    assert seen == set(range(geometry.width))


def test_geometry_rejects_black_edges():
    with pytest.raises(ValueError):
        KeyboardGeometry(22, 108, 2)


async def test_held_keys_light_in_each_players_colour_and_share_a_key():
    clock = FakeClock()
    app = RollApp(clock)
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.set_colors({1: RED, 2: GREEN, 3: BLUE})
        roll.note_on(1, 60, 100)
        roll.note_on(2, 60, 100)
        roll.note_on(3, 64, 100)
        await pilot.pause()
        geometry = roll.geometry
        pad = (80 - geometry.width) // 2
        bottom = 11  # the white-key row
        c_cells = [cell_styles(roll, bottom)[pad + c][2] for c in geometry.bottom[60]]
        assert set(c_cells) == {"#ff0000", "#00ff00"}  # both players show on middle C
        e_cells = [cell_styles(roll, bottom)[pad + c][2] for c in geometry.bottom[64]]
        assert set(e_cells) == {"#0000ff"}
        d_cells = [cell_styles(roll, bottom)[pad + c][2] for c in geometry.bottom[62]]
        assert "#0000ff" not in d_cells and "#ff0000" not in d_cells
        # The roll's newest row (just above the keys) shows the bars.
        row = cell_styles(roll, 8)
        assert row[pad + geometry.top[64][0]] == (HELD_BAR, "#0000ff", row[pad + geometry.top[64][0]][2])


async def test_a_lit_c_key_keeps_its_octave_label():
    clock = FakeClock()
    app = RollApp(clock)
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.set_colors({1: "#ffff00", 2: BLUE})
        roll.note_on(1, 60, 100)  # held by a light colour
        roll.pedal(2, True)
        roll.note_on(2, 48, 100)
        roll.note_off(2, 48)  # sustained by the pedal
        roll.advance()
        await pilot.pause()
        geometry = roll.geometry
        pad = (80 - geometry.width) // 2
        bottom = cell_styles(roll, 11)
        assert bottom[pad + geometry.bottom[60][0]] == ("4", "#000000", "#ffff00")
        assert bottom[pad + geometry.bottom[48][0]][:2] == ("3", "#0000ff")
        assert bottom[pad + geometry.bottom[72][0]][0] == "5"  # at rest, as before


async def test_sustained_notes_look_different_and_bars_scroll_up():
    clock = FakeClock()
    app = RollApp(clock)
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.set_colors({1: RED})
        roll.pedal(1, True)
        roll.note_on(1, 60, 100)
        clock.t += 0.35
        roll.note_off(1, 60)
        clock.t += 0.35
        roll.advance()
        await pilot.pause()
        geometry = roll.geometry
        col = (80 - geometry.width) // 2 + geometry.top[60][0]
        column = [cell_styles(roll, y)[col][0] for y in range(9)]
        # Oldest at the top: blank, held for ~4 rows, then sustained down to now.
        assert column[-1] == SUSTAINED_BAR
        assert HELD_BAR in column
        assert column.index(HELD_BAR) < max(i for i, ch in enumerate(column) if ch == SUSTAINED_BAR)
        key_cell = cell_styles(roll, 11)[(80 - geometry.width) // 2 + geometry.bottom[60][1]]
        assert key_cell[0] == SUSTAINED_BAR and key_cell[1] == "#ff0000"
        # Time passes with nothing new: the bars move up one row per slice.
        clock.t += 0.1
        roll.advance()
        await pilot.pause()
        moved = [cell_styles(roll, y)[col][0] for y in range(9)]
        assert moved[:-1] == column[1:]


async def test_player_leaving_releases_their_keys():
    clock = FakeClock()
    app = RollApp(clock)
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.set_colors({1: RED})
        roll.note_on(1, 60, 100)
        roll.release_player(1)
        await pilot.pause()
        pad = (80 - roll.geometry.width) // 2
        bg = [cell_styles(roll, 11)[pad + c][2] for c in roll.geometry.bottom[60]]
        assert "#ff0000" not in bg


async def test_computer_keys_play_fixed_length_notes_when_focused():
    clock = FakeClock()
    app = RollApp(clock)
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.focus()
        roll.keymap = KeymapState(base=48, velocity=96, note_length_s=0.4)
        await pilot.press("z", "q")
        assert app.local_notes == [(48, 96), (60, 96)]
        assert set(roll.model.lit_keys()) == {48, 60}
        await pilot.pause(0.6)
        assert sorted(app.local_notes[2:]) == [(48, 0), (60, 0)]
        assert roll.model.lit_keys() == {}


async def test_key_repeat_extends_the_note_instead_of_restriking():
    app = RollApp(FakeClock())
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.focus()
        roll.keymap = KeymapState(base=48, velocity=96, note_length_s=0.4)
        await pilot.press("z", "z", "z")
        assert app.local_notes == [(48, 96)]


async def test_octave_and_velocity_keys():
    app = RollApp(FakeClock())
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll.focus()
        await pilot.press("right", "up", "z")
        assert roll.keymap.base == 60
        assert app.local_notes[0] == (60, 112)


async def test_mouse_click_and_swipe_play_keys():
    clock = FakeClock()
    app = RollApp(clock)
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        geometry = roll.geometry
        pad = (80 - geometry.width) // 2
        x60 = pad + geometry.bottom[60][0]
        x62 = pad + geometry.bottom[62][0]
        await pilot.mouse_down(roll, offset=(x60, 11))
        assert app.local_notes == [(60, roll.keymap.velocity)]
        assert 60 in roll.model.lit_keys()
        await pilot.hover(roll, offset=(x62, 11))
        await pilot.mouse_up(roll, offset=(x62, 11))
        await pilot.pause()
        assert app.local_notes == [(60, roll.keymap.velocity), (60, 0), (62, roll.keymap.velocity), (62, 0)]
        assert roll.model.lit_keys() == {}


def test_middle_c_color_parses():
    assert Color.parse(RED).get_truecolor().hex == "#ff0000"


async def test_remote_notes_wait_for_the_frame_tick_own_keys_draw_at_once():
    app = RollApp(FakeClock())
    async with app.run_test(size=(80, 12)) as pilot:
        roll = app.query_one(KeyboardRoll)
        roll._start_ticker = lambda: None  # type: ignore[method-assign]  # no tick but the ones below
        if roll._ticker is not None:
            roll._ticker.stop()
        roll.focus()
        roll.keymap = KeymapState(base=48, velocity=96, note_length_s=5.0)
        await pilot.pause()
        frames = roll.frames
        roll.note_on(2, 64, 90)
        await pilot.pause()
        assert roll.frames == frames  # a remote note is drawn by the next tick, not on arrival
        roll.advance()
        await pilot.pause()
        assert roll.frames == frames + 1
        await pilot.press("z")
        assert roll.frames == frames + 2  # your own key is drawn at once
