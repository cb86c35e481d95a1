"""Slow readers found fast: a client that stops reading in a room busy at 50 notes/s is closed with 4008
within 5 s and the room is told why; a healthy client behind a 150 ms path stays."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.relay_process import connect_from, relay_process
from tests.fixtures.server import TestClient

ROOM = "busy"
RATE = 50.0


async def _join(client: TestClient, name: str) -> None:
    await client.act(hello=pb.Hello(name=name, client_version="tests"))
    client.welcome = (await client.recv("welcome", timeout=5)).welcome
    await client.act(join_room=pb.JoinRoom(name=ROOM))
    await client.recv("room_state", timeout=5, where=lambda m: m.room_state.name == ROOM)


@contextlib.asynccontextmanager
async def _playing(player: TestClient) -> AsyncIterator[None]:
    """The player sends one note every 1/RATE s (and reads what it gets) while the block runs."""

    async def play() -> None:
        start = time.perf_counter()
        for seq in range(1, 10**6):
            await asyncio.sleep(max(0.0, start + seq / RATE - time.perf_counter()))
            note = pb.Note(key=60, velocity=seq % 2)
            batch = pb.NoteBatch(base_time_us=seq, events=[pb.NoteEvent(note=note)])
            await player.act(note_batch=batch)

    task = asyncio.create_task(play())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _stalled_socket(source: str, port: int) -> socket.socket:
    """A socket whose receive buffer is small, so the kernel absorbs little of what it is not reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_reader_that_stalls_in_a_busy_room_is_closed_4008_within_5_s(tmp_path: Path) -> None:
    """Figure: a client that stops reading while its room plays 50 notes/s is dropped as slow (the room
    gets UserLeft LEAVE_REASON_SLOW) within 5 s of its last read."""
    async with relay_process(tmp_path) as server:
        player = await connect_from(server.url, "127.0.0.1")
        await _join(player, "player")
        stalled = await TestClient.connect(server.url, sock=_stalled_socket("127.0.0.2", server.port))
        await _join(stalled, "staller")
        stalled_id = stalled.user_id
        # From here on the stalled client never calls recv(): websockets queues a few frames, then stops
        # reading the socket, and pings go unanswered like everything else.
        stalled_at = time.perf_counter()
        async with _playing(player):
            left = await player.recv(
                "user_left", timeout=15, where=lambda m: m.user_left.user_id == stalled_id
            )
            took = time.perf_counter() - stalled_at
        assert left.user_left.reason == pb.LEAVE_REASON_SLOW
        assert took < 5.0, f"found after {took:.1f} s"
        assert server.logged(r"is too slow: no pong"), server.log[-20:]
        code, _ = await stalled.closed(timeout=10)  # reading again, it finds the close frame
        assert code == 4008
        async with asyncio.timeout(5):
            while not server.logged(rf"disconnect session=\d+ user={stalled_id} code=4008"):
                await asyncio.sleep(0.05)
        await player.close()


async def test_a_healthy_reader_behind_a_150_ms_path_stays_through_10_s_of_notes(
    tmp_path: Path, jitter_proxy
) -> None:
    """Figure: a client reading normally through a 150 ms (each way) proxy gets all 500 notes of 10 s at
    50 notes/s and is not closed."""
    async with relay_process(tmp_path) as server:
        proxy = await jitter_proxy(server.port, delay_s=0.150, jitter_s=0.010)
        player = await connect_from(server.url, "127.0.0.1")
        await _join(player, "player")
        far = await TestClient.connect(proxy.url())
        await _join(far, "far-away")
        received = 0
        async with _playing(player):
            deadline = time.perf_counter() + 10.0
            while (remaining := deadline - time.perf_counter()) > 0:
                with contextlib.suppress(TimeoutError):
                    await far.recv("notes", timeout=remaining)
                    received += 1
        await far.pump(1.0)
        received += len(far.take("notes"))
        assert received >= 0.95 * RATE * 10, received
        assert not player.take("user_left")
        assert not server.logged(r"too slow")
        await far.act(ref=7, ping=pb.Ping(client_send_us=1))
        assert (await far.recv("pong", timeout=5)).ref == 7
        await far.close()
        await player.close()
