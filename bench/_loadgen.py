"""A load generator that is not the bottleneck: many WebSocket listeners in a few processes.

Each listener is a bare `asyncio.Protocol` on the loop's own TCP transport (uvloop when installed): the
upgrade request is written by hand, and once connected the listener only reads frame headers. A note's
latency comes from the `base_time_us` the sender put in it, and every listener of a room receives the
same frame bytes, so the payload is decoded once per process (a dict keyed by the payload's bytes) and each
delivery costs a header parse, a dict hit and an array append: no protobuf object per delivery. Pings are
answered with a pong masked by a zero key (a valid client mask), so the relay's liveness checks pass.

    crowd = Crowd(url, procs=2)
    crowd.add(500, hello=True, room="lobby")  # 500 more listeners, each said hello and saw the room
    crowd.add(9, hello=True, room="r1", join=True)  # 9 more that also asked to join room "r1"
    crowd.collect()                # discards what arrived so far
    ...                            # the sender plays
    latencies_us, frames = crowd.collect()
    crowd.cpu_s()                  # the load processes' CPU seconds (user, system)
    crowd.close()

Latency is taken once per `data_received` (CLOCK_MONOTONIC, shared with the sender's process), so a
listener that falls behind counts its backlog as late, as it should.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing as mp
import os
import resource
import sys
import time
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pianorhythm.wire import codec  # noqa: E402
from pianorhythm.wire import pianorhythm_pb2 as pb  # noqa: E402

CONFIG = codec.CodecConfig(max_payload=2**20)
CONNECT_AT_ONCE = 50
ZERO_MASK = b"\x00\x00\x00\x00"  # a client must mask; XOR with zeros leaves the payload as it is


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (FIN set) with a zero mask key."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    return header + ZERO_MASK + payload


def upgrade_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Tally:
    """One process's deliveries: every note's latency in µs, and the note-bearing frames' count."""

    def __init__(self) -> None:
        self.latencies = array("q")
        self.frames = 0
        self.notes: dict[bytes, tuple[int, ...]] = {}  # payload -> base_time_us of each note batch in it

    def times(self, payload: bytes) -> tuple[int, ...]:
        found = self.notes.get(payload)
        if found is None:
            found = tuple(
                message.notes.base_time_us
                for message in codec.decode_server(payload, CONFIG)
                if message.WhichOneof("event") == "notes"
            )
            if len(self.notes) > 100_000:  # a long run: old notes never come back
                self.notes.clear()
            self.notes[payload] = found
        return found


