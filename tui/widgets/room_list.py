"""The lobby's live room list: name, players, lock, owner. Select a row to join it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from pianorhythm.tui.messages import RoomView
from pianorhythm.tui.widgets.safe_text import plain

LOCK = "🔒"


def players_text(room: RoomView) -> str:
    """ "3/20" for a room with a limit; just "3" for one without (the lobby has none: its limit is 0)."""
    return f"{room.players}/{room.limit}" if room.limit > 0 else str(room.players)


class RoomList(DataTable[Text]):
    """Rooms sorted by players (most first), then name. Keys of rows are room names.

    Column widths are set from the rows on every redraw rather than measured by the table: it measures on
    its own idle, and a frame drawn before that is cached and kept (a lobby showed a name cut and no lock
    until the next change).
    """

    COLUMNS = (("Room", "name"), ("Players", "players"), ("", "locked"), ("Owner", "owner"))

    DEFAULT_CSS = """
    RoomList {
        height: 1fr;
    }
    RoomList.-stale {
        opacity: 60%;
    }
    """

    @dataclass
    class Chosen(Message):
        room: RoomView

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.rooms: dict[str, RoomView] = {}

    def on_mount(self) -> None:
        self._redraw()

    def set_rooms(self, rooms: Iterable[RoomView]) -> None:
        self.rooms = {room.name: room for room in rooms}
        self._redraw()

    def update_rooms(self, upserted: Iterable[RoomView], removed: Iterable[str]) -> None:
        for name in removed:
            self.rooms.pop(name, None)
        for room in upserted:
            self.rooms[room.name] = room
        self._redraw()

    def _redraw(self) -> None:
        selected = self.selected_name
        self.clear(columns=True)
        ordered = sorted(self.rooms.values(), key=lambda r: (not r.is_lobby, -r.players, r.name.lower()))
        rows = [
            (
                plain(room.name, "bold" if room.is_lobby else ""),
                Text(players_text(room), justify="right"),
                Text(LOCK if room.locked else ""),
                plain(room.owner) if room.owner else Text("–", style="dim"),
            )
            for room in ordered
        ]
        for index, (label, key) in enumerate(self.COLUMNS):
            width = max([len(label), *(row[index].cell_len for row in rows)])
            self.add_column(label, key=key, width=width)
        for room, row in zip(ordered, rows, strict=True):
            self.add_row(*row, key=room.name)
        if selected in self.rooms:
            self.move_cursor(row=self.get_row_index(selected))

    @property
    def selected_name(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        name = event.row_key.value
        if name is not None and name in self.rooms:
            self.post_message(self.Chosen(self.rooms[name]))
