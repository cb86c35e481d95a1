"""The real app through a drop, a resume and a shutdown, on the real relay: the players panel after a resume,
the one retry key, the server's reasons in the toasts, and what shows as stale while disconnected."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Label

from pianorhythm.tui.app import PianoApp
from pianorhythm.tui.screens.lobby import LobbyScreen
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.chat import ChatInput, ChatLog
from pianorhythm.tui.widgets.players import PlayersList
from pianorhythm.tui.widgets.status import StatusBar
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.proxy import JitterProxy
from tests.fixtures.server import ADMIN_TOKEN, start_test_server
from tests.tui.app_helpers import current_screen, make_app, wait_for


def toasts(app: Any) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


def fast(app: PianoApp, attempts: int = 100) -> PianoApp:
    app.backoff.base_s, app.backoff.max_s, app.backoff.max_attempts = 0.05, 0.2, attempts
    return app


def player_names(screen: RoomScreen) -> set[str]:
    return {p.name for p in screen.query_one(PlayersList).players}


def _figure_of(players: PlayersList, name: str) -> float | None:
    """The rtt shown for `name` in the players panel (None: shown as "–", or not listed yet)."""
    return next((p.rtt_ms for p in players.players if p.name == name), None)


def status_text(app: PianoApp) -> str:
    return str(app.screen.query_one(StatusBar).render())


async def reopen(proxy: JitterProxy) -> JitterProxy:
    """A new path on the same port (the old one was closed)."""
    fresh = JitterProxy("127.0.0.1", proxy.target[1], delay_s=0, jitter_s=0)
    await fresh.start(port=proxy.port)
    return fresh


async def direct_proxy(port: int) -> JitterProxy:
    proxy = JitterProxy("127.0.0.1", port, delay_s=0, jitter_s=0)
    await proxy.start()
    return proxy


async def test_resuming_into_the_same_room_shows_who_is_there_now(relay_server, relay_clients, config_dir):
    proxy = await direct_proxy(relay_server.port)
    bob = await relay_clients("bob")
    await bob.act(join_room=pb.JoinRoom(name="den"))
    await bob.recv("room_state")
    app = fast(make_app(config_dir, "--connect", proxy.url(), "--name", "ann", "--room", "den"))
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
            room = current_screen(app, RoomScreen)
            await wait_for(pilot, lambda: player_names(room) == {"ann", "bob"})
            await bob.act(chat_send=pb.ChatSend(content="before the drop"))
            log = room.query_one(ChatLog)
            await wait_for(pilot, lambda: any(line.text == "before the drop" for line in log.lines_shown))

            await proxy.close()  # ann's path drops
            await wait_for(pilot, lambda: app.connection != "connected")
            await bob.act(leave_room=pb.LeaveRoom())  # meanwhile bob leaves and carol comes
            carol = await relay_clients("carol")
            await carol.act(join_room=pb.JoinRoom(name="den"))
            await carol.recv("room_state")
            proxy = await reopen(proxy)

            await wait_for(pilot, lambda: app.connection == "connected")
            await wait_for(pilot, lambda: player_names(room) == {"ann", "carol"})
            assert app.screen is room  # the same screen: the chat is kept
            assert any(line.text == "before the drop" for line in log.lines_shown)
            assert any("carol" in line.text and line.system for line in log.lines_shown)
    finally:
        await proxy.close()


async def test_ctrl_r_retries_from_the_lobby_input_and_from_the_room_chat(relay_server, config_dir):
    proxy = await direct_proxy(relay_server.port)
    app = fast(make_app(config_dir, "--connect", proxy.url(), "--name", "ann"), attempts=2)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.connection == "connected")
            name_input = app.lobby.query_one("#room-name", Input)
            name_input.focus()
            await proxy.close()
            # Toasts arrive a turn after the state changes: wait for the toast.
            await wait_for(pilot, lambda: any("Ctrl+R" in text for text in toasts(app)))
            assert app.connection == "gave_up" and "Ctrl+R" in status_text(app)
            proxy = await reopen(proxy)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.connection == "connected")
            assert name_input.value == ""  # the key retried; nothing was typed

            await pilot.press(*"den", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
            room = current_screen(app, RoomScreen)
            await pilot.press("enter", "h", "i")
            chat = room.query_one(ChatInput)
            assert chat.value == "hi"
            await proxy.close()
            await wait_for(pilot, lambda: app.connection == "gave_up")
            assert "Ctrl+R" in status_text(app)
            proxy = await reopen(proxy)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.connection == "connected")
            assert chat.value == "hi" and app.screen is room
    finally:
        await proxy.close()


async def test_a_server_shutdown_says_so(tmp_path, config_dir):
    server = await start_test_server(tmp_path / "server.db")
    app = fast(make_app(config_dir, "--connect", server.url, "--name", "ann"), attempts=1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.connection == "connected")
        await server.close()
        await wait_for(pilot, lambda: any("shutting down" in text for text in toasts(app)))
        assert "Connection lost (server shutting down); reconnecting…" in toasts(app)
        await wait_for(pilot, lambda: any("Could not reach" in text for text in toasts(app)))
        [gave_up] = [text for text in toasts(app) if "Could not reach" in text]
        assert "refused" in gave_up and "Ctrl+R" in gave_up and "Error" not in gave_up


async def test_an_admin_closing_the_room_says_so(relay_server, relay_clients, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "jazz")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        admin = await relay_clients("operator")
        command = pb.ServerCommand(name="close_room", args=["jazz"], admin_token=ADMIN_TOKEN)
        await admin.act(server_command=command)
        await wait_for(pilot, lambda: "An admin closed the room jazz." in toasts(app))
        await wait_for(pilot, lambda: isinstance(app.screen, LobbyScreen))
        assert not any("You left" in text for text in toasts(app))


async def test_kick_and_ban_say_by_whom_and_for_how_long(relay_server, relay_clients, config_dir):
    bob = await relay_clients("bob")
    await bob.act(join_room=pb.JoinRoom(name="den"))
    await bob.recv("room_state")
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "den")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        ann = (await bob.recv("user_joined")).user_joined.user.id
        await bob.act(kick_user=pb.KickUser(user_id=ann))
        await wait_for(pilot, lambda: "bob kicked you from den; you may come back in 30 s." in toasts(app))
        await wait_for(pilot, lambda: isinstance(app.screen, LobbyScreen))

        await bob.act(unban_user=pb.UnbanUser(user_id=ann))
        await bob.recv("ban_list")
        app.engine.join_room("den")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        await bob.act(ban_user=pb.BanUser(user_id=ann, duration_s=600))
        await wait_for(pilot, lambda: "bob banned you from den for 10 min." in toasts(app))


async def test_rtt_and_room_list_show_as_stale_while_disconnected(relay_server, relay_clients, config_dir):
    proxy = await direct_proxy(relay_server.port)
    app = fast(make_app(config_dir, "--connect", proxy.url(), "--name", "ann"))
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            title = app.lobby.query_one("#rooms-title", Label)
            await wait_for(pilot, lambda: app.connection == "connected" and "ms" in status_text(app))
            fresh_title = str(title.render())
            assert "as of" not in fresh_title

            await proxy.close()
            await wait_for(pilot, lambda: app.connection == "reconnecting")
            assert "rtt –" in status_text(app)
            assert "as of" in str(title.render()) and "reconnecting" in str(title.render())
            assert app.lobby.query_one("#rooms").has_class("-stale")

            bob = await relay_clients("bob")  # a room that appears while ann is away
            await bob.act(join_room=pb.JoinRoom(name="late"))
            await bob.recv("room_state")
            proxy = await reopen(proxy)
            await wait_for(pilot, lambda: app.connection == "connected")
            await wait_for(pilot, lambda: "late" in app.lobby.query_one("#rooms").rooms)  # type: ignore[attr-defined]
            assert str(title.render()) == fresh_title
            assert not app.lobby.query_one("#rooms").has_class("-stale")
            await wait_for(pilot, lambda: "rtt –" not in status_text(app))

            # In a room too: the status bar's rtt and the figures measured for others go stale with it.
            app.engine.join_room("den")
            await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
            await bob.act(join_room=pb.JoinRoom(name="den"))
            await bob.recv("room_state", where=lambda m: m.room_state.name == "den")
            await bob.act(note_batch=pb.NoteBatch(events=[pb.NoteEvent(note=pb.Note(key=60, velocity=90))]))
            players = app.screen.query_one(PlayersList)
            await wait_for(pilot, lambda: "rtt –" not in status_text(app))
            await wait_for(pilot, lambda: _figure_of(players, "bob") is not None)
            await proxy.close()
            await wait_for(pilot, lambda: app.connection == "reconnecting")
            await pilot.pause(1.2)  # past the room's once-a-second figures update
            assert "rtt –" in status_text(app)
            assert _figure_of(players, "bob") is None
    finally:
        await proxy.close()
