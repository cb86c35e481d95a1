"""The engine's requests to the relay: room, chat, presence and owner actions. One method per message.

A mixin so tui/engine.py stays about moving notes; every method returns False (and drops the request)
while there is no connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from pianorhythm.commands import chat_refusal
from pianorhythm.wire import pianorhythm_pb2 as pb
from tui.net import model as m
from tui.net.session import ClientSession

DEFAULT_LIMITS: Final = pb.Limits(max_chat_chars=500, max_chat_bytes=1500)  # until the Welcome says


class Requests:
    session: ClientSession
    # Set by `/admin login`: held in memory for this run only, never saved or logged.
    admin_token: str = ""

    def _send(self, **action: object) -> bool:
        message = pb.ClientMessage(ref=self.session.next_ref(), **action)  # type: ignore[arg-type]
        return self.session.send(message)

    def join_room(self, name: str, password: str = "", settings: pb.RoomSettingsChange | None = None) -> bool:
        return self.session.join_room(name, password, settings)

    def leave(self) -> bool:
        return self.session.leave_room()

    def send_chat(self, text: str) -> bool:
        return self._send(chat_send=pb.ChatSend(content=text))

    def chat_refusal(self, text: str) -> str | None:
        """Why the server would refuse `text` as chat (one sentence), or None: check before send_chat."""
        welcome = self.session.welcome
        limits = welcome.limits if welcome is not None else DEFAULT_LIMITS
        return chat_refusal(text, limits.max_chat_chars, limits.max_chat_bytes)

    def typing_start(self) -> bool:
        return self._send(typing_start=pb.TypingStart())

    def typing_stop(self) -> bool:
        return self._send(typing_stop=pb.TypingStop())

    def set_status(self, status: str) -> bool:
        value = {v: k for k, v in m.STATUS_NAMES.items()}[status]
        return self._send(update_status=pb.UpdateStatus(status=value))

    def set_profile(self, name: str | None = None, color: str | None = None) -> bool:
        return self._send(update_profile=pb.UpdateProfile(name=name, color=color))

    def set_position(self, x: float, y: float, z: float = 0.0) -> bool:
        return self._send(update_position=pb.UpdatePosition(position=pb.Position(x=x, y=y, z=z)))

    def request_history(self, before_id: int = 0, limit: int = 50) -> bool:
        return self._send(chat_history_request=pb.ChatHistoryRequest(before_id=before_id, limit=limit))

    def subscribe_rooms(self, on: bool = True) -> bool:
        if on:
            return self._send(room_list_subscribe=pb.RoomListSubscribe())
        return self._send(room_list_unsubscribe=pb.RoomListUnsubscribe())

    def update_room_settings(self, change: pb.RoomSettingsChange) -> bool:
        return self._send(update_room_settings=pb.UpdateRoomSettings(settings=change))

    def give_crown(self, user_id: int) -> bool:
        return self._send(give_ownership=pb.GiveOwnership(user_id=user_id))

    def claim_crown(self) -> bool:
        return self._send(claim_crown=pb.ClaimCrown())

    def kick(self, user_id: int) -> bool:
        return self._send(kick_user=pb.KickUser(user_id=user_id))

    def ban(self, user_id: int, duration_s: int = 0) -> bool:
        return self._send(ban_user=pb.BanUser(user_id=user_id, duration_s=duration_s))

    def unban(self, name: str) -> bool:
        """Lift a ban by the name /bans shows (the banned user is usually not in the room), or "#<id>"."""
        if name.startswith("#") and name[1:].isdigit():
            return self._send(unban_user=pb.UnbanUser(user_id=int(name[1:])))
        return self._send(unban_user=pb.UnbanUser(name=name))

    def list_bans(self) -> bool:
        return self._send(list_bans=pb.ListBans())

    def mute(self, user_id: int, duration_s: int = 0, unmute: bool = False) -> bool:
        return self._send(mute_user=pb.MuteUser(user_id=user_id, duration_s=duration_s, unmute=unmute))

    def server_command(self, name: str, args: Iterable[str] = (), admin_token: str = "") -> bool:
        command = pb.ServerCommand(name=name, args=list(args), admin_token=admin_token)
        return self._send(server_command=command)

    def retry(self) -> None:
        self.session.retry()
