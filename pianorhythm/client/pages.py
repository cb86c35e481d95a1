"""Put paged server messages back together: a RoomState or RoomList too large for one frame arrives with
`more_pages` set, followed at once by RoomStatePage / RoomListPage messages (see proto/pianorhythm.proto).

`Pages.feed(message)` returns what to handle: any other message as it is, None while a state or list is
incomplete, and the whole RoomState / RoomList (with the ref of its first message) once the last page is
in. Everything above the session sees complete states only.
"""

from __future__ import annotations

import logging

from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger(__name__)


class Pages:
    """Assembles one connection's paged messages (make a new one per connection)."""

    def __init__(self) -> None:
        self._state: pb.ServerMessage | None = None
        self._users: list[pb.User] = []
        self._chat: list[pb.ChatMessage] = []
        self._list: pb.ServerMessage | None = None
        self._rooms: list[pb.RoomSummary] = []

    def feed(self, message: pb.ServerMessage) -> pb.ServerMessage | None:
        kind = message.WhichOneof("event")
        if kind == "room_state":
            return self._state_start(message)
        if kind == "room_state_page":
            return self._state_page(message.room_state_page)
        if kind == "room_list":
            return self._list_start(message)
        if kind == "room_list_page":
            return self._list_page(message.room_list_page)
        return message

    def _state_start(self, message: pb.ServerMessage) -> pb.ServerMessage | None:
        if self._state is not None:
            log.warning("a room state came before the last one was complete; the incomplete one is dropped")
            self._state = None
        if not message.room_state.more_pages:
            return message
        self._state = message
        self._users = list(message.room_state.users)
        self._chat = list(message.room_state.chat_history)
        return None

    def _state_page(self, page: pb.RoomStatePage) -> pb.ServerMessage | None:
        head = self._state
        if head is None:
            log.warning("dropping a room state page that follows no room state")
            return None
        self._users.extend(page.users)
        self._chat.extend(page.chat_history)
        if page.more_pages:
            return None
        self._state = None
        whole = pb.ServerMessage()
        whole.CopyFrom(head)
        state = whole.room_state
        state.more_pages = False
        del state.users[:]
        del state.chat_history[:]
        state.users.extend(self._users)
        state.chat_history.extend(sorted(self._chat, key=lambda line: line.id))
        self._users, self._chat = [], []
        return whole

    def _list_start(self, message: pb.ServerMessage) -> pb.ServerMessage | None:
        if self._list is not None:
            log.warning("a room list came before the last one was complete; the incomplete one is dropped")
            self._list = None
        if not message.room_list.more_pages:
            return message
        self._list = message
        self._rooms = list(message.room_list.rooms)
        return None

    def _list_page(self, page: pb.RoomListPage) -> pb.ServerMessage | None:
        head = self._list
        if head is None:
            log.warning("dropping a room list page that follows no room list")
            return None
        self._rooms.extend(page.rooms)
        if page.more_pages:
            return None
        self._list = None
        whole = pb.ServerMessage(ref=head.ref, room_list=pb.RoomList(rooms=self._rooms))
        self._rooms = []
        return whole
