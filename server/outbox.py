"""One bounded outgoing queue per client, flushed once per event-loop turn.

Everything queued for a client during one turn of the loop leaves as one frame (a ServerBatch built from
the already-serialized envelopes); there is no batching timer. A note batch fanned out to N members is the
same bytes object in N queues, and its single-envelope frame is built once per turn. When a client's
socket stops draining, its queue grows; past `max_bytes` the client is reported slow.

Every queued payload is within the frame cap: `send` swaps one that is not (a bug upstream: the core
pages what can grow) for an ERROR_CODE_FRAME_TOO_LARGE Error to the same clients and logs it at ERROR, so
building a frame cannot fail and one bad message never takes the rest of a client's queue with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger(__name__)

CHUNK_BYTES = 60 * 1024  # payload bytes per batch frame, below the 64 KiB cap with room for framing


class Outbox:
    __slots__ = ("conn", "items", "size", "dirty", "closed", "draining", "session_id")

    def __init__(self, session_id: int, conn: ServerConnection) -> None:
        self.session_id = session_id
        self.conn = conn
        self.items: list[bytes] = []
        self.size = 0
        self.dirty = False
        self.closed = False
        self.draining = False


class Mailer:
    """Owns every client's outbox; `on_slow(session_id)` is called when a queue overflows."""

    def __init__(
        self, max_bytes: int, on_slow: Callable[[int], None], max_payload: int = codec.DEFAULT_MAX_PAYLOAD
    ) -> None:
        self.max_bytes = max_bytes
        self.on_slow = on_slow
        self.max_payload = max_payload
        # A batch of n >= 2 items is at most its _chunks size: 8 bytes counted per item, <= 4 used, and
        # the batch header takes 5. A single item goes unbatched, so any payload within the cap fits.
        self.chunk_bytes = min(CHUNK_BYTES, max_payload)
        self.codec_config = codec.CodecConfig(max_payload=max_payload)
        self.boxes: dict[int, Outbox] = {}
        self._dirty: list[Outbox] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()
        self._drains: set[asyncio.Task[None]] = set()

    def add(self, session_id: int, conn: ServerConnection) -> Outbox:
        box = Outbox(session_id, conn)
        self.boxes[session_id] = box
        return box

    def remove(self, session_id: int) -> None:
        box = self.boxes.pop(session_id, None)
        if box is not None:
            box.closed = True
            box.items.clear()

    def send(self, targets: Sequence[int], payload: bytes) -> None:
        size = len(payload)
        if size > self.max_payload:
            payload = self._too_large(payload, len(targets))
            size = len(payload)
        boxes = self.boxes
        dirty = self._dirty
        for sid in targets:
            box = boxes.get(sid)
            if box is None or box.closed:
                continue
            box.items.append(payload)
            box.size += size
            if not box.dirty:
                box.dirty = True
                dirty.append(box)
            elif box.draining and box.size + _buffered(box) > self.max_bytes:
                self._slow(box)
        if not self._scheduled and dirty:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        wire: dict[int, bytes] = {}  # one-envelope WebSocket frames by payload identity, built once a turn
        for box in dirty:
            box.dirty = False
            if box.closed or not box.items:
                continue
            conn = box.conn
            if conn.protocol.state is not State.OPEN:
                box.items.clear()
                box.size = 0
                continue
            if box.draining or conn.paused:
                if box.size + _buffered(box) > self.max_bytes:
                    self._slow(box)
                elif not box.draining:
                    self._drain(box)
                continue
            items = box.items
            try:
                if len(items) == 1:
                    # A server frame is never masked and compression is off, so the WebSocket frame bytes
                    # are the same for every member: build them once, write them to each socket.
                    payload = items[0]
                    data = wire.get(id(payload))
                    if data is None:
                        data = wire[id(payload)] = _ws_frame(codec.frame_payload(payload, self.codec_config))
                    conn.transport.write(data)
                else:
                    for chunk in _chunks(items, self.chunk_bytes):
                        conn.transport.write(_ws_frame(codec.encode_serialized(chunk, self.codec_config)))
            except Exception as exc:  # the connection broke under us; its handler cleans up
                log.debug("write to session %d failed: %s", box.session_id, exc)
            box.items = []
            box.size = 0

    def _too_large(self, payload: bytes, clients: int) -> bytes:
        """The Error that replaces a message over the cap (the message is our own, so it parses)."""
        message = pb.ServerMessage.FromString(payload)
        kind = message.WhichOneof("event")
        log.error(
            "cannot send a %s message of %d bytes (the frame cap is %d): %d client(s) get an error instead",
            kind,
            len(payload),
            self.max_payload,
            clients,
        )
        text = (
            f"The server could not send you a {kind} message ({len(payload)} bytes, over the"
            f" {self.max_payload}-byte cap); nothing else was lost. Please tell the server's operator."
        )
        error = pb.Error(code=pb.ERROR_CODE_FRAME_TOO_LARGE, message=text)
        return pb.ServerMessage(ref=message.ref, error=error).SerializeToString()

    def _drain(self, box: Outbox) -> None:
        box.draining = True
        task = self._loop.create_task(self._wait_drain(box))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _wait_drain(self, box: Outbox) -> None:
        try:
            await box.conn.drain()
        except Exception:
            return
        finally:
            box.draining = False
        if not box.closed and box.items and not box.dirty:
            box.dirty = True
            self._dirty.append(box)
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self.flush)

    def _slow(self, box: Outbox) -> None:
        if not box.closed:
            log.info("session %d is too slow (%d bytes queued)", box.session_id, box.size + _buffered(box))
            box.closed = True
            box.items.clear()
            self.on_slow(box.session_id)


def _ws_frame(data: bytes) -> bytes:
    """The bytes websockets' ServerProtocol.send_binary would write for `data` (no mask, no extensions)."""
    return Frame(Opcode.BINARY, data).serialize(mask=False, extensions=[])


def _buffered(box: Outbox) -> int:
    transport = box.conn.transport
    return transport.get_write_buffer_size() if transport is not None else 0


def _chunks(items: list[bytes], limit: int) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for item in items:
        if chunks[-1] and size + len(item) + 8 > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += len(item) + 8
    return chunks
