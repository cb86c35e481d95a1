"""The lobby: the live room list; join by selecting a room or typing a name (which creates it).

While the connection is down the list is the last one received: its title says from when, and it is dimmed,
until the next list arrives."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label

from pianorhythm.tui.messages import JoinRoomRequest, NewRoom, RoomView
from pianorhythm.tui.screens.dialogs import CreateRoomScreen, PasswordScreen
from pianorhythm.tui.widgets.header import SafeHeader
from pianorhythm.tui.widgets.room_list import RoomList
from pianorhythm.tui.widgets.status import RETRY_KEY, StatusBar

TITLE = "Rooms — Enter joins the selected room"
WAITING = {"connected": "updating…", "connecting": "connecting…", "reconnecting": "reconnecting…"}


class LobbyScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "create_room", "New room"),
        Binding("f2", "app.settings", "Settings"),
        Binding("f1", "app.help", "Help"),
    ]

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with Vertical(id="lobby"):
            yield Label(TITLE, id="rooms-title")
            yield RoomList(id="rooms")
            with Horizontal(id="join-row"):
                yield Input(
                    placeholder="room name — Enter joins or creates it",
                    max_length=64,
                    id="room-name",
                    select_on_focus=False,  # a character typed on the list carries over into it
                )
                yield Button("New room…", id="create")
        yield StatusBar(id="status")
        yield Footer()

    def __init__(self) -> None:
        super().__init__()
        self._rooms: list[RoomView] = []
        self._rooms_at: float | None = None  # when the list shown arrived (time.time)
        self._stale = False  # the connection went down since
        self._connection = "connecting"

    def on_mount(self) -> None:
        room_list = self.query_one(RoomList)
        room_list.set_rooms(self._rooms)
        self._show_freshness()
        room_list.focus()

    def set_rooms(self, rooms: Iterable[RoomView]) -> None:
        """The whole current room list (kept until the screen is mounted if it is not yet)."""
        self._rooms = list(rooms)
        self._rooms_at, self._stale = time.time(), False
        if self.is_mounted:
            self.query_one(RoomList).set_rooms(self._rooms)
            self._show_freshness()

    def set_connection(self, state: str) -> None:
        """The session's state (ConnectionState's value): a drop makes the list shown stale."""
        self._connection = state
        if state != "connected" and self._rooms_at is not None:
            self._stale = True
        if self.is_mounted:
            self._show_freshness()

    def _show_freshness(self) -> None:
        titles, room_lists = self.query("#rooms-title").results(Label), self.query(RoomList)
        title, room_list = next(titles, None), room_lists.first() if room_lists else None
        if title is None or room_list is None:  # mounted, its children not yet: on_mount shows it
            return
        room_list.set_class(self._stale, "-stale")
        if not self._stale or self._rooms_at is None:
            title.update(TITLE)
            return
        at = time.strftime("%H:%M", time.localtime(self._rooms_at))
        waiting = WAITING.get(self._connection, f"not connected ({RETRY_KEY} retries)")
        title.update(f"Rooms as of {at}, {waiting}")

    def _join(self, name: str) -> None:
        room = self.query_one(RoomList).rooms.get(name)
        if room is not None and room.locked:
            self.app.push_screen(PasswordScreen(name), lambda pw: self._join_with(name, pw))
        else:
            self.post_message(JoinRoomRequest(name))

    def _join_with(self, name: str, password: str | None) -> None:
        if password is not None:
            self.post_message(JoinRoomRequest(name, password))

    def on_key(self, event: events.Key) -> None:
        """Typing while the room list has focus starts a room name: it goes to the name input."""
        name_input = self.query_one("#room-name", Input)
        if self.focused is self.query_one(RoomList) and event.is_printable and event.character:
            event.stop()
            name_input.focus()
            name_input.insert_text_at_cursor(event.character)

    def on_room_list_chosen(self, event: RoomList.Chosen) -> None:
        self._join(event.room.name)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        if name:
            event.input.value = ""
            self._join(name)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            event.stop()
            self.action_create_room()

    def action_create_room(self) -> None:
        name = self.query_one("#room-name", Input).value.strip()
        self.app.push_screen(CreateRoomScreen(name), self._created)

    def _created(self, room: NewRoom | None) -> None:
        if room is not None:
            self.post_message(JoinRoomRequest(room.name, room.password, new_room=room))
