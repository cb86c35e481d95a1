"""Chat commands typed in the real app, on the real relay and engine: each one's visible effect.

Ann (the app) owns the room; Bob is a wire-level test client in it, so every effect is checked both where
others see it (what the server sends Bob) and where Ann sees it (her players list, chat, config file).
"""

from __future__ import annotations

from typing import Any

from pianorhythm.tui import config as cfg
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.chat import ChatLog
from pianorhythm.tui.widgets.players import PlayersList
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.tui.app_helpers import make_app, wait_for


async def command(pilot: Any, text: str) -> None:
    """Type a line in the chat input and send it (Enter to focus the input, Enter to send)."""
    await pilot.press("enter")
    room = pilot.app.screen
    room.query_one("#chat-input").value = text
    await pilot.press("enter")


def system_lines(room: RoomScreen) -> list[str]:
    return [line.text for line in room.query_one(ChatLog).lines_shown if line.system]


def me(room: RoomScreen) -> Any:
    return next(p for p in room.query_one(PlayersList).players if p.is_self)


async def enter_room_with_bob(app: Any, pilot: Any, relay_clients: Any) -> tuple[RoomScreen, Any]:
    await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
    room = app.screen
    await wait_for(pilot, lambda: room.state.am_owner)
    bob = await relay_clients("bob")
    await bob.act(join_room=pb.JoinRoom(name="cmds"))
    await bob.recv("room_state")
    await wait_for(pilot, lambda: len(room.query_one(PlayersList).players) == 2)
    return room, bob


async def test_profile_commands_change_what_everyone_sees(relay_server, relay_clients, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "cmds")
    async with app.run_test(size=(100, 30)) as pilot:
        room, bob = await enter_room_with_bob(app, pilot, relay_clients)
        ann_id = room.state.me_id

        def update_of_ann(msg: pb.ServerMessage) -> bool:
            return msg.user_updated.user.id == ann_id

        await command(pilot, "/nick anna")
        # Ann's path figures (uplink floor and spread) may reach bob first, in updates of their own:
        # bob.recv fails unless the renamed one comes.
        await bob.recv(
            "user_updated", where=lambda m: update_of_ann(m) and m.user_updated.user.name == "anna"
        )
        await wait_for(pilot, lambda: me(room).name == "anna")

        await command(pilot, "/color #123456")
        await bob.recv(
            "user_updated", where=lambda m: update_of_ann(m) and m.user_updated.user.color == "#123456"
        )
        await wait_for(pilot, lambda: me(room).color == "#123456")

        await command(pilot, "/status away")
        await bob.recv(
            "user_updated", where=lambda m: update_of_ann(m) and m.user_updated.user.status == pb.STATUS_AWAY
        )
        await wait_for(pilot, lambda: me(room).status == "away")

        await command(pilot, "/instrument violin")
        await bob.recv(
            "user_updated", where=lambda m: update_of_ann(m) and m.user_updated.user.instrument == 40
        )
        await wait_for(pilot, lambda: me(room).instrument == 40)
        assert "Instrument: 40 Violin" in system_lines(room)

        await command(pilot, "/latency safe")
        assert app.engine.preset.value == "safe"
        assert "Latency preset: safe" in system_lines(room)

        await command(pilot, "/room")  # a query: describes the room
        await wait_for(pilot, lambda: any(line.startswith("cmds: listed") for line in system_lines(room)))

        await command(pilot, "/status sideways")  # a usage error stays local
        assert "Usage: /status online|away|busy." in system_lines(room)

    saved = cfg.load(config_dir / "config.toml")
    assert (saved.name, saved.color, saved.instrument, saved.latency) == ("anna", "#123456", 40, "safe")


