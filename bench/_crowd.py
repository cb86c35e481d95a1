"""A crowd for the fairness test and benchmark: M lean clients that say hello and stay in the lobby,
reading and discarding what they get, and optionally one of them playing notes at a given rate.

    python bench/_crowd.py URL MEMBERS [--play RATE] [--events N]

Clients connect from 127.0.1.1, 127.0.1.2, ... (18 per address, under the relay's 20-per-address cap), so
the relay needs no special flag. Waits for each Welcome only, never for a room state (a lobby's state may
come in pages, or late). Prints "ready" once every member is in. Then reads commands on stdin, one a line,
and echoes each when done: "play" (the first member plays RATE note events/s, N per batch), "stop", and
"quit" (or EOF): print a JSON line with what the player sent and was told, and what the crowd received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay import LeanClient  # noqa: E402
from websockets.uri import parse_uri  # noqa: E402

from pianorhythm.wire import codec  # noqa: E402
from pianorhythm.wire import pianorhythm_pb2 as pb  # noqa: E402

PER_ADDRESS = 18
CONNECT_AT_ONCE = 50
CONFIG = codec.CodecConfig(max_payload=2**20)


def raise_open_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Member:
    """Waits for its Welcome, then counts what it is sent (and the errors, for the player)."""

    def __init__(self) -> None:
        self.welcomed = asyncio.get_running_loop().create_future()
        self.frames = 0
        self.errors: dict[pb.ErrorCode.ValueType, int] = {}
        self.errors_wanted = False  # only the player decodes past its Welcome
        self.sent = 0

    def on_frame(self, payload: bytes, _: int) -> None:
        self.frames += 1
        if self.welcomed.done() and not self.errors_wanted:
            return
        for message in codec.decode_server(payload, CONFIG):
            kind = message.WhichOneof("event")
            if kind == "welcome" and not self.welcomed.done():
                self.welcomed.set_result(None)
            elif kind == "error":
                self.errors[message.error.code] = self.errors.get(message.error.code, 0) + 1


async def join(url: str, index: int) -> tuple[Member, LeanClient]:
    uri = parse_uri(url)
    source = f"127.0.1.{1 + index // PER_ADDRESS}"
    member = Member()
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: LeanClient(url, member.on_frame), uri.host, uri.port, local_addr=(source, 0)
    )
    await client.opened
    client.send(pb.ClientMessage(hello=pb.Hello(name=f"crowd{index}", client_version="crowd")))
    await asyncio.wait_for(member.welcomed, 60)
    return member, client


async def play(member: Member, client: LeanClient, rate: float, events: int) -> None:
    """Send `rate` note events per second in batches of `events`, until cancelled."""
    batches = rate / events
    start = time.monotonic()
    first = member.sent
    while True:
        wait = start + (member.sent - first + 1) / batches - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        member.sent += 1
        key = 48 + member.sent % 24
        notes = [
            pb.NoteEvent(offset_us=i * 1000, note=pb.Note(key=key, velocity=(member.sent + i) % 2 * 90))
            for i in range(events)
        ]
        batch = pb.NoteBatch(base_time_us=time.monotonic_ns() // 1000, events=notes)
        client.send(pb.ClientMessage(note_batch=batch))


async def main(args: argparse.Namespace) -> None:
    limit = raise_open_file_limit()
    if limit < args.members + 64:
        sys.exit(f"the open-file limit ({limit}) is too low for {args.members} clients; raise `ulimit -Hn`.")
    members: list[tuple[Member, LeanClient]] = []
    for first in range(0, args.members, CONNECT_AT_ONCE):
        last = min(args.members, first + CONNECT_AT_ONCE)
        members += await asyncio.gather(*(join(args.url, i) for i in range(first, last)))
    player, client = members[0]
    player.errors_wanted = True
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: commands.put_nowait(sys.stdin.readline().strip() or "quit"))
    playing: asyncio.Task[None] | None = None
    while (command := await commands.get()) != "quit":
        if command == "play" and playing is None:
            playing = asyncio.create_task(play(player, client, args.play, args.events))
        elif command == "stop" and playing is not None:
            playing.cancel()
            playing = None
        print(command, flush=True)
    loop.remove_reader(sys.stdin.fileno())
    if playing is not None:
        playing.cancel()
    result = {
        "members": len(members),
        "player_batches": player.sent,
        "player_errors": {pb.ErrorCode.Name(code): n for code, n in player.errors.items()},
        "frames_received": sum(member.frames for member, _ in members),
    }
    print(json.dumps(result), flush=True)
    for _, member_client in members:
        if member_client.transport is not None:
            member_client.transport.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("members", type=int)
    parser.add_argument("--play", type=float, default=200.0, help="note events per second from the player")
    parser.add_argument("--events", type=int, default=1, help="note events per batch")
    asyncio.run(main(parser.parse_args()))
