"""A load for the client benchmarks: one player in a room sending a note-on (+ its note-off) R times a second.

    python bench/_note_sender.py URL ROOM RATE SECONDS [HOLD_US]

Prints "ready" once joined, then plays; each batch carries the note-on and its note-off HOLD_US later.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect  # noqa: E402

from pianorhythm.wire import codec  # noqa: E402
from pianorhythm.wire import pianorhythm_pb2 as pb  # noqa: E402

SCRIPT = str(Path(__file__).resolve())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def send_notes(url: str, room: str, rate: float, seconds: float, hold_us: int) -> None:
    async with connect(url, compression=None) as ws:
        await ws.send(codec.encode(pb.ClientMessage(hello=pb.Hello(name="sender"))))
        await ws.send(codec.encode(pb.ClientMessage(join_room=pb.JoinRoom(name=room))))

        async def drain() -> None:
            async for _ in ws:
                pass

        task = asyncio.create_task(drain())
        await asyncio.sleep(1.0)
        print("ready", flush=True)
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            key = 48 + i % 24
            events = [
                pb.NoteEvent(offset_us=0, note=pb.Note(key=key, velocity=90)),
                pb.NoteEvent(offset_us=hold_us, note=pb.Note(key=key, velocity=0)),
            ]
            batch = pb.NoteBatch(base_time_us=time.time_ns() // 1000, events=events)
            await ws.send(codec.encode(pb.ClientMessage(note_batch=batch)))
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        task.cancel()


if __name__ == "__main__":
    url, room, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    hold_us = int(sys.argv[5]) if len(sys.argv) > 5 else 15_000
    asyncio.run(send_notes(url, room, rate, seconds, hold_us))
