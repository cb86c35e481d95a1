"""One bounded outgoing queue per client, flushed once per event-loop turn.

Everything queued for a client during one turn of the loop leaves as one frame (a ServerBatch built from
the already-serialized envelopes); there is no batching timer. A note batch fanned out to N members is the
same bytes object in N queues, and its single-envelope frame is built once per turn. When a client's
socket stops draining, its queue grows; past `max_bytes` the client is reported slow.

Every queued payload is within the frame cap: `send` swaps one that is not (a bug upstream: the core
pages what can grow) for an ERROR_CODE_FRAME_TOO_LARGE Error to the same clients and logs it at ERROR, so
building a frame cannot fail and one bad message never takes the rest of a client's queue with it.

Two rules keep one busy room or one stalled reader from costing everyone else:
- Each loop turn writes for at most `WRITE_SLICE_S`, and clients that became dirty since the
  last turn go first. A note fanned out to a 2,000-member lobby is spread over many short turns, and a quiet
  room's note, which arrives meanwhile, is written in the very next turn instead of after the whole crowd.
  Lobby members still waiting accumulate items, which then leave as one batch frame: fewer writes.
- A client that is being sent data must show it reads: at most every `LIVENESS_INTERVAL_S` it gets a
  WebSocket ping, and one not answered within `LIVENESS_TIMEOUT_S` makes it slow. Byte limits alone cannot
  catch a stall quickly: at 50 notes/s (~2 KB/s) the kernel buffers on both ends absorb tens of seconds of
  a busy room. Idle clients are left to the 20 s keepalive ping of server/ws.py.

Frames are written with `WebSocket.write_frames` (server/ws.py owns the transport and drives websockets'
sans-I/O protocol), so one frame's bytes, built with websockets' public `Frame.serialize`, go to every
client that is sent the same payloads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence

from websockets.frames import Frame, Opcode

from pianorhythm.server.ws import WebSocket
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger(__name__)

CHUNK_BYTES = 60 * 1024  # payload bytes per batch frame, below the 64 KiB cap with room for framing
# Each turn writes for at most this long (at least one client). A write is a send() syscall, and on
# loopback the kernel runs the receiver's side of TCP inside it: 30-150 us each on the 2-core VM under
# load, so a fixed count of writes made turns of 2-4 ms. A quiet room's note needs about three turns (read,
# handle, write): with 0.3 ms slices it waits ~1 ms behind a crowded room's fan-out, not 10.
WRITE_SLICE_S = 0.0003
# A stall is found within interval + timeout = 4 s (a client that stops reading just after answering a
# ping); a healthy client on a slow path (300 ms round trip) answers with more than 1 s to spare. Of the
# two, the interval sets what liveness costs (each pong is a read, a parse and often a loop wake-up:
# ~100 us of the relay's CPU here, bench/README.md "Session 5, B"), so it takes the larger share: 2.5 s
# rather than 1.5 s (with a 2.5 s timeout) is ~40 % fewer pings for the same 4 s. Each client's interval is
# drawn from [0.8, 1] of it, so that members of one room, written in the same turns, do not all ping (and
# answer) in the same turn again; and at most PINGS_PER_TURN pings start per turn, so that a 2,000-member
# lobby's pings do not arrive as one burst.
LIVENESS_INTERVAL_S = 2.5
LIVENESS_TIMEOUT_S = 1.5
PINGS_PER_TURN = 16
# ...and only after this many messages since the last ping: a ping then costs at most 1/16 of what the
# client is sent. A stalled reader in a room busy at 50 notes/s is pinged every 2.0-2.5 s as above; a member
# of a crowded lobby on the shared budget (1 batch/s) every ~16 s, which spares 2,000 pings per 2.5 s
# while so little is held back for it (websockets' own 20 s heartbeat still covers it as well).
PING_AFTER_MESSAGES = 16
WIRE_ENTRIES = 256


class Outbox:
    __slots__ = (
        "conn",
        "items",
        "size",
        "dirty",
        "closed",
        "draining",
        "session_id",
        "probing",
        "probe_due",
        "unproven",
    )

    def __init__(self, session_id: int, conn: WebSocket) -> None:
        self.session_id = session_id
        self.conn = conn
        self.items: list[bytes] = []
        self.size = 0
        self.dirty = False
        self.closed = False
        self.draining = False
        self.probing = False  # a liveness ping is out
        self.probe_due = 0.0  # loop time from which the next liveness ping may go out
        self.unproven = 0  # messages written since the last liveness ping went out


class Mailer:
    """Owns every client's outbox; `on_slow(session_id)` is called when a client is too slow (its queue
    overflowed, or it stopped answering pings while being sent data)."""

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
        self._dirty: list[Outbox] = []  # boxes dirtied since the last flush turn: written first
        self._pending: deque[Outbox] = deque()  # dirty boxes a previous turn had no room for
        self._scheduled = False
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pings_left = PINGS_PER_TURN
        # WebSocket frames by the identities of the payloads they carry (one payload: its id; more: a tuple
        # of them): a server frame is never masked and compression is off, so members sent the same
        # payloads (a crowded room's members, whose backlogs hold the same relayed notes) get the same
        # bytes, built once for the whole fan-out however many turns it takes. Each entry keeps its payloads
        # alive, so an identity cannot be reused while the entry lives; the cache is emptied when every
        # dirty box is written, or past WIRE_ENTRIES (a lobby that never goes quiet).
        self._wire: dict[int | tuple[int, ...], tuple[bytes, tuple[bytes, ...]]] = {}

    def add(self, session_id: int, conn: WebSocket) -> Outbox:
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
            elif box.draining and box.size + box.conn.buffered() > self.max_bytes:
                self._slow(box, "the outgoing queue overflowed")
        if not self._scheduled and dirty:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        pending = self._pending
        if self._dirty:
            pending.extendleft(reversed(self._dirty))
            self._dirty = []
        wire = self._wire
        self._pings_left = PINGS_PER_TURN
        now = self._loop.time()
        clock = time.perf_counter
        end = clock() + WRITE_SLICE_S
        while pending:
            self._write(pending.popleft(), wire, now)
            if clock() >= end:
                break
        if not pending or len(wire) > WIRE_ENTRIES:
            self._wire = {}
        if pending and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush_all(self) -> None:
        """Write everything queued now, however many turns' worth (at shutdown)."""
        self.flush()
        while self._pending:
            self.flush()

    def _write(
        self, box: Outbox, wire: dict[int | tuple[int, ...], tuple[bytes, tuple[bytes, ...]]], now: float
    ) -> None:
        # Run once per member per turn: the common case (one relayed note, an open socket that drains)
        # takes one dict hit and one write.
        box.dirty = False
        items = box.items
        if box.closed or not items:
            return
        conn = box.conn
        if box.draining or conn.writing_paused:
            if not conn.open:
                self._discard(box)
            elif box.size + conn.buffered() > self.max_bytes:
                self._slow(box, "the outgoing queue overflowed")
            elif not box.draining:
                self._drain(box)
            return
        key = id(items[0]) if len(items) == 1 else tuple(map(id, items))
        try:
            cached = wire.get(key)
            if cached is None:
                config = self.codec_config
                if len(items) == 1:  # a relayed note, most often: within the cap (send checked), one frame
                    data = _ws_frame(codec.frame_payload(items[0], config))
                else:
                    data = b"".join(
                        _ws_frame(codec.encode_serialized(chunk, config))
                        for chunk in _chunks(items, self.chunk_bytes)
                    )
                wire[key] = (data, tuple(items))  # a copy: a discarded box clears its list
            else:
                data = cached[0]
            box.unproven += len(items)
            if (
                box.unproven >= PING_AFTER_MESSAGES
                and now >= box.probe_due
                and not box.probing
                and self._pings_left
                and conn.open
            ):
                self._pings_left -= 1
                box.unproven = 0
                self._probe(box, data)
            elif not conn.write_frames(data):
                self._discard(box)
                return
        except Exception as exc:  # the connection broke under us; its handler cleans up and logs the close
            log.info("write to session %d failed (%s); its connection is closing", box.session_id, exc)
        box.items = []
        box.size = 0

    @staticmethod
    def _discard(box: Outbox) -> None:
        """What is queued for a connection that is closing: nobody will read it."""
        box.items.clear()
        box.size = 0

    def _probe(self, box: Outbox, data: bytes) -> None:
        """Write `data` and a ping in one write; a client that does not answer in time is slow. A busy
        room pings each member about once a second: one write (not two) and callbacks (not a task with a
        timeout) keep that from costing as much as the notes (bench/README.md, section H)."""
        box.probing = True
        pong = box.conn.ping(data)
        expiry = self._loop.call_later(LIVENESS_TIMEOUT_S, self._unanswered, box, pong)
        pong.add_done_callback(lambda _: self._answered(box, pong, expiry))

    def _unanswered(self, box: Outbox, pong: asyncio.Future[float]) -> None:
        if not pong.done():
            pong.cancel()  # the answer no longer matters; _answered runs next and ends the probe
            self._slow(box, f"no pong within {LIVENESS_TIMEOUT_S} s while being sent data")

    def _answered(self, box: Outbox, pong: asyncio.Future[float], expiry: asyncio.TimerHandle) -> None:
        if not pong.cancelled():
            pong.exception()  # ConnectionClosed is no error here: the handler saw the close and cleans up
        expiry.cancel()
        box.probing = False
        box.probe_due = self._loop.time() + LIVENESS_INTERVAL_S * random.uniform(0.8, 1)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        self._spawn(self._wait_drain(box))

    async def _wait_drain(self, box: Outbox) -> None:
        try:
            await box.conn.drain()  # returns when the buffer drains or the connection is lost
        finally:
            box.draining = False
        if not box.closed and box.items and not box.dirty:
            box.dirty = True
            self._dirty.append(box)
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self.flush)

    def _slow(self, box: Outbox, why: str) -> None:
        if not box.closed:
            log.info(
                "session %d is too slow: %s (%d bytes queued)",
                box.session_id,
                why,
                box.size + box.conn.buffered(),
            )
            box.closed = True
            box.items.clear()
            self.on_slow(box.session_id)


def _ws_frame(data: bytes) -> bytes:
    """The bytes websockets' ServerProtocol.send_binary would write for `data` (no mask, no extensions)."""
    return Frame(Opcode.BINARY, data).serialize(mask=False, extensions=[])


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
