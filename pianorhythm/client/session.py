"""The connection-level client state machine: no sockets, no event loop, time passed in (ns, our clock).

The shell (tui/net/session.py) opens a WebSocket, calls `link_up(now)` and writes the Hello it returns; it
feeds every frame to `receive(frame, now)`, calls `tick(now)` at `next_tick_ns` and at the end of a loop
turn with local notes queued, and `link_down(now)` when the connection ends. Each call returns effects
(pianorhythm.client.effects): Send this, SaveToken, Refuse (the Hello was refused for good), and Received
for each complete message meant for the layer above.

What it keeps across links:
- identity: Hello carries the resume token of the last Welcome (or the saved one the shell gave us);
- the room to be in: after a Welcome, the first RoomState that is not it triggers a JoinRoom back;
- chat: the newest chat id shown. Live chat at or below it is a duplicate and dropped; back in the same
  room after a resume, the lines newer than it are fetched with ChatHistoryRequest(after_id), page by page
  (ref CATCHUP_REF);
- the clock: Welcome.server_time_us gives a provisional offset, Ping/Pong samples (a burst, a few settle
  pings, then one every `ping_interval_s`) feed the estimator (pianorhythm.clock), reset per link. Notes
  go through `note_offset_us`, the estimate slewed (a better ping never jumps a note), which each ping
  tells the relay (the relay's uplink floor is against it). The pongs' way back gives our downlink's
  spread and floor (`downlink`, `downlink_floor_us`), part of every remote player's path.
A RoomState or RoomList paged by the server is passed on once, whole (pianorhythm.client.pages).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pianorhythm import __version__
from pianorhythm.client.effects import Effect, Received, Refuse, SaveToken, Send
from pianorhythm.client.pages import Pages
from pianorhythm.clock import (
    BURST_PINGS,
    PING_INTERVAL_S,
    SETTLE_INTERVAL_S,
    SETTLE_PINGS,
    ClockEstimator,
    DelaySpread,
    Slew,
)
from pianorhythm.events import MusicEvent
from pianorhythm.notes import pack_batches
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger(__name__)

CATCHUP_REF: Final = 0xC4A7  # ref of the ChatHistoryRequest sent after a resume
CATCHUP_PAGE: Final = 50
_PAGED: Final = frozenset({"room_state", "room_state_page", "room_list", "room_list_page"})
_FATAL_HELLO_ERRORS: Final = frozenset({pb.ERROR_CODE_INVALID_ARGUMENT, pb.ERROR_CODE_BANNED})


@dataclass(slots=True)
class SessionSettings:
    name: str
    color: str = ""
    room: str | None = None  # joined after Welcome, and again after every reconnect
    password: str = ""
    client_version: str = f"pianorhythm-tui/{__version__}"
    ping_interval_s: float = PING_INTERVAL_S
    burst_pings: int = BURST_PINGS
    burst_spacing_s: float = 0.025
    settle_pings: int = SETTLE_PINGS
    settle_interval_s: float = SETTLE_INTERVAL_S


class SessionCore:
    """See the module docstring."""

    def __init__(self, settings: SessionSettings, token: str = "") -> None:
        self.settings = settings
        self.token = token  # the resume token sent in Hello: the last Welcome's
        self.clock = ClockEstimator()
        self.downlink = DelaySpread()  # our pongs' way back: part of every remote note's path
        self._note_offset = Slew()
        self._told_offset: tuple[int, float] | None = None  # (when, what) the last ping said, estimate ready
        self.welcome: pb.Welcome | None = None
        self.room: pb.RoomState | None = None
        self.last_chat_id = 0
        self.target_room = settings.room
        self.password = settings.password
        self.up = False  # between link_up and link_down: messages can be sent
        self.welcomed = False  # a Welcome came on this link
        self._provisional_offset_us = 0.0
        self._resume_after_id: int | None = None
        self._first_room_state = False
        self._pages = Pages()
        self._ref = 0
        self._pending: list[MusicEvent] = []
        self._pings = 0  # sent on this link
        self._next_ping_ns: int | None = None

    # ---- the link ------------------------------------------------------------------------------------

    def link_up(self, now_ns: int) -> list[Effect]:
        """The transport is open: say Hello."""
        self.up, self.welcomed = True, False
        self._pages = Pages()
        self._pings, self._next_ping_ns = 0, None
        s = self.settings
        hello = pb.Hello(name=s.name, color=s.color, client_version=s.client_version, resume_token=self.token)
        return [Send(pb.ClientMessage(hello=hello))]

    def link_down(self, now_ns: int) -> list[Effect]:
        """The transport closed: nothing more can be sent (queued local notes are dropped)."""
        self.up, self.welcomed = False, False
        self._next_ping_ns = None
        self._pending.clear()
        return []

    @property
    def offset_us(self) -> float:
        """Server time minus our clock, in µs (from Welcome until the first pong, then the estimate)."""
        return self.clock.offset_us if self.clock.ready else self._provisional_offset_us

    def note_offset_us(self, now_ns: int, engage: bool = True) -> float:
        """The offset that stamps our notes and places remote ones: the estimate, followed at SLEW_PPM
        (pianorhythm.clock) from the first note on (`engage`), so a better ping moves no note by more than
        a sliver of its interval. It starts where the last ping told the relay it was."""
        if not self.clock.ready:
            self._note_offset.reset()
            return self._provisional_offset_us
        now_us = now_ns // 1000
        if not self._note_offset.started:
            if not engage:
                return self.clock.offset_us
            told_at_us, told = self._told_offset or (now_us, self.clock.offset_us)
            self._note_offset.start(told_at_us, told)
        return self._note_offset.at(now_us, self.clock.offset_us)

    def downlink_floor_us(self, now_ns: int) -> int | None:
        """How low the downlink part of a remote note's transit can go, as placed by `note_offset_us`: the
        least (pong arrival - relay send) + the offset (pianorhythm.clock derives it); None before a pong."""
        lowest = self.downlink.lowest_us
        return None if lowest is None else round(lowest + self.note_offset_us(now_ns, engage=False))

    def server_now_us(self, now_ns: int) -> int:
        return round(now_ns / 1000 + self.offset_us)

    def to_local_ns(self, server_us: int) -> int:
        return round((server_us - self.offset_us) * 1000)

    @property
    def user_id(self) -> int:
        return self.welcome.user.id if self.welcome else 0

    # ---- sending -------------------------------------------------------------------------------------

    def next_ref(self) -> int:
        self._ref = self._ref % 0xFFFF + 1
        return self._ref

    def send(self, message: pb.ClientMessage) -> list[Effect]:
        """[Send(message)], or [] (dropped) while the link is down."""
        return [Send(message)] if self.up else []

    def request(self, **action: object) -> list[Effect]:
        """One request with a fresh ref, e.g. request(chat_send=pb.ChatSend(content="hi"))."""
        return self.send(pb.ClientMessage(ref=self.next_ref(), **action))  # type: ignore[arg-type]

    def queue_event(self, event: MusicEvent) -> bool:
        """Queue a local event for the next tick (one batch with its neighbours); False while down."""
        if self.up:
            self._pending.append(event)
        return self.up

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def send_events(self, events: Sequence[MusicEvent], now_ns: int) -> list[Effect]:
        """Local events stamped with their capture time in server time, as NoteBatches."""
        out: list[Effect] = []
        for batch in pack_batches(events, self.note_offset_us(now_ns)):
            out += self.send(pb.ClientMessage(note_batch=batch))
        return out

    def join_room(
        self, name: str, password: str = "", settings: pb.RoomSettingsChange | None = None
    ) -> list[Effect]:
        self.target_room, self.password = name, password
        join = pb.JoinRoom(name=name, password=password)
        if settings is not None:
            join.settings.CopyFrom(settings)
        return self.request(join_room=join)

    def leave_room(self) -> list[Effect]:
        self.target_room = None
        return self.request(leave_room=pb.LeaveRoom())

    # ---- time ----------------------------------------------------------------------------------------

    @property
    def next_tick_ns(self) -> int | None:
        """When `tick` has a ping to send (None: no ping planned, e.g. before Welcome)."""
        return self._next_ping_ns

    def tick(self, now_ns: int) -> list[Effect]:
        """Send the queued local notes, and the clock ping if one is due."""
        out: list[Effect] = []
        if self._pending:
            events, self._pending = self._pending, []
            out += self.send_events(events, now_ns)
        due = self._next_ping_ns
        if due is not None and now_ns >= due:
            ping = pb.Ping(client_send_us=now_ns // 1000)
            if self.clock.ready:  # the Welcome's offset is off by its way down, and the relay's floor with it
                stamp_offset = self.note_offset_us(now_ns, engage=False)  # what a note sent now would get
                self._told_offset = (now_ns // 1000, stamp_offset)
                ping.stamp_offset_us = round(stamp_offset)
            out += self.send(pb.ClientMessage(ping=ping))
            self._pings += 1
            self._next_ping_ns = now_ns + round(self._ping_gap_s() * 1e9)
        return out

    def _ping_gap_s(self) -> float:
        s = self.settings
        if self._pings < s.burst_pings:
            return s.burst_spacing_s
        if self._pings < s.burst_pings + s.settle_pings:
            return min(s.settle_interval_s, s.ping_interval_s)
        return s.ping_interval_s

    # ---- receiving -----------------------------------------------------------------------------------

    def receive(self, frame: bytes, now_ns: int) -> list[Effect]:
        try:
            messages = codec.decode_server(frame)
        except codec.ProtocolError as exc:
            log.warning("dropping a bad frame from the server: %s", exc)
            return []
        out: list[Effect] = []
        for message in messages:
            out += self.handle(message, now_ns)
        return out

    def handle(self, message: pb.ServerMessage, now_ns: int) -> list[Effect]:
        kind = message.WhichOneof("event")
        if kind == "pong":
            p = message.pong
            self.clock.add_pong(p.client_send_us, p.server_receive_us, p.server_send_us, now_ns // 1000)
            self.downlink.add(p.server_send_us, now_ns // 1000)
            return []
        if kind in _PAGED:
            whole = self._pages.feed(message)
            if whole is None:
                return []  # more pages follow
            message = whole
            kind = message.WhichOneof("event")
        out: list[Effect] = []
        if kind == "welcome":
            out += self._on_welcome(message.welcome, now_ns)
        elif kind == "error" and not self.welcomed and message.error.code in _FATAL_HELLO_ERRORS:
            return [Refuse(message.error.message or "the server refused to let us in")]
        elif kind == "room_state":
            out += self._on_room_state(message.room_state)
        elif kind == "removed":
            self.target_room = None
        elif kind == "chat_message":
            if message.chat_message.id <= self.last_chat_id:
                return []  # a duplicate of something we already showed
            self.last_chat_id = message.chat_message.id
        elif kind == "chat_history_page" and message.ref == CATCHUP_REF:
            out += self._on_catchup(message.chat_history_page)
        out.append(Received(message, now_ns))
        return out

    def _on_welcome(self, welcome: pb.Welcome, now_ns: int) -> list[Effect]:
        resuming = self.welcome is not None
        self.welcome = welcome
        self.welcomed = True
        self._first_room_state = True
        self.clock.reset()
        self._note_offset.reset()
        self._told_offset = None
        self.downlink.reset()
        self._provisional_offset_us = welcome.server_time_us - now_ns / 1000
        self._resume_after_id = self.last_chat_id if resuming and self.last_chat_id else None
        self._pings, self._next_ping_ns = 0, now_ns
        log.info(
            "welcome: user %d %r%s",
            welcome.user.id,
            welcome.user.name,
            " (resumed)" if welcome.resumed else "",
        )
        if not welcome.resume_token:
            return []
        self.token = welcome.resume_token
        return [SaveToken(welcome.resume_token)]

    def _on_room_state(self, state: pb.RoomState) -> list[Effect]:
        self.room = state
        first, self._first_room_state = self._first_room_state, False
        if first and self.target_room and state.name != self.target_room:
            # Fresh connection (or the server did not restore our room): go (back) to where we were.
            return self.request(join_room=pb.JoinRoom(name=self.target_room, password=self.password))
        out: list[Effect] = []
        if state.chat_history:
            newest = max(m.id for m in state.chat_history)
            after = self._resume_after_id
            if after is not None and state.name == self.target_room:
                self._resume_after_id = None
                if newest > after:
                    out += self._request_catchup(after)
            self.last_chat_id = max(self.last_chat_id, newest)
        return out

    def _request_catchup(self, after_id: int) -> list[Effect]:
        request = pb.ChatHistoryRequest(after_id=after_id, limit=CATCHUP_PAGE)
        return self.send(pb.ClientMessage(ref=CATCHUP_REF, chat_history_request=request))

    def _on_catchup(self, page: pb.ChatHistoryPage) -> list[Effect]:
        if not page.messages:
            return []
        newest = max(m.id for m in page.messages)
        self.last_chat_id = max(self.last_chat_id, newest)
        return self._request_catchup(newest) if page.has_more else []
