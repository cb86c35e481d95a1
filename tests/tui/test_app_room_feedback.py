"""What the room tells its owner and members: /room changes, the room's state in the header, the crown.

The app is one player, a wire-level client on the same real relay the other, so each test sees one side
in the real TUI: the owner (confirmation) or the member (notice).
"""

from __future__ import annotations

import re
from typing import Any

from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.players import PlayersList
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.tui.app_helpers import make_app, wait_for
from tests.tui.test_app_commands import command, enter_room_with_bob, system_lines


def room_ready(app: Any) -> bool:
    """The room screen is set up: its players list is filled (the keyboard has the focus)."""
    screen = app.screen
    return (
        isinstance(screen, RoomScreen)
        and bool(screen.query(PlayersList))
        and bool(screen.query_one(PlayersList).players)
    )


def said(room: RoomScreen, pattern: str) -> bool:
    return any(re.fullmatch(pattern, line) for line in system_lines(room))


async def test_the_owner_gets_a_confirmation_and_the_header_shows_the_state(
    relay_server, relay_clients, config_dir
):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "cmds")
    async with app.run_test(size=(100, 30)) as pilot:
        room, bob = await enter_room_with_bob(app, pilot, relay_clients)
        assert room.sub_title == "cmds · 2/50"

        await command(pilot, "/room limit=8 private=on password=pw ownerplay=on")
        state = "cmds · 🔒 locked · 2/8 · private · only the owner plays"
        confirmation = (
            f"Room settings saved (locked, limit 8, private, only the owner plays); the room is now: {state}"
        )
        await wait_for(pilot, lambda: confirmation in system_lines(room))
        assert room.sub_title == state
        await bob.recv("room_updated", where=lambda m: m.room_updated.settings.user_limit == 8)

        await command(pilot, "/room password=other")  # nothing others can see changes: still confirmed
        await wait_for(pilot, lambda: f"Room settings saved; the room is now: {state}" in system_lines(room))

        await command(pilot, "/crown")
        await wait_for(pilot, lambda: "You already hold the crown." in system_lines(room))

        await bob.act(leave_room=pb.LeaveRoom())
        await wait_for(
            pilot, lambda: room.sub_title == "cmds · 🔒 locked · 1/8 · private · only the owner plays"
        )


async def test_a_member_hears_of_changes_and_of_the_crown_with_its_time(
    relay_server, relay_clients, config_dir
):
    bob = await relay_clients("bob")
    await bob.act(join_room=pb.JoinRoom(name="jam"))
    await bob.recv("room_state")
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "jam")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: room_ready(app))
        room = app.screen
        assert isinstance(room, RoomScreen) and not room.state.am_owner and len(room.state.users) == 2

        change = pb.RoomSettingsChange(user_limit=8, visible=False, chat_enabled=False)
        await bob.act(ref=3, update_room_settings=pb.UpdateRoomSettings(settings=change))
        await wait_for(
            pilot, lambda: "bob changed the room settings: limit 8, private, chat off" in system_lines(room)
        )
        assert room.sub_title == "jam · 2/8 · private · chat off"

        await bob.close()
        pattern = (
            r"♛ bob left with the crown; it is theirs again if they return within 1[45] s"
            r" \(by \d\d:\d\d:\d\d\), else it passes to you, here longest"
        )
        await wait_for(pilot, lambda: said(room, pattern))
        await command(pilot, "/crown")
        refusal = (
            r"The crown waits 1[345] s more for its owner to come back; then it passes to ann, here longest\."
        )
        await wait_for(pilot, lambda: said(room, refusal))
