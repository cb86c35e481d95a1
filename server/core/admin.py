"""Admin commands (ServerCommand, authorised by the server's admin token): each answer says what happened.

A command that did nothing answers ok=false with the reason; only a missing or wrong token, or an unknown
command, is an Error. `help` needs no token: the list is in the README anyway.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Final

from pianorhythm.server.core import validate
from pianorhythm.server.core.actions import (
    AskClose,
    Broadcast,
    ClearChat,
    MemoryReport,
    Persist,
    SaveChat,
)
from pianorhythm.server.core.models import LOBBY, Session
from pianorhythm.server.core.moderation import ModerationOps
from pianorhythm.server.core.rooms import RoomOps
from pianorhythm.server.core.social import SYSTEM_USER_ID, SocialOps, unnumbered
from pianorhythm.server.core.state import CoreState
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger("server.admin")

ADMIN_HELP: Final = {
    "help": "help - this list (needs no token)",
    "stats": "stats - connections, users, rooms and counters, as JSON",
    "memory": "memory - collect garbage and report the memory in use, as JSON",
    "broadcast": "broadcast TEXT - a server notice in every room",
    "clear_chat": "clear_chat [ROOM] - delete a room's chat (default: the room you are in)",
    "close_room": "close_room ROOM - send its players to the lobby; delete the room, its settings and bans",
}

Answer = tuple[bool, str]


class AdminOps:
    def __init__(
        self, state: CoreState, room_ops: RoomOps, moderation: ModerationOps, social: SocialOps
    ) -> None:
        self.state = state
        self.room_ops = room_ops
        self.moderation = moderation
        self.social = social

    def command(self, session: Session, msg: pb.ServerCommand, ref: int, now: int) -> None:
        if msg.name == "help":
            self.answer(session, ref, (True, "\n".join(ADMIN_HELP.values())))
            return
        refusal = self.token_refusal(msg.admin_token)
        if refusal:
            log.warning("admin command %r refused: user=%d session=%d", msg.name, session.user_id, session.id)
            self.state.error(session, ref, pb.ERROR_CODE_FORBIDDEN, refusal)
            return
        if msg.name not in ADMIN_HELP:
            text = f"No admin command {msg.name!r}; the help command lists them."
            self.state.error(session, ref, pb.ERROR_CODE_UNKNOWN_COMMAND, text)
            return
        log.info("admin command %r by user=%d session=%d", msg.name, session.user_id, session.id)
        args = " ".join(msg.args).strip()
        if msg.name == "memory":
            self.state.out.append(MemoryReport(session.user_id, ref))  # the shell collects and answers
            return
        if msg.name == "stats":
            answer = True, json.dumps(self.state.stats(now), sort_keys=True)
        elif msg.name == "broadcast":
            answer = self.announce(args, session, ref, now)
        elif msg.name == "clear_chat":
            answer = self.clear_chat(args, session, now)
        else:
            closing = self.close(args, session, ref, now)
            if closing is None:
                return  # many nodes: answered when the directory has closed it (RelayCore.room_closed)
            answer = closing
        self.answer(session, ref, answer)

    def token_refusal(self, given: str) -> str:
        token = self.state.options.admin_token
        if not token:
            return "Admin commands are off: the server was started without --admin-token."
        if not given:
            return "That needs the server's admin token."
        if not hmac.compare_digest(given.encode(), token.encode()):
            return "Wrong admin token."
        return ""

    def answer(self, session: Session, ref: int, answer: Answer) -> None:
        ok, output = answer
        self.state.to(
            session, pb.ServerMessage(ref=ref, command_result=pb.CommandResult(ok=ok, output=output))
        )

    def announce(self, text: str, session: Session, ref: int, now: int) -> Answer:
        try:
            content = validate.chat_content(
                text, self.state.limits.max_chat_chars, self.state.limits.max_chat_bytes
            )
        except validate.Invalid as exc:
            return False, f"Nothing sent: {exc}"
        # On many nodes also the rooms with no member here: each line is stored and published on its room's
        # channel like any other, and the nodes holding the room send it to their members.
        lines = tuple(
            unnumbered(name, SYSTEM_USER_ID, "", "", content, now) for name in self.state.every_room()
        )
        self.state.out.append(SaveChat(lines, 0, session.user_id, ref))
        return True, f"Sent to {len(lines)} room{'' if len(lines) == 1 else 's'}."

    def clear_chat(self, name: str, session: Session, now: int) -> Answer:
        room = self.state.rooms.get(name) if name else session.room
        if room is None and self.state.clustered and name in self.state.listed:
            # Its members are all on other nodes: each clears its copy and tells its own members (the
            # room's state, as below), on this bare RoomState going out as chat.
            cleared = pb.ServerMessage(room_state=pb.RoomState(name=name)).SerializeToString()
            self.state.out.append(Persist(ClearChat(name), (Broadcast(name, cleared, chat=True),)))
            return True, f"Cleared the chat of {name}."
        if room is None:
            if name not in self.state.persisted:
                return False, f"No room named {name}."
            self.state.preloaded_chat.pop(name, None)
            self.state.out.append(Persist(ClearChat(name)))
            return True, f"Cleared the chat of {name} (nobody is in it)."
        room.history.clear()
        # As chat (on many nodes): the other nodes clear their copies of the room's recent chat on it, and
        # tell their own members the room's state as their copy has it (RelayCore.chat_cleared).
        state = [
            Broadcast(room.name, msg.SerializeToString(), chat=True)
            for msg in self.room_ops.state_messages(room, now)
        ]
        self.state.out.append(Persist(ClearChat(room.name), tuple(state)))
        return True, f"Cleared the chat of {room.name}."

    def close(self, name: str, session: Session, ref: int, now: int) -> Answer | None:
        if not name:
            return False, "Usage: close_room ROOM."
        if name == LOBBY:
            return False, "The lobby cannot be closed."
        if self.state.clustered:  # the room may be on other nodes only: the directory knows
            self.state.out.append(AskClose(name, session.user_id, ref))
            return None
        room = self.state.rooms.get(name)
        if room is None and name not in self.state.persisted:
            return closed_answer(name, None)
        count = len(room.members) if room is not None else 0
        self.moderation.close_room(name, now)
        return closed_answer(name, count)


def closed_answer(name: str, count: int | None) -> Answer:
    """What an admin is told of closing `name`: `count` players sent to the lobby (None: no such room)."""
    if count is None:
        return False, f"No room named {name}."
    who = f"{count} player{'' if count == 1 else 's'} sent to the lobby" if count else "nobody was in it"
    return True, f"Closed {name}: {who}; its settings and bans are deleted."
