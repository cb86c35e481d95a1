"""A churn load, as its own process: connect, say hello (no token: a new user), join one of a few rooms,
chat one line, go.

    python -m tests.load.churn URL CYCLES [--workers 16] [--rooms 4] [--drop-every 10]

`workers` cycles run at a time, each worker from its own loopback address (127.0.1.1, 127.0.1.2, ...), so
the per-address connection cap and room-creation bucket see several addresses. Every `drop-every`-th cycle
drops the connection while still in the room (the server keeps that room for a resume); the others leave
the room first. Prints one JSON line: cycles, failures (with the first few reasons), seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

CONFIG = codec.CodecConfig(max_payload=2**20)


async def _until(ws: ClientConnection, kind: str, ref: int = 0, room: str = "") -> pb.ServerMessage:
    while True:
        data = await ws.recv()
        assert isinstance(data, bytes)
        for message in codec.decode_server(data, CONFIG):
            event = message.WhichOneof("event")
            if event == "error" and (not ref or message.ref == ref):
                raise RuntimeError(f"{pb.ErrorCode.Name(message.error.code)}: {message.error.message}")
            if event == kind and (not ref or message.ref == ref):
                if not room or message.room_state.name == room:
                    return message


async def _act(ws: ClientConnection, ref: int, **action: Any) -> None:
    await ws.send(codec.encode(pb.ClientMessage(ref=ref, **action)))


async def cycle(url: str, source: str, index: int, rooms: int, drop: bool) -> None:
    room = f"churn-{index % rooms}"
    async with connect(url, local_addr=(source, 0), compression=None, max_size=2**20) as ws:
        await _act(ws, 1, hello=pb.Hello(name=f"c{index % 100_000}"))
        await _until(ws, "room_state", room="lobby")
        await _act(ws, 2, join_room=pb.JoinRoom(name=room))
        await _until(ws, "room_state", ref=2)
        await _act(ws, 3, chat_send=pb.ChatSend(content=f"cycle {index}"))
        await _until(ws, "chat_message", ref=3)
        if not drop:
            await _act(ws, 4, leave_room=pb.LeaveRoom())
            await _until(ws, "room_state", ref=4)


async def memory_report(url: str, admin_token: str) -> dict[str, Any]:
    """The server's admin "memory" command: a full GC, then its RSS (KiB)."""
    async with connect(url, compression=None, max_size=2**20) as ws:
        await _act(ws, 1, hello=pb.Hello(name="bench-admin"))
        await _act(ws, 2, server_command=pb.ServerCommand(name="memory", admin_token=admin_token))
        result = await _until(ws, "command_result", ref=2)
    return json.loads(result.command_result.output)  # type: ignore[no-any-return]


async def churn(url: str, cycles: int, workers: int, rooms: int, drop_every: int) -> dict[str, Any]:
    counter = iter(range(cycles))
    failures: list[str] = []

    async def worker(number: int) -> None:
        source = f"127.0.{1 + number // 250}.{1 + number % 250}"
        for index in counter:
            try:
                async with asyncio.timeout(10):
                    await cycle(url, source, index, rooms, drop_every > 0 and index % drop_every == 0)
            except Exception as exc:  # counted and reported: the caller decides what is acceptable
                failures.append(f"cycle {index}: {type(exc).__name__}: {exc}")

    start = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    return {
        "cycles": cycles,
        "failures": len(failures),
        "first_failures": failures[:5],
        "seconds": round(time.monotonic() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("cycles", type=int)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--drop-every", type=int, default=10)
    args = parser.parse_args()
    result = asyncio.run(churn(args.url, args.cycles, args.workers, args.rooms, args.drop_every))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
