"""The user's requests to the relay: room, chat, presence and owner actions. One method per message.

A mixin of ClientCore; each method returns the effects to run: [Send(...)], or [] while there is no
connection (the request is dropped, and the engine's method returns False).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from pianorhythm.client import model as m
from pianorhythm.client.effects import Effect
from pianorhythm.client.session import SessionCore
from pianorhythm.commands import chat_refusal
from pianorhythm.wire import pianorhythm_pb2 as pb

DEFAULT_LIMITS: Final = pb.Limits(max_chat_chars=500, max_chat_bytes=1500)  # until the Welcome says


class Requests:
    link: SessionCore

    def join_room(
        self, name: str, password: str = "", settings: pb.RoomSettingsChange | None = None
    ) -> list[Effect]:
        return self.link.join_room(name, password, settings)

    def leave(self) -> list[Effect]:
        return self.link.leave_room()

    def send_chat(self, text: str) -> list[Effect]:
        return self.link.request(chat_send=pb.ChatSend(content=text))

    def chat_refusal(self, text: str) -> str | None:
        """Why the server would refuse `text` as chat (one sentence), or None: check before send_chat."""
        welcome = self.link.welcome
        limits = welcome.limits if welcome is not None else DEFAULT_LIMITS
        return chat_refusal(text, limits.max_chat_chars, limits.max_chat_bytes)

    def typing_start(self) -> list[Effect]:
        return self.link.request(typing_start=pb.TypingStart())

    def typing_stop(self) -> list[Effect]:
        return self.link.request(typing_stop=pb.TypingStop())

    def set_status(self, status: str) -> list[Effect]:
        value = {v: k for k, v in m.STATUS_NAMES.items()}[status]
        return self.link.request(update_status=pb.UpdateStatus(status=value))

    def set_profile(self, name: str | None = None, color: str | None = None) -> list[Effect]:
        return self.link.request(update_profile=pb.UpdateProfile(name=name, color=color))

    def set_position(self, x: float, y: float, z: float = 0.0) -> list[Effect]:
        return self.link.request(update_position=pb.UpdatePosition(position=pb.Position(x=x, y=y, z=z)))

    def request_history(self, before_id: int = 0, limit: int = 50) -> list[Effect]:
        return self.link.request(chat_history_request=pb.ChatHistoryRequest(before_id=before_id, limit=limit))

    def subscribe_rooms(self, on: bool = True) -> list[Effect]:
        if on:
            return self.link.request(room_list_subscribe=pb.RoomListSubscribe())
        return self.link.request(room_list_unsubscribe=pb.RoomListUnsubscribe())

    def update_room_settings(self, change: pb.RoomSettingsChange) -> list[Effect]:
        return self.link.request(update_room_settings=pb.UpdateRoomSettings(settings=change))

    def give_crown(self, user_id: int) -> list[Effect]:
        return self.link.request(give_ownership=pb.GiveOwnership(user_id=user_id))

    def claim_crown(self) -> list[Effect]:
        return self.link.request(claim_crown=pb.ClaimCrown())

    def kick(self, user_id: int) -> list[Effect]:
        return self.link.request(kick_user=pb.KickUser(user_id=user_id))

    def ban(self, user_id: int, duration_s: int = 0) -> list[Effect]:
        return self.link.request(ban_user=pb.BanUser(user_id=user_id, duration_s=duration_s))

    def unban(self, name: str) -> list[Effect]:
        """Lift a ban by the name /bans shows (the banned user is usually not in the room), or "#<id>"."""
        if name.startswith("#") and name[1:].isdigit():
            return self.link.request(unban_user=pb.UnbanUser(user_id=int(name[1:])))
        return self.link.request(unban_user=pb.UnbanUser(name=name))

    def list_bans(self) -> list[Effect]:
        return self.link.request(list_bans=pb.ListBans())

    def mute(self, user_id: int, duration_s: int = 0, unmute: bool = False) -> list[Effect]:
        return self.link.request(mute_user=pb.MuteUser(user_id=user_id, duration_s=duration_s, unmute=unmute))

    def server_command(self, name: str, args: Iterable[str] = (), admin_token: str = "") -> list[Effect]:
        command = pb.ServerCommand(name=name, args=list(args), admin_token=admin_token)
        return self.link.request(server_command=command)
