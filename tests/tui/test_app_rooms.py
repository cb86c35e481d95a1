"""Rooms in the real app, on the real relay and engine: a locked room's password prompt, creating a room
with settings, and being kicked."""

from __future__ import annotations

from typing import Any

from textual.widgets import Checkbox, Input

from pianorhythm.client import model as m
from pianorhythm.tui.screens.dialogs import CreateRoomScreen, PasswordScreen
from pianorhythm.tui.screens.lobby import LobbyScreen
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.room_list import RoomList
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.tui.app_helpers import current_screen, make_app, wait_for


def toasts(app: Any) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


async def choose_room(pilot: Any, name: str) -> None:
    rooms = pilot.app.lobby.query_one(RoomList)
    await wait_for(pilot, lambda: name in rooms.rooms)
    rooms.focus()
    rooms.move_cursor(row=rooms.get_row_index(name))
    await pilot.press("enter")


async def test_locked_room_asks_for_the_password(relay_server, relay_clients, config_dir):
    bob = await relay_clients("bob")
    settings = pb.RoomSettingsChange(password="s3cret")
    await bob.act(join_room=pb.JoinRoom(name="vault", settings=settings))
    await bob.recv("room_state")

    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        await wait_for(pilot, lambda: "vault" in app.lobby.query_one(RoomList).rooms)
        rooms = app.lobby.query_one(RoomList)
        assert rooms.rooms["vault"].locked
        assert str(rooms.get_row("lobby")[1]) == "1"  # the lobby has no limit: no "1/0"

        # A wrong password: the server's sentence shows and Ann stays in the lobby.
        await choose_room(pilot, "vault")
        assert isinstance(app.screen, PasswordScreen)
        await pilot.press(*"nope", "enter")
        await wait_for(pilot, lambda: any("password is wrong" in text for text in toasts(app)))
        assert isinstance(app.screen, LobbyScreen)

        # The right one: she is in.
        await choose_room(pilot, "vault")
        await pilot.press(*"s3cret", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        assert current_screen(app, RoomScreen).state.name == "vault"

        # Escape in the prompt joins nothing.
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, LobbyScreen))
        await choose_room(pilot, "vault")
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert isinstance(app.screen, LobbyScreen)


async def test_create_room_with_settings(relay_server, relay_clients, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, CreateRoomScreen)
        dialog = app.screen
        dialog.query_one("#name", Input).value = "club"
        dialog.query_one("#private", Checkbox).value = True
        dialog.query_one("#password", Input).value = "pw"
        dialog.query_one("#limit", Input).value = "3"
        dialog.query_one("#chat", Checkbox).value = False
        dialog.query_one("#ownerplay", Checkbox).value = True
        await pilot.click("#ok")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        room = current_screen(app, RoomScreen)
        assert room.state.name == "club" and room.state.am_owner
        settings = room.state.settings
        assert settings is not None and (settings.visible, settings.locked, settings.user_limit) == (
            False,
            True,
            3,
        )
        assert (settings.chat_enabled, settings.owner_only_play) == (False, True)

        # What others get: not listed, a password, no chat, no playing.
        bob = await relay_clients("bob")
        await bob.act(room_list_subscribe=pb.RoomListSubscribe())
        listed = await bob.recv("room_list")
        assert "club" not in {r.name for r in listed.room_list.rooms}
        await bob.act(join_room=pb.JoinRoom(name="club"))
        assert (await bob.recv("error")).error.code == pb.ERROR_CODE_WRONG_PASSWORD
        await bob.act(join_room=pb.JoinRoom(name="club", password="pw"))
        await bob.recv("room_state", where=lambda m: m.room_state.name == "club")
        await bob.act(chat_send=pb.ChatSend(content="hi"))
        assert (await bob.recv("error")).error.code == pb.ERROR_CODE_CHAT_DISABLED
        batch = pb.NoteBatch(events=[pb.NoteEvent(note=pb.Note(key=60, velocity=90))])
        await bob.act(note_batch=batch)
        assert (await bob.recv("error")).error.code == pb.ERROR_CODE_OWNER_ONLY_PLAY

        # The form refuses a bad limit with a sentence instead of sending it.
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, LobbyScreen))
        await pilot.press("ctrl+n")
        app.screen.query_one("#name", Input).value = "big"
        app.screen.query_one("#limit", Input).value = "500"
        await pilot.click("#ok")
        assert isinstance(app.screen, CreateRoomScreen)
        assert "1 to 100" in str(app.screen.query_one("#error").render())


async def test_kicked_player_sees_why_and_is_back_in_the_lobby(relay_server, relay_clients, config_dir):
    bob = await relay_clients("bob")
    await bob.act(join_room=pb.JoinRoom(name="den"))
    await bob.recv("room_state")

    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "den")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        room = app.screen
        joined = await bob.recv("user_joined")
        await bob.act(kick_user=pb.KickUser(user_id=joined.user_joined.user.id))
        await wait_for(pilot, lambda: "bob kicked you from den; you may come back in 30 s." in toasts(app))
        await wait_for(pilot, lambda: isinstance(app.screen, LobbyScreen))
        assert app.room_screen is None and not room.is_attached


async def test_rooms_entered_in_quick_succession(relay_server, config_dir):
    """Screens pushed and popped before they finish mounting (a replaced session resuming, or fast
    switching) must not end the app: the last room entered is the one shown."""
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        lobby = app.engine.room
        settings = m.RoomSettingsInfo(True, False, 10, True, False)
        for i in range(6):
            app.on_engine_event(m.RoomEntered(m.RoomInfo(f"a{i}", False, 0, settings, (), (), 0), False))
            if i % 2:
                await pilot.pause()
            app.on_engine_event(m.RoomEntered(lobby, False))
            app.on_engine_event(m.RoomEntered(m.RoomInfo(f"b{i}", False, 0, settings, (), (), 0), False))
        await pilot.pause(0.3)
        assert isinstance(app.screen, RoomScreen) and app.screen.state.name == "b5"
    assert app.return_code in (None, 0)


async def test_typing_in_the_lobby_starts_a_room_name(relay_server, config_dir):
    """The lobby opens with the room list focused; typing a name there goes to the name input, so a new
    player can type a room and press Enter without finding the input first."""
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        assert isinstance(app.focused, RoomList)
        await pilot.press("j", "a", "m", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        assert app.engine.room.name == "jam"
