"""Carry out a parsed chat command (pianorhythm.commands) against the engine and the room state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from pianorhythm import commands as c
from pianorhythm.gm import GM_PROGRAM_NAMES, program_name
from pianorhythm.tui.screens.room_state import RoomState
from pianorhythm.wire import pianorhythm_pb2 as pb


class EngineActions(Protocol):
    """The part of pianorhythm.tui.engine.Engine the room screen uses."""

    def set_profile(self, name: str | None = None, color: str | None = None) -> bool: ...
    def set_status(self, status: str) -> bool: ...
    def set_instrument(self, program: int) -> bool: ...
    def kick(self, user_id: int) -> bool: ...
    def ban(self, user_id: int, duration_s: int = 0) -> bool: ...
    def unban(self, name: str) -> bool: ...
    def list_bans(self) -> bool: ...
    def mute(self, user_id: int, duration_s: int = 0, unmute: bool = False) -> bool: ...
    def give_crown(self, user_id: int) -> bool: ...
    def claim_crown(self) -> bool: ...
    def update_room_settings(self, change: pb.RoomSettingsChange) -> bool: ...
    def set_latency_preset(self, preset: str) -> None: ...
    def server_command(self, name: str, args: Iterable[str] = (), admin_token: str = "") -> bool: ...

    admin_token: str


def find_instrument(query: str) -> int | None:
    """A GM program from "0".."127" or part of its name ("violin", "grand")."""
    text = query.strip().casefold()
    if text.isdigit():
        number = int(text)
        return number if 0 <= number <= 127 else None
    for i, name in enumerate(GM_PROGRAM_NAMES):
        if name.casefold() == text:
            return i
    for i, name in enumerate(GM_PROGRAM_NAMES):
        if text in name.casefold():
            return i
    return None


def describe_settings(room: RoomState) -> str:
    s = room.settings
    if s is None:
        return "Room settings are not known yet."
    return (
        f"{room.name}: {'listed' if s.visible else 'private'}, "
        f"{'password' if s.locked else 'no password'}, limit {s.user_limit}, "
        f"chat {'on' if s.chat_enabled else 'off'}, {'owner only plays' if s.owner_only_play else 'all play'}"
    )


def run(
    command: c.Command,
    room: RoomState,
    engine: EngineActions | None,
    say: Callable[[str], None],
    save: Callable[[dict[str, object]], None],
) -> str | None:
    """Do `command`. Returns an error sentence for the user, or None. `save` persists settings."""
    if isinstance(command, c.Help):
        if command.topic:
            say(c.HELP.get(command.topic, f"No command /{command.topic}; type /help."))
        else:
            for line in c.HELP.values():
                say(line)
        return None
    if isinstance(command, c.SetLatency):
        if engine is not None:
            engine.set_latency_preset(command.preset)
        save({"latency": command.preset})
        say(f"Latency preset: {command.preset}")
        return None
    if engine is None:
        return "Not connected."
    if isinstance(command, c.Nick):
        engine.set_profile(name=command.name)
        save({"name": command.name})
    elif isinstance(command, c.SetColor):
        engine.set_profile(color=command.color)
        save({"color": command.color})
    elif isinstance(command, c.SetStatus):
        engine.set_status(command.status)
    elif isinstance(command, c.SetInstrument):
        program = find_instrument(command.query)
        if program is None:
            return f"No General MIDI instrument matches {command.query!r}; try a number 0-127."
        engine.set_instrument(program)
        save({"instrument": program})
        say(f"Instrument: {program} {program_name(program)}")
    elif isinstance(command, c.RoomSettingsCommand):
        if command.is_query:
            say(describe_settings(room))
            return None
        change = pb.RoomSettingsChange(
            visible=command.visible,
            password=command.password,
            user_limit=command.user_limit,
            chat_enabled=command.chat_enabled,
            owner_only_play=command.owner_only_play,
        )
        engine.update_room_settings(change)
    elif isinstance(command, c.Admin):
        return _admin(command, engine, say)
    elif isinstance(command, c.Crown) and not command.user:
        engine.claim_crown()
    elif isinstance(command, c.ListBans):
        engine.list_bans()
    elif isinstance(command, c.Unban):
        engine.unban(command.user)
    else:
        return _moderate(command, room, engine)
    return None


def _admin(command: c.Admin, engine: EngineActions, say: Callable[[str], None]) -> str | None:
    """`/admin`: log in or out (the token stays in memory), or send a server admin command."""
    if command.action == "login":
        engine.admin_token = command.args[0]
        say("Admin token kept for this session (never saved); /admin help lists the server's commands.")
    elif command.action == "logout":
        engine.admin_token = ""
        say("Admin token forgotten.")
    elif command.action == "help":
        say("/admin login TOKEN, /admin logout; the server's admin commands (/admin NAME ARGS):")
        engine.server_command("help")
    elif not engine.admin_token:
        return "Log in first: /admin login TOKEN (the token the server was started with)."
    else:
        engine.server_command(command.action, command.args, engine.admin_token)
    return None


def _moderate(command: c.Command, room: RoomState, engine: EngineActions) -> str | None:
    user = getattr(command, "user", "")
    target = room.find_user(user)
    if isinstance(target, str):
        return target
    if isinstance(command, c.Kick):
        engine.kick(target)
    elif isinstance(command, c.Ban):
        engine.ban(target, command.duration_s)
    elif isinstance(command, c.Mute):
        engine.mute(target, command.duration_s, command.unmute)
    elif isinstance(command, c.Crown):
        engine.give_crown(target)
    return None
