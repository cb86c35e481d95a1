"""The lobby's room list: order, counts, lock, owner, and rows that stay selected across updates."""

from __future__ import annotations

from textual.app import App, ComposeResult

from pianorhythm.tui.messages import RoomView
from pianorhythm.tui.widgets.room_list import LOCK, RoomList, players_text


class ListApp(App[None]):
    def compose(self) -> ComposeResult:
        yield RoomList()


def row_texts(rooms: RoomList) -> list[list[str]]:
    return [[str(cell) for cell in rooms.get_row_at(index)] for index in range(rooms.row_count)]


def test_players_show_the_limit_only_when_there_is_one():
    assert players_text(RoomView("jam", 3, 20, False, "bob")) == "3/20"
    assert players_text(RoomView("lobby", 1, 0, False, "", is_lobby=True)) == "1"


async def test_lobby_first_then_fullest_rooms_with_counts_locks_and_owners():
    app = ListApp()
    async with app.run_test(size=(80, 12)) as pilot:
        rooms = app.query_one(RoomList)
        rooms.set_rooms(
            [
                RoomView("quiet", 1, 10, False, ""),
                RoomView("lobby", 1, 0, False, "", is_lobby=True),
                RoomView("[red]busy", 5, 20, True, "eve"),
            ]
        )
        await pilot.pause()
        assert row_texts(rooms) == [
            ["lobby", "1", "", "–"],
            ["[red]busy", "5/20", LOCK, "eve"],
            ["quiet", "1/10", "", "–"],
        ]
        # The selection follows its room when the list changes under it.
        rooms.move_cursor(row=2)
        rooms.update_rooms([RoomView("new", 9, 50, False, "ann")], removed=["[red]busy"])
        await pilot.pause()
        assert rooms.selected_name == "quiet"
        assert [row[0] for row in row_texts(rooms)] == ["lobby", "new", "quiet"]


def shown_lines(rooms: RoomList) -> list[str]:
    return [rooms.render_line(y).text for y in range(rooms.size.height)]


async def test_a_frame_drawn_before_the_table_idles_shows_the_whole_list():
    """A frame can be drawn between a change and the table's idle: its lines must already fit the new rows
    (the table cached the old widths' lines and a lobby kept showing a cut name with no lock)."""
    app = ListApp()
    async with app.run_test(size=(80, 12)) as pilot:
        rooms = app.query_one(RoomList)
        rooms.set_rooms([RoomView("jam", 1, 20, False, "bob")])
        await pilot.pause()
        rooms.update_rooms([RoomView("secret [red]club", 1, 5, True, "eve")], removed=[])
        shown_lines(rooms)  # the frame drawn before the idle
        await pilot.pause(0.2)
        row = next(line for line in shown_lines(rooms) if "eve" in line)
        assert "secret [red]club" in row and LOCK in row
