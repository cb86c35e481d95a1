"""The relay's WebSocket layer: websockets' documented sans-I/O `ServerProtocol`, driven by our own asyncio
protocol on a transport from `loop.create_server` (websockets' guide "Integrate the Sans-I/O layer").

Bytes from the socket go to `ServerProtocol.receive_data`; its `events_received()` (the handshake request,
then frames) are handled here; whatever it has to send (`data_to_send()`: the handshake response, pongs,
close frames, the end of stream) goes to the transport at once. Owning the transport is what lets the
relay's outbox write one prebuilt frame (`Frame.serialize(mask=False)`) to many clients and watch each
socket's write buffer — the asyncio `ServerConnection` keeps both private, and its public `send()` builds
the frame again per client (bench/README.md, section G).

The rest mirrors websockets' asyncio server, with the same options: `process_request` answers plain HTTP
(or refuses) before the upgrade, received messages queue up to `max_queue` before the socket stops being
read, keepalive pings every `ping_interval` fail the connection (1011) after `ping_timeout` without a
pong, a closing handshake gives up after `close_timeout`, and closing the server closes every open
connection with the given code and waits for the handlers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

log = logging.getLogger(__name__)

Handler = Callable[["WebSocket"], Awaitable[None]]
# Takes a binary message in data_received; False hands it to recv() instead (see WebSocket.on_message).
OnMessage = Callable[[bytes], bool]
ProcessRequest = Callable[["WebSocket", Request], "Response | None"]


@dataclass(frozen=True)
class Settings:
    server_header: str
    max_size: int | None = 2**20  # bytes in one received message; larger fails the connection (1009)
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    open_timeout: float = 10.0  # from accept to the handshake request
    write_limit: int = 32 * 1024  # the transport's write buffer high-water mark (pause_writing)
    max_queue: int = 16  # received messages held before the socket stops being read


class WebSocketServer:
    """Listens and runs `handler(ws)` for every connection that completes the handshake."""

    def __init__(self, handler: Handler, process_request: ProcessRequest, settings: Settings) -> None:
        self.handler = handler
        self.process_request = process_request
        self.settings = settings
        self.closing = False
        self.connections: set[WebSocket] = set()  # every accepted TCP connection until it is lost
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        timeouts: dict[str, Any] = {}
        if tls is not None:
            timeouts = {
                "ssl_handshake_timeout": self.settings.open_timeout,
                "ssl_shutdown_timeout": self.settings.close_timeout,
            }
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: WebSocket(self), host, port, ssl=tls, **timeouts)

    @property
    def sockets(self) -> tuple[Any, ...]:
        return self._server.sockets if self._server is not None else ()

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        """Stop accepting, refuse handshakes still to come (503), close open connections with `code`
        and wait until every connection is gone and every handler has returned."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(ws.close(code, reason) for ws in list(self.connections)))
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()


