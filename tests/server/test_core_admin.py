"""Admin commands (ServerCommand): each one's answer says what happened, and a failure is ok=false."""

from __future__ import annotations

from pianorhythm.server.core.actions import ClearChat
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import Harness


def admin(h: Harness, sid: int, name: str, *args: str, token: str = "secret") -> pb.ServerMessage:
    """Send one admin command with ref 5; its answer (a CommandResult or an Error)."""
    h.clear(sid)
    h.send(sid, ref=5, server_command=pb.ServerCommand(name=name, args=list(args), admin_token=token))
    [answer] = [m for m in h.take(sid) if m.ref == 5]
    return answer


def result(h: Harness, sid: int, name: str, *args: str) -> tuple[bool, str]:
    answer = admin(h, sid, name, *args)
    assert answer.WhichOneof("event") == "command_result", answer
    return answer.command_result.ok, answer.command_result.output


def test_help_lists_every_command_without_the_token() -> None:
    h = Harness()
    a = h.connect("a")
    answer = admin(h, a, "help", token="")
    assert answer.command_result.ok
    lines = answer.command_result.output.splitlines()
    assert [line.split()[0] for line in lines] == [
        "help", "stats", "memory", "broadcast", "clear_chat", "close_room"
    ]  # fmt: skip
    assert "close_room ROOM - " in answer.command_result.output


def test_the_token_is_checked_and_its_absence_explained() -> None:
    h = Harness()
    a = h.connect("a")
    for token, message in (("", "That needs the server's admin token."), ("guess", "Wrong admin token.")):
        error = admin(h, a, "stats", token=token).error
        assert (error.code, error.message) == (pb.ERROR_CODE_FORBIDDEN, message)
    unknown = admin(h, a, "reboot").error
    assert unknown.code == pb.ERROR_CODE_UNKNOWN_COMMAND
    assert unknown.message == "No admin command 'reboot'; the help command lists them."

    off = Harness(admin_token="")
    z = off.connect("z")
    refusal = admin(off, z, "stats", token="anything").error.message
    assert refusal == "Admin commands are off: the server was started without --admin-token."


def test_close_room_answers_what_it_closed_or_why_not() -> None:
    h = Harness()
    a, b, c = h.connect("a"), h.connect("b"), h.connect("c")
    h.send(b, join_room=pb.JoinRoom(name="doomed"))
    h.send(c, join_room=pb.JoinRoom(name="doomed"))
    assert result(h, a, "close_room") == (False, "Usage: close_room ROOM.")
    assert result(h, a, "close_room", "nowhere") == (False, "No room named nowhere.")
    assert result(h, a, "close_room", "lobby") == (False, "The lobby cannot be closed.")
    assert result(h, a, "close_room", "doomed") == (
        True,
        "Closed doomed: 2 players sent to the lobby; its settings and bans are deleted.",
    )
    assert "doomed" not in h.core.state.rooms and "doomed" not in h.core.state.persisted
    assert result(h, a, "close_room", "doomed") == (False, "No room named doomed.")

    h.send(b, join_room=pb.JoinRoom(name="kept"))
    h.send(b, leave_room=pb.LeaveRoom())  # empty: only its stored settings remain
    assert "kept" in h.core.state.persisted and "kept" not in h.core.state.rooms
    assert result(h, a, "close_room", "kept") == (
        True,
        "Closed kept: nobody was in it; its settings and bans are deleted.",
    )


def test_clear_chat_and_broadcast_answer_what_they_did() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    h.send(b, join_room=pb.JoinRoom(name="r"))
    h.send(b, chat_send=pb.ChatSend(content="x"))
    assert result(h, a, "clear_chat", "nowhere") == (False, "No room named nowhere.")
    assert result(h, a, "clear_chat", "r") == (True, "Cleared the chat of r.")
    assert result(h, a, "clear_chat") == (True, "Cleared the chat of lobby.")  # the admin's own room
    h.send(b, leave_room=pb.LeaveRoom())
    h.stored.clear()
    assert result(h, a, "clear_chat", "r") == (True, "Cleared the chat of r (nobody is in it).")
    assert ClearChat("r") in h.stored

    ok, text = result(h, a, "broadcast")
    assert (ok, text) == (False, "Nothing sent: A chat message must be 1-500 characters.")
    assert result(h, a, "broadcast", "maintenance", "soon") == (True, "Sent to 1 room.")


def test_stats_answers_json() -> None:
    h = Harness()
    a = h.connect("a")
    ok, text = result(h, a, "stats")
    assert ok and '"connections": 1' in text