async def test_owner_commands_mute_kick_ban_unban_room_and_crown(relay_server, relay_clients, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "cmds")
    async with app.run_test(size=(100, 30)) as pilot:
        room, bob = await enter_room_with_bob(app, pilot, relay_clients)
        bob_id = bob.user_id

        def bob_view() -> Any:
            return next((p for p in room.query_one(PlayersList).players if p.id == bob_id), None)

        # Mute: Bob's chat is refused; Ann sees it in the list and in the chat.
        await command(pilot, "/mute bob")
        await wait_for(pilot, lambda: bob_view() is not None and bob_view().muted)
        assert "bob was muted" in system_lines(room)
        await bob.act(chat_send=pb.ChatSend(content="can I talk?"))
        assert (await bob.recv("error")).error.code == pb.ERROR_CODE_MUTED
        await command(pilot, "/mute bob off")
        await wait_for(pilot, lambda: not bob_view().muted)

        # Room settings: chat off for everyone but... everyone (the owner too).
        await command(pilot, "/room limit=5 chat=off")
        changed = await bob.recv("room_updated", where=lambda m: m.room_updated.settings.user_limit == 5)
        assert not changed.room_updated.settings.chat_enabled
        await wait_for(
            pilot, lambda: room.state.settings is not None and not room.state.settings.chat_enabled
        )
        await command(pilot, "/room chat=on")
        await wait_for(pilot, lambda: room.state.settings is not None and room.state.settings.chat_enabled)

        # Kick: Bob is back in the lobby, kept out for a short cool-down that /bans shows and /unban lifts.
        await command(pilot, "/kick bob")
        removed = await bob.recv("removed")
        assert removed.removed.reason == pb.REMOVAL_REASON_KICKED
        await wait_for(pilot, lambda: bob_view() is None)
        assert "bob was kicked" in system_lines(room)
        await bob.act(join_room=pb.JoinRoom(name="cmds"))
        assert "kicked" in (await bob.recv("error")).error.message
        await command(pilot, "/bans")
        await wait_for(pilot, lambda: any("bob (kicked, 30 s left)" in line for line in system_lines(room)))
        await command(pilot, "/unban bob")
        await wait_for(pilot, lambda: "No bans in this room." in system_lines(room))
        await bob.act(join_room=pb.JoinRoom(name="cmds"))
        await bob.recv("room_state", where=lambda m: m.room_state.name == "cmds")
        await wait_for(pilot, lambda: bob_view() is not None)

        # Ban: Bob is out and refused; unban by the name /bans lists (or by #id) lets him in again.
        await command(pilot, "/ban bob 10m")
        removed = await bob.recv("removed")
        assert (removed.removed.reason, removed.removed.duration_s) == (pb.REMOVAL_REASON_BANNED, 600)
        await wait_for(pilot, lambda: bob_view() is None)
        await bob.act(join_room=pb.JoinRoom(name="cmds"))
        assert (await bob.recv("error")).error.code == pb.ERROR_CODE_BANNED
        await command(pilot, "/unban carol")
        await wait_for(
            pilot, lambda: any("No ban here matches 'carol'" in line for line in system_lines(room))
        )
        await command(pilot, f"/unban #{bob_id}")
        await wait_for(pilot, lambda: system_lines(room)[-1] == "No bans in this room.")
        await bob.act(join_room=pb.JoinRoom(name="cmds"))
        await bob.recv("room_state", where=lambda m: m.room_state.name == "cmds")
        await wait_for(pilot, lambda: bob_view() is not None)

        # Crown: Bob owns the room now; Ann's owner commands are refused by the server.
        await command(pilot, "/crown bob")
        await bob.recv("room_updated", where=lambda m: m.room_updated.owner_id == bob_id)
        await wait_for(pilot, lambda: room.state.owner_id == bob_id)
        assert "♛ bob now holds the crown" in system_lines(room)
        assert bob_view().owner and not me(room).owner
        await command(pilot, "/kick bob")
        await wait_for(pilot, lambda: any("owner" in line.lower() for line in system_lines(room)[-2:]))
