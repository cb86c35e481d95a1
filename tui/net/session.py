"""The session shell: one WebSocket to the relay, kept alive across drops. Asyncio and websockets only.

Everything the protocol decides is in the client core (pianorhythm.client.session.SessionCore, or the whole
pianorhythm.client.core.ClientCore when the engine runs it): Hello and the resume token, rejoining the room,
chat catch-up, clock-sync pings, note batches. This shell connects, calls the core's `link_up` / `receive` /
`tick` / `link_down` with the time, writes its Send effects, saves its token (SaveToken) and passes on the
rest: Received messages to `on_message` (a plain session, as tests and tools use it), every other effect to
`on_effects` (the engine). Local notes queued in one loop turn go out in one batch at its end (`flush_soon`).

A link that goes silent (no close, no reset: a dead Wi-Fi, a NAT that forgot us) is noticed by websockets'
keepalive: a ping every `keepalive_interval_s`, the connection failed when no pong comes within
`keepalive_timeout_s`, and closed after at most `close_timeout_s` more: 7.5 s at most with the defaults. The
server's own heartbeat (Welcome.limits.ping_interval_s, 20 s by default) is far too slow for the player.

Connection states: connecting -> connected -> reconnecting -> connected ... ; after `max_attempts` failed
attempts in a row it reports gave_up and waits for `retry()`; `close()` ends it (closed). When the server
closes us with 4001 (our identity connected from somewhere else) it reports replaced and waits for
`retry()` too: reconnecting by itself would take the identity back, and the other client would do the
same, for ever.

Identity: the core resumes with the token of its last Welcome (kept in memory). The token saved in the
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
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from pianorhythm import __version__
from pianorhythm.client.core import ClientCore
from pianorhythm.client.effects import Effect, Received, Refuse, SaveToken, Send
from pianorhythm.client.model import ConnectionState
from pianorhythm.client.session import SessionCore, SessionSettings
from pianorhythm.clock import BURST_PINGS, PING_INTERVAL_S, SETTLE_INTERVAL_S, SETTLE_PINGS, ClockEstimator
from pianorhythm.tui.net import reasons
from pianorhythm.tui.net.backoff import Backoff
from pianorhythm.tui.net.tls import certificate_failure, client_context
from pianorhythm.tui.net.tokens import TokenClaim, TokenStore
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger(__name__)

MAX_FRAME: Final = codec.frame_bytes(codec.DEFAULT_MAX_PAYLOAD)
CLOSE_REPLACED: Final = 4001  # the relay: the same identity said Hello on another connection
REPLACED_DETAIL: Final = "your identity connected from another place"
IDLE_TICK_S: Final = 3600.0  # the core plans no ping (never while connected): look again in a while


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

    def settings(self) -> SessionSettings:
        """What the core needs of it."""
        return SessionSettings(
            name=self.name,
            color=self.color,
            room=self.room,
            password=self.password,
            client_version=self.client_version,
            ping_interval_s=self.ping_interval_s,
            burst_pings=self.burst_pings,
            burst_spacing_s=self.burst_spacing_s,
            settle_pings=self.settle_pings,
            settle_interval_s=self.settle_interval_s,
        )


MessageHandler = Callable[[pb.ServerMessage, int], None]
StateHandler = Callable[[ConnectionState, str], None]
EffectsHandler = Callable[[list[Effect]], None]


def _noop_state(state: ConnectionState, detail: str) -> None:
    return None


class ClientSession:
    """See the module docstring. Create, `await start()`, then `send`; `await close()` at the end."""

    def __init__(
        self,
        config: SessionConfig,
        on_message: MessageHandler | None = None,
        on_state: StateHandler = _noop_state,
        now_ns: Callable[[], int] = time.perf_counter_ns,
        *,
        core: ClientCore | None = None,
        on_effects: EffectsHandler | None = None,
    ) -> None:
        self.config = config
        # The engine's whole client core, or (tests, tools) the connection-level part on its own.
        self.link = core.link if core is not None else SessionCore(config.settings())
        self.core: ClientCore | SessionCore = core if core is not None else self.link
        self.state = ConnectionState.CLOSED
        self.detail = ""
        self.refused = False  # gave up at once, as retrying cannot help (Hello refused, certificate bad)
        self.retry_in_s: float | None = None  # while waiting to reconnect: the delay chosen for this wait
        self.retry_at_ns: int | None = None  # ... and when the next attempt starts (our now_ns clock)
        self._on_message = on_message
        self._on_state = on_state
        self._on_effects = on_effects
        self._now_ns = now_ns
        self._ws: ClientConnection | None = None
        self._outgoing: asyncio.Queue[bytes] | None = None
        self._flush_scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._retry = asyncio.Event()
        self._connected = asyncio.Event()
        self._closing = False
        self._welcomed_here = False  # the current attempt got as far as Welcome
        self._claim: TokenClaim | None = None  # held: the saved token is ours to use and update

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            tokens = self.config.tokens
            if tokens is not None and self._claim is None:
                self._claim = tokens.claim(self.config.url)
                if self._claim is not None and not self.link.token:
                    self.link.token = tokens.get(self.config.url)
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
    def clock(self) -> ClockEstimator:
        return self.link.clock

    @property
    def welcome(self) -> pb.Welcome | None:
        return self.link.welcome

    @property
    def last_chat_id(self) -> int:
        return self.link.last_chat_id

    @property
    def user_id(self) -> int:
        return self.link.user_id

    def server_now_us(self) -> int:
        return self.link.server_now_us(self._now_ns())

    # ---- running effects -------------------------------------------------------------------------------

    def run(self, effects: Sequence[Effect]) -> bool:
        """Write the Sends, save the token, pass on the rest; True if anything was written."""
        sent = False
        others: list[Effect] = []
        refusal: Refuse | None = None
        for effect in effects:
            if isinstance(effect, Send):
                sent = self._write(effect.message) or sent
            elif isinstance(effect, SaveToken):
                if self.config.tokens is not None and self._claim is not None:
                    self.config.tokens.set(self.config.url, effect.token)
            elif isinstance(effect, Received):
                if self._on_message is not None:
                    self._on_message(effect.message, effect.received_ns)
            elif isinstance(effect, Refuse):
                refusal = effect
            else:
                others.append(effect)
        if others and self._on_effects is not None:
            self._on_effects(others)
        if refusal is not None:
            raise HelloRejected(refusal.reason)
        return sent

    def next_ref(self) -> int:
        return self.link.next_ref()

    def send(self, message: pb.ClientMessage) -> bool:
        """Queue one message for the server; False (and dropped) while there is no connection."""
        return self.run(self.link.send(message))

    def _write(self, message: pb.ClientMessage) -> bool:
        if self._outgoing is None:
            return False
        self._outgoing.put_nowait(codec.encode(message))
        return True

    def flush_soon(self) -> None:
        """Tick the core at the end of this loop turn: local notes queued in it go out in one batch."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.run(self.core.tick(self._now_ns()))

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
        now = self._now_ns()
        self.retry_at_ns = None if retry_in_s is None else now + round(retry_in_s * 1e9)
        if state is ConnectionState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        if isinstance(self.core, ClientCore):
            self.run(self.core.state_changed(state, detail, now, retry_in_s, self.refused))
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
            self._outgoing = asyncio.Queue()
            try:
                for effect in self.core.link_up(self._now_ns()):
                    assert isinstance(effect, Send)  # the Hello, written before anything else
                    await ws.send(codec.encode(effect.message))
                async with asyncio.timeout(cfg.hello_timeout_s):
                    while not self.link.welcomed:
                        frame = await ws.recv(decode=False)
                        self.run(self.core.receive(frame, self._now_ns()))
                self._welcomed_here = True
                return await self._serve(ws)
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == CLOSE_REPLACED:
                    raise SessionReplaced(exc.rcvd.reason) from exc
                raise
            finally:
                self._ws = None
                self._outgoing = None
                self.run(self.core.link_down(self._now_ns()))

    async def _serve(self, ws: ClientConnection) -> str:
        """Receive until the connection closes; why it closed, in words."""
        assert self._outgoing is not None
        self._set_state(ConnectionState.CONNECTED, "")
        tasks = [
            asyncio.create_task(self._write_loop(ws, self._outgoing), name="session-writer"),
            asyncio.create_task(self._tick_loop(), name="session-ticker"),
        ]
        try:
            while True:
                # decode=False: a text frame comes as bytes too, and is refused by the codec with a warning
                frame = await ws.recv(decode=False)
                try:
                    self.run(self.core.receive(frame, self._now_ns()))
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

    async def _write_loop(self, ws: ClientConnection, queue: asyncio.Queue[bytes]) -> None:
        while True:
            frame = await queue.get()
            await ws.send(frame)

    async def _tick_loop(self) -> None:
        """Tick the core when it asks (the clock-sync pings)."""
        while True:
            now = self._now_ns()
            self.run(self.core.tick(now))
            due = self.core.next_tick_ns
            await asyncio.sleep(IDLE_TICK_S if due is None else max(0.0, (due - now) / 1e9))