class Listener(asyncio.Protocol):
    """Until `ready`, frames are decoded to see the handshake's end and (with `room`) the room's state;
    from then on only note frames are timed and counted."""

    def __init__(self, tally: Tally, request: bytes, hello: bytes | None, room: str | None) -> None:
        self.tally = tally
        self.request = request
        self.hello = hello
        self.room = room
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.on_payload: Callable[[bytes, int], None] = self._setup

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost before ready ({exc})"))

    def data_received(self, data: bytes) -> None:
        now_us = time.monotonic_ns() // 1000
        if self.rest:
            data = self.rest + data
            self.rest = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.rest = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(data[: data.find(b"\r\n")].decode(errors="replace")))
                return
            self.upgraded = True
            data = data[end + 4 :]
            assert self.transport is not None
            if self.hello is not None:
                self.transport.write(self.hello)
            if self.room is None:
                self._ready()
        size = len(data)
        offset = 0
        while size - offset >= 2:
            length = data[offset + 1]  # server frames are unmasked
            start = offset + 2
            if length == 126:
                length = int.from_bytes(data[start : start + 2], "big")
                start += 2
            elif length == 127:
                length = int.from_bytes(data[start : start + 8], "big")
                start += 8
            end = start + length
            if end > size:
                break
            opcode = data[offset] & 0x0F
            if opcode == 0x2:
                self.on_payload(data[start:end], now_us)
            elif opcode == 0x9:
                assert self.transport is not None
                self.transport.write(client_frame(0xA, data[start:end]))
            offset = end
        if offset < size:
            self.rest = data[offset:]

    def _count(self, payload: bytes, now_us: int) -> None:
        tally = self.tally
        times = tally.times(payload)
        if times:
            tally.frames += 1
            for base in times:
                tally.latencies.append(now_us - base)

    def _setup(self, payload: bytes, now_us: int) -> None:
        for message in codec.decode_server(payload, CONFIG):
            if message.WhichOneof("event") == "room_state" and message.room_state.name == self.room:
                self._ready()

    def _ready(self) -> None:
        self.on_payload = self._count
        if not self.ready.done():
            self.ready.set_result(None)


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def worker(url: str, pipe: Connection) -> None:
    """One load process: obeys ("add", n, hello, room, at_once, join) / ("collect",) / ("quit",)."""
    _raise_open_file_limit()
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tally = Tally()
        listeners: list[Listener] = []
        commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))

        def reply(answer: object) -> None:
            # add_reader made the pipe non-blocking; a latency array is larger than the pipe's buffer
            os.set_blocking(pipe.fileno(), True)
            pipe.send(answer)
            os.set_blocking(pipe.fileno(), False)

        async def one(index: int, say_hello: bool, room: str | None, join: bool) -> None:
            hello = None
            if say_hello:
                name = f"l{os.getpid() % 10000}-{index}"
                hello = client_frame(0x2, codec.encode(pb.ClientMessage(hello=pb.Hello(name=name))))
                if join and room is not None:
                    hello += client_frame(
                        0x2, codec.encode(pb.ClientMessage(join_room=pb.JoinRoom(name=room)))
                    )
            request = upgrade_request(host, port, path)
            factory = lambda: Listener(tally, request, hello, room)  # noqa: E731
            _, listener = await loop.create_connection(factory, host, port)
            await asyncio.wait_for(listener.ready, 60)
            listeners.append(listener)

        while True:
            command = await commands.get()
            if command[0] == "add":
                _, count, say_hello, room, at_once, join = command
                first = len(listeners)
                for start in range(first, first + count, at_once):
                    stop = min(first + count, start + at_once)
                    await asyncio.gather(*(one(i, say_hello, room, join) for i in range(start, stop)))
                reply(len(listeners))
            elif command[0] == "collect":
                reply((tally.latencies.tobytes(), tally.frames))
                tally.latencies = array("q")
                tally.frames = 0
            else:
                break
        loop.remove_reader(pipe.fileno())
        for listener in listeners:
            if listener.transport is not None:
                listener.transport.close()
        reply("bye")

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class Crowd:
    """`procs` load processes; listeners are spread over them evenly."""

    def __init__(self, url: str, procs: int = 2) -> None:
        ctx = mp.get_context("spawn")
        self.workers: list[tuple[Any, Connection]] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(url, child), daemon=True)
            proc.start()
            self.workers.append((proc, parent))
        self.size = 0

    def add(
        self, count: int, hello: bool, room: str | None, at_once: int = CONNECT_AT_ONCE, join: bool = False
    ) -> None:
        """`count` more listeners; with `hello` each says Hello, with `room` each waits for its state (with
        `join` too, each asks to join it first); `at_once` connections at a time per process."""
        procs = len(self.workers)
        for index, (_, pipe) in enumerate(self.workers):
            share = count // procs + (1 if index < count % procs else 0)
            pipe.send(("add", share, hello, room, at_once, join))
        for _, pipe in self.workers:
            pipe.recv()
        self.size += count

    def collect(self) -> tuple[array[int], int]:
        """Every note latency (µs) and note frame received since the last collect."""
        latencies: array[int] = array("q")
        frames = 0
        for _, pipe in self.workers:
            pipe.send(("collect",))
        for _, pipe in self.workers:
            data, count = pipe.recv()
            latencies.frombytes(data)
            frames += count
        return latencies, frames

    def cpu_s(self) -> tuple[float, float]:
        times = [cpu_times(proc.pid) for proc, _ in self.workers]
        return sum(t[0] for t in times), sum(t[1] for t in times)

    def close(self) -> None:
        for _, pipe in self.workers:
            pipe.send(("quit",))
        for proc, pipe in self.workers:
            pipe.recv()
            proc.join(10)
