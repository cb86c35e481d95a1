"""The client session: one WebSocket to the relay, kept alive across drops. Asyncio, no UI.

It says Hello (with the saved resume token), keeps the clock in sync (a burst of pings, a ping every half
second for a few seconds while the estimate settles, then one every few seconds), rejoins the room it was
in after a reconnect and fetches the chat it missed, sends whatever the client asks (notes go out at once,
coalesced only with events of the same loop turn) and hands every incoming ServerMessage except Pong to
`on_message` with its local receive time. A room state or room list paged by the server (more_pages) is
handed on once, whole, when its last page is in (tui.net.pages).

A link that goes silent (no close, no reset: a dead Wi-Fi, a NAT that forgot us) is noticed by websockets'
keepalive: a ping every `keepalive_interval_s`, the connection failed when no pong comes within
`keepalive_timeout_s`, and closed after at most `close_timeout_s` more: 7.5 s at most with the defaults. The
server's own heartbeat (Welcome.limits.ping_interval_s, 20 s by default) is far too slow for the player.

Connection states: connecting -> connected -> reconnecting -> connected ... ; after `max_attempts` failed
attempts in a row it reports gave_up and waits for `retry()`; `close()` ends it (closed). When the server
closes us with 4001 (our identity connected from somewhere else) it reports replaced and waits for
`retry()` too: reconnecting by itself would take the identity back, and the other client would do the
same, for ever.

Identity: the session resumes with the token of its last Welcome (kept in memory). The token saved in the
config dir is used (and updated) only while this process holds the claim on it (TokenStore.claim, taken in
`start()`, released in `close()`); a second process with the same config dir connects as a fresh identity
and keeps its token in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from pianorhythm import __version__
from pianorhythm.clock import BURST_PINGS, PING_INTERVAL_S, SETTLE_INTERVAL_S, SETTLE_PINGS, ClockEstimator
from pianorhythm.events import MusicEvent
from pianorhythm.notes import pack_batches
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb
from tui.net import reasons
from tui.net.backoff import Backoff
from tui.net.pages import Pages
from tui.net.tls import certificate_failure, client_context
from tui.net.tokens import TokenClaim, TokenStore

log = logging.getLogger(__name__)

MAX_FRAME: Final = codec.frame_bytes(codec.DEFAULT_MAX_PAYLOAD)
CATCHUP_REF: Final = 0xC4A7  # ref of the ChatHistoryRequest sent after a resume
CLOSE_REPLACED: Final = 4001  # the relay: the same identity said Hello on another connection
REPLACED_DETAIL: Final = "your identity connected from another place"
_PAGED: Final = frozenset({"room_state", "room_state_page", "room_list", "room_list_page"})
_FATAL_HELLO_ERRORS: Final = frozenset({pb.ERROR_CODE_INVALID_ARGUMENT, pb.ERROR_CODE_BANNED})


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    GAVE_UP = "gave_up"
    REPLACED = "replaced"  # closed by the server because our identity connected elsewhere; waits for retry()
    CLOSED = "closed"


class HelloRejected(Exception):
    """The server refused our Hello in a way that retrying will not fix."""


class SessionReplaced(Exception):
    """The server closed us with 4001: the same identity connected on another connection."""


@dataclass(slots=True)
class SessionConfig:
    url: str
    name: str
    color: str = ""
    room: str | None = None  # joined after Welcome, and again after every reconnect
    password: str = ""
    tokens: TokenStore | None = None
    client_version: str = f"pianorhythm-tui/{__version__}"
    ping_interval_s: float = PING_INTERVAL_S
    burst_pings: int = BURST_PINGS
    settle_pings: int = SETTLE_PINGS
    settle_interval_s: float = SETTLE_INTERVAL_S
    burst_spacing_s: float = 0.025
    open_timeout_s: float = 10.0
    keepalive_interval_s: float = 2.5
    keepalive_timeout_s: float = 3.5
    close_timeout_s: float = 1.5
    hello_timeout_s: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    insecure: bool = False  # wss://: accept a certificate that cannot be verified (--insecure)


MessageHandler = Callable[[pb.ServerMessage, int], None]
StateHandler = Callable[[ConnectionState, str], None]


def _noop_state(state: ConnectionState, detail: str) -> None:
    return None


class ClientSession:
    """See the module docstring. Create, `await start()`, then `send*`; `await close()` at the end."""

    def __init__(
        self,
        config: SessionConfig,
        on_message: MessageHandler,
        on_state: StateHandler = _noop_state,
        now_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.config = config
        self.clock = ClockEstimator()
        self.state = ConnectionState.CLOSED
        self.welcome: pb.Welcome | None = None
        self.room: pb.RoomState | None = None
        self.last_chat_id = 0
        self.detail = ""
        self.refused = False  # gave up at once, as retrying cannot help (Hello refused, certificate bad)
        self.retry_in_s: float | None = None  # while waiting to reconnect: the delay chosen for this wait
        self.retry_at_ns: int | None = None  # ... and when the next attempt starts (our now_ns clock)
        self._on_message = on_message
        self._on_state = on_state
        self._now_ns = now_ns
        self._target_room = config.room
        self._provisional_offset_us = 0.0
        self._ws: ClientConnection | None = None
        self._outgoing: asyncio.Queue[bytes] | None = None
        self._pending: list[MusicEvent] = []
        self._flush_scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._retry = asyncio.Event()
        self._connected = asyncio.Event()
        self._closing = False
        self._resume_after_id: int | None = None
        self._first_room_state = False
        self._welcomed_here = False
        self._pages = Pages()  # paged room states and lists being put together (one per connection)
        self._ref = 0
        self._token = ""  # the resume token of our last Welcome
        self._claim: TokenClaim | None = None  # held: the saved token is ours to use and update

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            tokens = self.config.tokens
            if tokens is not None and self._claim is None:
                self._claim = tokens.claim(self.config.url)
                if self._claim is not None and not self._token:
                    self._token = tokens.get(self.config.url)
            self._task = asyncio.create_task(self._run(), name="client-session")

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def retry(self) -> None:
        """Try again now, whatever the backoff says (the UI's "retry" after gave_up)."""
        self.config.backoff.reset()
        self._retry.set()

    async def close(self) -> None:
        self._closing = True
        self._retry.set()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._claim is not None:
            self._claim.release()
            self._claim = None
        self._set_state(ConnectionState.CLOSED, "")

    @property
    def owns_saved_token(self) -> bool:
        """True while this process holds the saved identity (False: a fresh one, kept in memory)."""
        return self._claim is not None

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    @property
    def user_id(self) -> int:
        return self.welcome.user.id if self.welcome else 0

    @property
    def offset_us(self) -> float:
        """Server time minus our perf_counter time, in µs (from Welcome until the first pong)."""
        return self.clock.offset_us if self.clock.ready else self._provisional_offset_us

    def server_now_us(self) -> int:
        return round(self._now_ns() / 1000 + self.offset_us)

    def to_local_ns(self, server_us: int) -> int:
        return round((server_us - self.offset_us) * 1000)

    # ---- sending ---------------------------------------------------------------------------------------

    def next_ref(self) -> int:
        self._ref = self._ref % 0xFFFF + 1
        return self._ref

    def send(self, message: pb.ClientMessage) -> bool:
        """Queue one message for the server; False (and dropped) while there is no connection."""
        if self._outgoing is None:
            return False
        self._outgoing.put_nowait(codec.encode(message))
        return True

    def send_events(self, events: Sequence[MusicEvent]) -> int:
        """Send local events now, stamped with their capture time in server time. Returns batches sent."""
        sent = 0
        for batch in pack_batches(events, self.offset_us):
            sent += self.send(pb.ClientMessage(note_batch=batch))
        return sent

    def queue_event(self, event: MusicEvent) -> None:
        """Send a local event at the end of this loop turn, in one batch with its same-turn neighbours."""
        self._pending.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        events, self._pending = self._pending, []
        self.send_events(events)

    def join_room(self, name: str, password: str = "", settings: pb.RoomSettingsChange | None = None) -> bool:
        self._target_room = name
        self.config.password = password
        join = pb.JoinRoom(name=name, password=password)
        if settings is not None:
            join.settings.CopyFrom(settings)
        return self.send(pb.ClientMessage(ref=self.next_ref(), join_room=join))

    def leave_room(self) -> bool:
        self._target_room = None
        return self.send(pb.ClientMessage(ref=self.next_ref(), leave_room=pb.LeaveRoom()))

    # ---- the connection loop ---------------------------------------------------------------------------

    @property
    def next_attempt_in_s(self) -> float | None:
        """Seconds until the next connection attempt while waiting to reconnect; None otherwise."""
        if self.retry_at_ns is None:
            return None
        return max(0.0, (self.retry_at_ns - self._now_ns()) / 1e9)

    def _set_state(self, state: ConnectionState, detail: str, retry_in_s: float | None = None) -> None:
        if state is self.state and detail == self.detail and retry_in_s == self.retry_in_s:
            return
        self.state, self.detail, self.retry_in_s = state, detail, retry_in_s
        self.retry_at_ns = None if retry_in_s is None else self._now_ns() + round(retry_in_s * 1e9)
        if state is ConnectionState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        self._on_state(state, detail)

    async def _run(self) -> None:
        backoff = self.config.backoff
        ever_connected = False
        while not self._closing:
            self._set_state(
                ConnectionState.RECONNECTING if ever_connected else ConnectionState.CONNECTING, self.detail
            )
            self._welcomed_here = False
            self.refused = False
            try:
                detail = await self._connect_once()
                welcomed = True
            except SessionReplaced:
                if self._closing:
                    break
                log.warning(
                    "the server closed %s: our identity connected elsewhere; not reconnecting",
                    self.config.url,
                )
                ever_connected = True
                backoff.reset()
                self._set_state(ConnectionState.REPLACED, REPLACED_DETAIL)
                self._retry.clear()
                await self._retry.wait()
                backoff.reset()
                continue
            except HelloRejected as exc:
                welcomed, detail, self.refused = False, str(exc), True
                backoff.failures = backoff.max_attempts
            except ssl.SSLCertVerificationError as exc:  # an OSError that the next attempt would repeat
                welcomed, detail, self.refused = False, certificate_failure(exc), True
                backoff.failures = backoff.max_attempts
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed) as exc:
                welcomed, detail = self._welcomed_here, reasons.failure(exc)
            if self._closing:
                break
            if welcomed:
                ever_connected = True
                backoff.reset()
            else:
                backoff.failed()
            delay = backoff.next_delay()
            retry = "giving up" if delay is None else f"retry in {delay:.1f} s"
            log.info("connection to %s lost or failed (%s); %s", self.config.url, detail, retry)
            if delay is None:
                self._set_state(ConnectionState.GAVE_UP, detail)
                self._retry.clear()
                await self._retry.wait()
                backoff.reset()
                continue
            self._set_state(ConnectionState.RECONNECTING, detail, delay)
            self._retry.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._retry.wait(), delay)

    async def _connect_once(self) -> str:
        """One connection from handshake to close, once it got as far as Welcome: why it ended, in words.

        Raises whatever ended it before Welcome (and a break that websockets reports as an exception)."""
        cfg = self.config
        async with connect(
            cfg.url,
            compression=None,
            max_size=MAX_FRAME,
            proxy=None,
            ssl=client_context(cfg.url, cfg.insecure),
            open_timeout=cfg.open_timeout_s,
            ping_interval=cfg.keepalive_interval_s,
            ping_timeout=cfg.keepalive_timeout_s,
            close_timeout=cfg.close_timeout_s,
            user_agent_header=cfg.client_version,
        ) as ws:
            self._ws = ws
            self._welcomed_here = False
            self._pages = Pages()
            self._outgoing = asyncio.Queue()
            try:
                hello = pb.Hello(
                    name=cfg.name,
                    color=cfg.color,
                    client_version=cfg.client_version,
                    resume_token=self._token,
                )
                await ws.send(codec.encode(pb.ClientMessage(hello=hello)))
                async with asyncio.timeout(cfg.hello_timeout_s):
                    while not self._welcomed_here:
                        self._receive(await ws.recv(decode=False))
                return await self._serve(ws)
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == CLOSE_REPLACED:
                    raise SessionReplaced(exc.rcvd.reason) from exc
                raise
            finally:
                self._ws = None
                self._outgoing = None

    async def _serve(self, ws: ClientConnection) -> str:
        """Receive until the connection closes; why it closed, in words."""
        assert self._outgoing is not None
        self._set_state(ConnectionState.CONNECTED, "")
        tasks = [
            asyncio.create_task(self._write(ws, self._outgoing), name="session-writer"),
            asyncio.create_task(self._ping(), name="session-pinger"),
        ]
        try:
            while True:
                # decode=False: a text frame comes as bytes too, and is refused by the codec with a warning
                frame = await ws.recv(decode=False)
                try:
                    self._receive(frame)
                except Exception:  # one message the client failed on must not end the connection
                    log.exception("handling a message from the server failed")
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CLOSE_REPLACED:
                raise SessionReplaced(exc.rcvd.reason) from exc
            return reasons.closed(exc.rcvd, exc.sent)
        finally:
            self._outgoing = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _write(self, ws: ClientConnection, queue: asyncio.Queue[bytes]) -> None:
        while True:
            frame = await queue.get()
            await ws.send(frame)

    async def _ping(self) -> None:
        cfg = self.config
        for i in range(cfg.burst_pings):
            if i:
                await asyncio.sleep(cfg.burst_spacing_s)
            self._send_ping()
        for _ in range(cfg.settle_pings):
            await asyncio.sleep(min(cfg.settle_interval_s, cfg.ping_interval_s))
            self._send_ping()
        while True:
            await asyncio.sleep(cfg.ping_interval_s)
            self._send_ping()

    def _send_ping(self) -> None:
        self.send(pb.ClientMessage(ping=pb.Ping(client_send_us=self._now_ns() // 1000)))

    # ---- receiving -------------------------------------------------------------------------------------

    def _receive(self, frame: bytes) -> None:
        received_ns = self._now_ns()
        try:
            messages = codec.decode_server(frame)
        except codec.ProtocolError as exc:
            log.warning("dropping a bad frame from the server: %s", exc)
            return
        for message in messages:
            self._handle(message, received_ns)

    def _handle(self, message: pb.ServerMessage, received_ns: int) -> None:
        kind = message.WhichOneof("event")
        if kind == "pong":
            pong = message.pong
            self.clock.add_pong(
                pong.client_send_us, pong.server_receive_us, pong.server_send_us, received_ns // 1000
            )
            return
        if kind in _PAGED:
            whole = self._pages.feed(message)
            if whole is None:
                return  # more pages follow
            message = whole
            kind = message.WhichOneof("event")
        if kind == "welcome":
            self._on_welcome(message.welcome, received_ns)
        elif kind == "error" and not self._welcomed_here and message.error.code in _FATAL_HELLO_ERRORS:
            raise HelloRejected(message.error.message or "the server refused to let us in")
        elif kind == "room_state":
            self._on_room_state(message.room_state)
        elif kind == "removed":
            self._target_room = None
        elif kind == "chat_message":
            if message.chat_message.id <= self.last_chat_id:
                return  # a duplicate of something we already showed
            self.last_chat_id = message.chat_message.id
        elif kind == "chat_history_page" and message.ref == CATCHUP_REF:
            self._on_catchup(message.chat_history_page)
        self._on_message(message, received_ns)

    def _on_welcome(self, welcome: pb.Welcome, received_ns: int) -> None:
        resuming = self.welcome is not None
        self.welcome = welcome
        self._welcomed_here = True
        self._first_room_state = True
        self.clock.reset()
        self._provisional_offset_us = welcome.server_time_us - received_ns / 1000
        self._resume_after_id = self.last_chat_id if resuming and self.last_chat_id else None
        if welcome.resume_token:
            self._token = welcome.resume_token
            if self.config.tokens is not None and self._claim is not None:
                self.config.tokens.set(self.config.url, welcome.resume_token)
        log.info(
            "welcome: user %d %r%s",
            welcome.user.id,
            welcome.user.name,
            " (resumed)" if welcome.resumed else "",
        )

    def _on_room_state(self, state: pb.RoomState) -> None:
        self.room = state
        first, self._first_room_state = self._first_room_state, False
        if first and self._target_room and state.name != self._target_room:
            # Fresh connection (or the server did not restore our room): go (back) to where we were.
            join = pb.JoinRoom(name=self._target_room, password=self.config.password)
            self.send(pb.ClientMessage(ref=self.next_ref(), join_room=join))
            return
        if state.chat_history:
            newest = max(m.id for m in state.chat_history)
            after = self._resume_after_id
            if after is not None and state.name == self._target_room:
                self._resume_after_id = None
                if newest > after:
                    self._request_catchup(after)
            self.last_chat_id = max(self.last_chat_id, newest)

    def _request_catchup(self, after_id: int) -> None:
        request = pb.ChatHistoryRequest(after_id=after_id, limit=50)
        self.send(pb.ClientMessage(ref=CATCHUP_REF, chat_history_request=request))

    def _on_catchup(self, page: pb.ChatHistoryPage) -> None:
        if page.messages:
            newest = max(m.id for m in page.messages)
            if page.has_more:
                self._request_catchup(newest)
            self.last_chat_id = max(self.last_chat_id, newest)
