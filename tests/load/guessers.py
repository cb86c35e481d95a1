"""A password-guessing crowd, as its own process: N connections from each source address, each sending
`rate` wrong-password joins per second to one room for `seconds`, waiting for each answer.

    python -m tests.load.guessers URL ROOM --sources 127.0.0.2,127.0.0.3 --per-source 20 --seconds 8

Prints "ready" once every connection said hello, then one JSON line: answers by error code, guesses sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import time
from collections import Counter

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.relay_process import connect_from
from tests.fixtures.server import TestClient, answers


async def guess(
    client: TestClient, room: str, rate: float, until: float, tally: Counter[str], pings: bool
) -> None:
    ref = 0
    await asyncio.sleep(random.uniform(0, 1 / rate))  # independent attackers are not in step
    while time.monotonic() < until:
        ref += 1
        started = time.monotonic()
        try:
            if pings:
                await client.act(ref=ref, ping=pb.Ping(client_send_us=ref))
                await client.recv("pong", timeout=5, where=answers(ref))
                tally["pong"] += 1
            else:
                await client.act(ref=ref, join_room=pb.JoinRoom(name=room, password=secrets.token_hex(4)))
                reply = await client.recv("error", timeout=5, where=answers(ref))
                tally[pb.ErrorCode.Name(reply.error.code)] += 1
        except TimeoutError:
            tally["no answer"] += 1
        client.backlog.clear()
        await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("room")
    parser.add_argument("--sources", default="127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5")
    parser.add_argument("--per-source", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--pings", action="store_true", help="send pings instead (the same message rate with no password)"
    )
    args = parser.parse_args()
    clients = [
        await connect_from(args.url, source, hello=f"guesser{i}")
        for source in args.sources.split(",")
        for i in range(args.per_source)
    ]
    print("ready", flush=True)
    answers: Counter[str] = Counter()
    until = time.monotonic() + args.seconds
    await asyncio.gather(*(guess(c, args.room, args.rate, until, answers, args.pings) for c in clients))
    print(json.dumps({"connections": len(clients), "answers": dict(answers)}), flush=True)
    for client in clients:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
