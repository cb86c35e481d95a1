"""The engine's requests to the relay, one method per message: each asks the client core
(pianorhythm.client.requests, where the messages are built) and runs its effects. Every method returns
False (and the request is dropped) while there is no connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pianorhythm.client.core import ClientCore
from pianorhythm.client.effects import Effect
from pianorhythm.tui.net.session import ClientSession
from pianorhythm.wire import pianorhythm_pb2 as pb


class Requests:
    core: ClientCore
    session: ClientSession
    # Set by `/admin login`: held in memory for this run only, never saved or logged.
    admin_token: str = ""

    def _run(self, effects: Sequence[Effect]) -> bool:
        return self.session.run(effects)

    def join_room(self, name: str, password: str = "", settings: pb.RoomSettingsChange | None = None) -> bool:
        return self._run(self.core.join_room(name, password, settings))

    def leave(self) -> bool:
        return self._run(self.core.leave())

    def send_chat(self, text: str) -> bool:
        return self._run(self.core.send_chat(text))

    def chat_refusal(self, text: str) -> str | None:
        """Why the server would refuse `text` as chat (one sentence), or None: check before send_chat."""
        return self.core.chat_refusal(text)

    def typing_start(self) -> bool:
        return self._run(self.core.typing_start())

    def typing_stop(self) -> bool:
        return self._run(self.core.typing_stop())

    def set_status(self, status: str) -> bool:
        return self._run(self.core.set_status(status))

    def set_profile(self, name: str | None = None, color: str | None = None) -> bool:
        return self._run(self.core.set_profile(name, color))

    def set_position(self, x: float, y: float, z: float = 0.0) -> bool:
        return self._run(self.core.set_position(x, y, z))

    def request_history(self, before_id: int = 0, limit: int = 50) -> bool:
        return self._run(self.core.request_history(before_id, limit))

    def subscribe_rooms(self, on: bool = True) -> bool:
        return self._run(self.core.subscribe_rooms(on))

    def update_room_settings(self, change: pb.RoomSettingsChange) -> bool:
        return self._run(self.core.update_room_settings(change))

    def give_crown(self, user_id: int) -> bool:
        return self._run(self.core.give_crown(user_id))

    def claim_crown(self) -> bool:
        return self._run(self.core.claim_crown())

    def kick(self, user_id: int) -> bool:
        return self._run(self.core.kick(user_id))

    def ban(self, user_id: int, duration_s: int = 0) -> bool:
        return self._run(self.core.ban(user_id, duration_s))

    def unban(self, name: str) -> bool:
        """Lift a ban by the name /bans shows (the banned user is usually not in the room), or "#<id>"."""
        return self._run(self.core.unban(name))

    def list_bans(self) -> bool:
        return self._run(self.core.list_bans())

    def mute(self, user_id: int, duration_s: int = 0, unmute: bool = False) -> bool:
        return self._run(self.core.mute(user_id, duration_s, unmute))

    def server_command(self, name: str, args: Iterable[str] = (), admin_token: str = "") -> bool:
        return self._run(self.core.server_command(name, args, admin_token))

    def retry(self) -> None:
        self.session.retry()
