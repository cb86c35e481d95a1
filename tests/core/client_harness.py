"""Drives ClientCore directly with an injected clock: no event loop, no sockets, no sleeps.

The harness plays the session shell (tui/net/session.py) and the relay: it calls the core's entry points
with `now` (our clock, ns) and keeps every effect, sorted by kind. `server_offset_us` is how far the
relay's clock is ahead of ours; `exchange_ping` answers the last ping with chosen one-way delays.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pianorhythm.client import model as m
from pianorhythm.client.core import ClientCore
from pianorhythm.client.effects import (
    Effect,
    Notify,
    Received,
    Refuse,
    ReleasePlayer,
    SaveToken,
    ScheduleNote,
    Send,
)
from pianorhythm.client.session import SessionCore, SessionSettings
from pianorhythm.playout import DEFAULT_PRESET, LatencyPreset
from pianorhythm.wire import pianorhythm_pb2 as pb

START_NS = 5_000_000_000_000  # our clock (perf_counter_ns) when a test starts
SERVER_OFFSET_US = 1_700_000_000_000_000  # the relay's clock minus ours
MS = 1_000_000  # ns

E = TypeVar("E")


def user(uid: int, name: str, instrument: int = 0) -> pb.User:
    return pb.User(id=uid, name=name, instrument=instrument)


def chat(chat_id: int, text: str = "", uid: int = 2) -> pb.ChatMessage:
    return pb.ChatMessage(id=chat_id, user_id=uid, content=text or f"line {chat_id}")


class ClientHarness:
    def __init__(
        self,
        name: str = "ann",
        room: str | None = None,
        token: str = "",
        preset: LatencyPreset = DEFAULT_PRESET,
        name_is_fallback: bool = False,
        **settings: Any,
    ) -> None:
        self.now = START_NS
        self.server_offset_us = SERVER_OFFSET_US
        link = SessionCore(SessionSettings(name=name, room=room, **settings), token)
        self.core = ClientCore(link, preset, name_is_fallback)
        self.effects: list[Effect] = []

    # ---- time and the link ---------------------------------------------------------------------------

    def advance(self, ms: float) -> None:
        self.now += round(ms * MS)

    def server_us(self) -> int:
        """The relay's clock now."""
        return self.now // 1000 + self.server_offset_us

    def run(self, effects: list[Effect]) -> list[Effect]:
        self.effects += effects
        return effects

    def state(self, state: m.ConnectionState, detail: str = "") -> list[Effect]:
        return self.run(self.core.state_changed(state, detail, self.now))

    def connect(
        self, uid: int = 1, token: str = "tok-1", resumed: bool = False, name: str | None = None
    ) -> pb.Hello:
        """Open a link, take the Hello it says, answer with a Welcome; the shell then reports CONNECTED."""
        self.state(m.ConnectionState.CONNECTING)
        hello = self.run(self.core.link_up(self.now))
        assert len(hello) == 1 and isinstance(hello[0], Send)
        welcome = pb.Welcome(
            user=user(uid, name or self.core.link.settings.name),
            resumed=resumed,
            resume_token=token,
            server_time_us=self.server_us(),
        )
        self.receive(welcome=welcome)
        self.state(m.ConnectionState.CONNECTED)
        return hello[0].message.hello

    def drop(self, detail: str = "the connection dropped") -> None:
        self.run(self.core.link_down(self.now))
        self.state(m.ConnectionState.RECONNECTING, detail)

    def receive(self, ref: int = 0, **event: Any) -> list[Effect]:
        return self.run(self.core.handle(pb.ServerMessage(ref=ref, **event), self.now))

    def enter(self, room: str, *users: pb.User, history: tuple[pb.ChatMessage, ...] = (), **kw: Any) -> None:
        state = pb.RoomState(name=room, users=list(users), chat_history=list(history), **kw)
        self.receive(room_state=state)

    def tick(self) -> list[Effect]:
        return self.run(self.core.tick(self.now))

    def exchange_ping(self, up_ms: float, down_ms: float, server_ms: float = 0.0) -> pb.Ping:
        """Send the next ping (tick) and answer it: `up_ms` to the relay, `down_ms` back."""
        sends = self.of(Send, self.tick())
        pings = [s.message.ping for s in sends if s.message.WhichOneof("action") == "ping"]
        assert len(pings) == 1, "no ping due"
        self.advance(up_ms)
        t1 = self.server_us()
        self.advance(server_ms)
        t2 = self.server_us()
        self.advance(down_ms)
        pong = pb.Pong(client_send_us=pings[0].client_send_us, server_receive_us=t1, server_send_us=t2)
        self.receive(pong=pong)
        return pings[0]

    # ---- what came out -------------------------------------------------------------------------------

    @staticmethod
    def of(kind: type[E], effects: list[Effect]) -> list[E]:
        return [e for e in effects if isinstance(e, kind)]

    def take(self) -> list[Effect]:
        """Every effect since the last take, and forget them."""
        taken, self.effects = self.effects, []
        return taken

    def sent(self, kind: str | None = None) -> list[pb.ClientMessage]:
        """The messages sent (of `kind`, the ClientMessage's oneof name) since the last take."""
        sends = self.of(Send, self.effects)
        return [s.message for s in sends if kind is None or s.message.WhichOneof("action") == kind]

    def told(self, kind: type[E]) -> list[E]:
        """The UI events of `kind` since the last take."""
        return [n.event for n in self.of(Notify, self.effects) if isinstance(n.event, kind)]

    def scheduled(self) -> list[ScheduleNote]:
        return self.of(ScheduleNote, self.effects)

    def released(self) -> list[ReleasePlayer]:
        return self.of(ReleasePlayer, self.effects)

    def saved_tokens(self) -> list[str]:
        return [s.token for s in self.of(SaveToken, self.effects)]

    def refusals(self) -> list[str]:
        return [r.reason for r in self.of(Refuse, self.effects)]

    def received(self) -> list[pb.ServerMessage]:
        return [r.message for r in self.of(Received, self.effects)]
