"""A crowd of clients in a process of its own, so the test process measuring the relay is not the load.

    python -m tests.load.crowd URL COUNT [--rooms] [--per-address 20]

Opens COUNT connections from loopback addresses 127.0.<1+i//per_address//250>.<1+i//per_address%250>
(at most `per_address` from each, inside the relay's per-address cap), each saying hello with a distinct
32-character name of four-byte characters (128 bytes of UTF-8). With --rooms each then joins a room of its
own with a 64-character name of four-byte characters. Every connection keeps reading what it is sent.
Prints `ready COUNT` once every client holds the RoomState of where it should be, then holds the crowd
until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from websockets.asyncio.client import ClientConnection, connect

from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

CLEF = "\U0001d11e"  # 𝄞


def symbol(i: int) -> str:
    return chr(0x1F300 + i % 512)


def crowd_name(i: int) -> str:
    """32 four-byte characters, distinct for i < 262,144."""
    return symbol(i) + symbol(i // 512) + CLEF * 30


def room_name(i: int) -> str:
    """64 four-byte characters, distinct for i < 262,144."""
    return symbol(i) + symbol(i // 512) + CLEF * 62


def address(i: int, per_address: int) -> str:
    slot = i // per_address
    return f"127.0.{1 + slot // 250}.{1 + slot % 250}"


async def member(url: str, i: int, rooms: bool, per_address: int) -> ClientConnection:
    ws = await connect(
        url, local_addr=(address(i, per_address), 0), compression=None, max_size=2**20, open_timeout=30
    )
    await ws.send(codec.encode(pb.ClientMessage(hello=pb.Hello(name=crowd_name(i)))))
    target = room_name(i) if rooms else "lobby"
    if rooms:
        await ws.send(codec.encode(pb.ClientMessage(join_room=pb.JoinRoom(name=target))))
    while True:
        frame = await ws.recv(decode=False)
        messages = codec.decode_server(frame, codec.CodecConfig(max_payload=2**20))
        if any(m.WhichOneof("event") == "room_state" and m.room_state.name == target for m in messages):
            return ws


async def drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def main(url: str, count: int, rooms: bool, per_address: int) -> None:
    sem = asyncio.Semaphore(32)
    readers: list[asyncio.Task[None]] = []

    async def one(i: int) -> ClientConnection:
        async with sem:
            ws = await member(url, i, rooms, per_address)
        # Read from the moment it is in: the relay closes a client that stops reading while it is sent
        # data (every later member's UserJoined), as it should.
        readers.append(asyncio.create_task(drain(ws)))
        return ws

    crowd = await asyncio.gather(*(one(i) for i in range(count)))
    print(f"ready {len(crowd)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in crowd), return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--rooms", action="store_true")
    parser.add_argument("--per-address", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.count, args.rooms, args.per_address))
