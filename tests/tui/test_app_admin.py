"""`/admin` typed in the real app, against a real relay started with an admin token."""

from __future__ import annotations

import logging

from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.server import ADMIN_TOKEN
from tests.tui.app_helpers import make_app, wait_for
from tests.tui.test_app_commands import command, system_lines
from tests.tui.test_app_room_feedback import room_ready


async def test_admin_login_help_and_real_answers(relay_server, relay_clients, config_dir, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "cmds")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: room_ready(app))
        room = app.screen
        assert isinstance(room, RoomScreen)

        await command(pilot, "/admin stats")
        assert "Log in first: /admin login TOKEN (the token the server was started with)." in system_lines(
            room
        )

        await command(pilot, "/admin help")
        await wait_for(
            pilot, lambda: any(line.startswith("close_room ROOM - ") for line in system_lines(room))
        )

        await command(pilot, "/admin login not-it")
        await command(pilot, "/admin stats")
        await wait_for(pilot, lambda: "Wrong admin token." in system_lines(room))

        await command(pilot, f"/admin login {ADMIN_TOKEN}")
        await command(pilot, "/admin close_room nowhere")
        await wait_for(pilot, lambda: "No room named nowhere." in system_lines(room))

        await command(pilot, "/admin stats")
        await wait_for(pilot, lambda: any('"connections": 1' in line for line in system_lines(room)))

        other = await relay_clients("cy")
        await other.act(join_room=pb.JoinRoom(name="doomed"))
        await other.recv("room_state")
        await command(pilot, "/admin close_room doomed")
        closed = "Closed doomed: 1 player sent to the lobby; its settings and bans are deleted."
        await wait_for(pilot, lambda: closed in system_lines(room))
        assert (await other.recv("removed")).removed.reason == pb.REMOVAL_REASON_ROOM_CLOSED

        await command(pilot, "/admin logout")
        await command(pilot, "/admin stats")
        assert system_lines(room)[-1].startswith("Log in first")
    assert not [r for r in caplog.records if ADMIN_TOKEN in r.getMessage()]