class WebSocket(asyncio.Protocol):
    """One client connection: the handler reads with `recv()`; the outbox writes prebuilt frames with
    `write_frames()` while `open`, and watches `writing_paused` / `buffered()` for slow readers.

    A handler may also set `on_message`: then a binary message that arrives while the handler waits in
    `recv()` with nothing queued is first offered to it, in `data_received` itself; it returns True if it
    handled the message, False to have it queued for `recv()` as usual. Messages stay in order (nothing is
    offered while one is queued or the handler is busy with one), and a message that needs the handler's
    awaits (a storage step) is simply declined. What it saves is the handler task's wake-up per message,
    which costs as much as the relay core's handling of a note (bench/README.md, "Session 6, Z"). An
    exception it raises is raised by the handler's next `recv()`, as if the handler had raised it."""

    def __init__(self, server: WebSocketServer) -> None:
        self._server = server
        settings = self._settings = server.settings
        self._protocol = ServerProtocol(extensions=None, max_size=settings.max_size)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._request: asyncio.Future[Request] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[Frame] = []
        self._waiter: asyncio.Future[None] | None = None
        self.on_message: OnMessage | None = None
        self._failed: Exception | None = None  # raised by on_message: the handler's recv() raises it
        self._reading_paused = False
        self._drainers: list[asyncio.Future[None]] = []
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._closer: asyncio.TimerHandle | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._heard = self._loop.time()  # the peer's last bytes: the keepalive pings only after silence
        # The protocol's state is OPEN, read once after each call that can change it (they all end in
        # _flush) rather than through two properties on each of the outbox's writes.
        self._open = False
        self.writing_paused = False  # the transport's buffer is over `write_limit` (pause_writing)

    # -- what the shell and the outbox use ------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._open

    @property
    def remote_address(self) -> Any:
        return self._transport.get_extra_info("peername") if self._transport is not None else None

    @property
    def close_code(self) -> int | None:
        return self._protocol.close_code

    def respond(self, status: HTTPStatus, text: str) -> Response:
        """A plain-text HTTP response that `process_request` may return instead of the upgrade."""
        return self._protocol.reject(status, text)

    async def recv(self) -> str | bytes:
        """The next message; ConnectionClosed once the connection is closed and every message read."""
        while not self._messages or self._failed is not None:  # raised before what was queued after it
            if self._failed is not None:
                raise self._failed
            if self._lost.done():
                raise self._protocol.close_exc
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._messages.popleft()
        if self._reading_paused and len(self._messages) <= self._settings.max_queue // 4:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        return message

    def write_frames(self, data: bytes) -> bool:
        """Write serialized server frames (unmasked, no extensions), e.g. one built for many clients;
        False (nothing written) once the connection is no longer open."""
        if self._open:
            self._transport.write(data)  # type: ignore[union-attr]  # open implies connection_made
            return True
        return False

    def buffered(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    async def drain(self) -> None:
        """Wait until the write buffer is below its low-water mark again (or the connection is lost)."""
        if self.writing_paused:
            waiter = self._loop.create_future()
            self._drainers.append(waiter)
            try:
                await waiter
            finally:
                self._drainers.remove(waiter)

    def ping(self, frames: bytes = b"") -> asyncio.Future[float]:
        """Send a ping, after `frames` (prebuilt server frames, as for `write_frames`) in the same write;
        the future gives the round trip when its pong arrives, ConnectionClosed if the connection closes
        first."""
        pong: asyncio.Future[float] = self._loop.create_future()
        if self._lost.done():
            pong.set_exception(self._protocol.close_exc)
            return pong
        data = struct.pack("!I", random.getrandbits(32))
        while data in self._pings:
            data = struct.pack("!I", random.getrandbits(32))
        self._pings[data] = (pong, self._loop.time())
        if self._open:  # else it waits for connection_lost's ConnectionClosed
            # Built here rather than by the protocol's send_ping, which would make it a write of its own.
            ping = Frame(Opcode.PING, data).serialize(mask=False, extensions=[])
            self._transport.write(frames + ping)  # type: ignore[union-attr]  # open implies connection_made
        return pong

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """The closing handshake; returns once the TCP connection is gone (at most `close_timeout`)."""
        state = self._protocol.state
        if state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._flush()
        elif state is State.CONNECTING and self._transport is not None:
            self._transport.close()
        await asyncio.shield(self._lost)

    def fail(self, code: int, reason: str) -> None:
        """Send a close frame and end the TCP connection without waiting for the client's answer."""
        self._protocol.fail(code, reason)
        self._flush()

    # -- the connection's life -----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with asyncio.timeout(self._settings.open_timeout):
                request = await self._request
        except (TimeoutError, ConnectionError):
            if self._transport is not None:
                self._transport.abort()
            return
        if self._lost.done() or not self._handshake(request):
            return
        if self._settings.ping_interval is not None:
            self._keepalive = self._loop.create_task(self._keep_alive(self._settings.ping_interval))
        try:
            await self._server.handler(self)
        except Exception:
            log.exception("connection handler failed")
            await self.close(CloseCode.INTERNAL_ERROR, "internal error")
        await self.close()

    def _handshake(self, request: Request) -> bool:
        try:
            response = self._server.process_request(self, request)
        except Exception:
            log.exception("process_request failed")
            response = self.respond(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                "Failed to open a WebSocket connection.\nSee server log for more information.\n",
            )
        if response is None:
            response = self._protocol.accept(request)
        if response.status_code == HTTPStatus.SWITCHING_PROTOCOLS and self._server.closing:
            response = self.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n")
        response.headers["Server"] = self._settings.server_header
        self._protocol.send_response(response)
        self._flush()
        return self._protocol.state is State.OPEN

    async def _keep_alive(self, interval: float) -> None:
        """Ping after `interval` without a byte from the peer: anything it sends shows the connection is
        alive, so a member that plays, pings the clock or answers the outbox's liveness pings is never
        pinged here. (Whether a member *reads* what it is sent is the outbox's liveness ping.)"""
        timeout = self._settings.ping_timeout
        pinged = self._loop.time()
        while True:
            due = max(self._heard, pinged) + interval
            if self._loop.time() < due:
                await asyncio.sleep(due - self._loop.time())
                continue
            pinged = self._loop.time()
            pong = self.ping()
            if timeout is None:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await pong
            except TimeoutError:
                log.info("no pong within %s s: closing the connection from %s", timeout, self.remote_address)
                self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                return
            except ConnectionClosed:
                return

    def _flush(self) -> None:
        transport = self._transport
        assert transport is not None
        for data in self._protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # the protocol's end of stream: half-close, or close (TLS)
                try:
                    transport.write_eof()
                except OSError:
                    transport.abort()
            else:
                transport.close()
        self._open = self._protocol.state is State.OPEN
        if self._closer is None and self._protocol.close_expected():
            self._closer = self._loop.call_later(self._settings.close_timeout, transport.abort)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
            if frame.fin:
                self._deliver(opcode, bytes(frame.data))
            else:
                self._fragments = [frame]
        elif opcode is Opcode.CONT:
            self._fragments.append(frame)
            if frame.fin:  # the protocol checked the sequence and the total size
                fragments, self._fragments = self._fragments, []
                self._deliver(fragments[0].opcode, b"".join(bytes(f.data) for f in fragments))
        elif opcode is Opcode.PONG:
            self._pong(bytes(frame.data))

    def _deliver(self, opcode: Opcode, data: bytes) -> None:
        message: str | bytes = data
        waiter = self._waiter
        # A waiter not yet woken means the handler waits in recv() with nothing queued (any queued message
        # wakes it): offered then only, a message never overtakes one before it.
        if (
            opcode is Opcode.BINARY
            and self.on_message is not None
            and waiter is not None
            and not waiter.done()
            and self._failed is None
        ):
            try:
                if self.on_message(data):
                    return
            except Exception as exc:
                self._failed = exc
                waiter.set_result(None)
                return
        elif opcode is Opcode.TEXT:
            try:
                message = data.decode()
            except UnicodeDecodeError:
                self.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                return
        self._messages.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if not self._reading_paused and len(self._messages) > self._settings.max_queue:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def _pong(self, data: bytes) -> None:
        if data not in self._pings:
            return  # unsolicited
        now = self._loop.time()
        # A pong answers its ping and every earlier one (a peer may answer only the latest).
        for key in list(self._pings):
            pong, sent = self._pings.pop(key)
            if not pong.done():
                pong.set_result(now - sent)
            if key == data:
                break

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(self._settings.write_limit)
        self._server.connections.add(self)
        self._server.track(self._loop.create_task(self._run()))

    def data_received(self, data: bytes) -> None:
        self._heard = self._loop.time()
        self._protocol.receive_data(data)
        events = self._protocol.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Request) and not self._request.done():
                self._request.set_result(event)

    def eof_received(self) -> None:
        self._protocol.receive_eof()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.receive_eof()  # idempotent: the state is CLOSED from here on
        self._open = False
        self._server.connections.discard(self)
        self._lost.set_result(None)
        if not self._request.done():
            self._request.set_exception(ConnectionError("the connection closed before the handshake"))
        if self._closer is not None:
            self._closer.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        closed = self._protocol.close_exc
        for pong, _sent in self._pings.values():
            if not pong.done():
                pong.set_exception(closed)
                pong.exception()  # nobody may be waiting for this one any more: not an unretrieved error
        self._pings.clear()
        self.writing_paused = False
        for waiter in self._drainers:
            if not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        for waiter in self._drainers:
            if not waiter.done():
                waiter.set_result(None)
