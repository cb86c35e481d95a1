"""The app on a real relay server and the real engine: lobby, join, chat, typing, notes, focus rules."""

from __future__ import annotations

from pianorhythm.tui.screens.lobby import LobbyScreen
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.chat import ChatInput, ChatLog
from pianorhythm.tui.widgets.keyboard_roll import KeyboardRoll
from pianorhythm.tui.widgets.players import PlayersList
from pianorhythm.tui.widgets.room_list import RoomList
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.tui.app_helpers import focused, make_app, wait_for


async def test_lobby_join_chat_typing_and_notes(relay_server, relay_clients, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--color", "#ff0000")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        assert isinstance(app.screen, LobbyScreen)
        await wait_for(pilot, lambda: "lobby" in app.lobby.query_one(RoomList).rooms)

        # A room made by someone else shows up live.
        bob = await relay_clients("bob")
        await bob.act(join_room=pb.JoinRoom(name="jam"))
        await bob.recv("room_state")
        await wait_for(pilot, lambda: "jam" in app.lobby.query_one(RoomList).rooms)
        assert app.lobby.query_one(RoomList).rooms["jam"].players == 1

        # Join it by typing its name.
        app.lobby.query_one("#room-name").focus()
        await pilot.press(*"jam", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        room = app.screen
        assert isinstance(room, RoomScreen)
        await wait_for(pilot, lambda: {p.name for p in room.query_one(PlayersList).players} == {"ann", "bob"})
        assert focused(room) is room.query_one(KeyboardRoll)  # the room opens with the keys focused
        await bob.recv("user_joined")

        # bob types, then says something: typing shows, then clears when the message arrives.
        await bob.act(typing_start=pb.TypingStart())
        await wait_for(pilot, lambda: any(p.typing for p in room.query_one(PlayersList).players))
        await bob.act(chat_send=pb.ChatSend(content="[bold]hi\x1b[31m"))
        log = room.query_one(ChatLog)
        await wait_for(pilot, lambda: any(line.author == "bob" for line in log.lines_shown))
        # The server strips the ESC; what is left shows literally, markup included.
        assert [line.text for line in log.lines_shown if line.author == "bob"] == ["[bold]hi[31m"]
        await pilot.pause()
        assert any("bob: [bold]hi[31m" in strip.text for strip in log.lines)
        await wait_for(pilot, lambda: not any(p.typing for p in room.query_one(PlayersList).players))

        # ann: Enter to chat; letters typed there play nothing; Enter sends and gives the keys back.
        bob.take("notes")
        await pilot.press("enter")
        assert focused(room) is room.query_one(ChatInput)
        await pilot.press(*"zxcv")
        ann_id = app.engine.me.id
        typing = await bob.recv("typing", where=lambda msg: msg.typing.user_id == ann_id)
        assert typing.typing.typing
        await pilot.press("enter")
        chat = await bob.recv("chat_message", where=lambda msg: msg.chat_message.user_id == ann_id)
        assert chat.chat_message.content == "zxcv"
        stop = await bob.recv("typing", where=lambda msg: msg.typing.user_id == ann_id)
        assert not stop.typing.typing
        assert bob.take("notes") == []
        assert focused(room) is room.query_one(KeyboardRoll)

        # Keys focused: z plays middle C's octave below, bob hears it.
        await pilot.press("z")
        notes = await bob.recv("notes")
        assert notes.notes.events[0].note.key == 48 and notes.notes.events[0].note.velocity > 0

        # bob plays: the key lights in bob's colour.
        bob_color = (await_color := room.state.color_of(bob.user_id))
        assert await_color
        batch = pb.NoteBatch(
            base_time_us=0, events=[pb.NoteEvent(offset_us=0, note=pb.Note(key=64, velocity=100))]
        )
        await bob.act(note_batch=batch)
        roll = room.query_one(KeyboardRoll)
        await wait_for(pilot, lambda: 64 in roll.model.lit_keys())
        [(player, _)] = roll.model.lit_keys()[64]
        assert player == bob.user_id and roll.player_colors[player] == bob_color

        # bob leaves: his key comes up and a system line says so.
        await bob.close()
        await wait_for(pilot, lambda: 64 not in roll.model.lit_keys())
        await wait_for(pilot, lambda: any("bob" in line.text and line.system for line in log.lines_shown))

        # Ctrl+L goes back to the lobby.
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, LobbyScreen))


async def test_embedded_server_starts_and_stops_with_the_app(tmp_path, config_dir):
    from pianorhythm.server.local import host_or_join

    started = []

    async def starter():
        server = await host_or_join(tmp_path / "embedded.db", 0)
        started.append(server)
        return server

    app = make_app(config_dir, "--name", "solo", starter=starter)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        assert app.engine.room.is_lobby and app.url.startswith("ws://127.0.0.1:")
        assert isinstance(app.screen, LobbyScreen)
        # Whoever runs it can tell a second player where to connect.
        assert app.screen.sub_title == f"hosting {app.url}"
        assert any(app.url in notification.message for notification in app._notifications)

        # A second window on the same machine joins this server instead of opening the database again.
        second = make_app(config_dir, "--name", "duo", starter=starter)
        async with second.run_test(size=(80, 24)) as second_pilot:
            await wait_for(second_pilot, lambda: second.engine is not None and second.engine.room is not None)
            assert second.url == app.url and second.screen.sub_title == app.url
            joined = f"Joined the local server already running in another window: {app.url}"
            assert [n.message for n in second._notifications] == [joined]
    assert len(started) == 2 and app.server is None  # closed on exit


async def test_settings_changed_in_the_ui_are_saved(relay_server, config_dir):
    from pianorhythm.tui import config as cfg

    app = make_app(config_dir, "--connect", relay_server.url, "--name", "flagname")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        app.apply_settings({"latency": "safe", "volume": 0.5, "note_length_s": 0.6})
    saved = cfg.load(config_dir / "config.toml")
    assert (saved.latency, saved.volume, saved.note_length_s) == ("safe", 0.5, 0.6)
    assert saved.name == ""  # a flag is not a setting: it is not written back
    assert saved.last_server == "" or saved.last_server == relay_server.url
