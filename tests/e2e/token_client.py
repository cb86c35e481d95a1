"""A client process for tests/e2e/test_secrets_in_logs.py, logging at DEBUG through the CLI's own logging
set-up: it connects (and is given a resume token), connects again resuming with it, and sends an admin
command. It prints what it saw as one JSON line on stdout; its log goes to stderr.

    python -m tests.e2e.token_client URL CONFIG_DIR ADMIN_TOKEN
"""

from __future__ import annotations

import asyncio
import json
import sys

from pianorhythm.tui.cli import configure_logging
from pianorhythm.tui.net.session import ClientSession, SessionConfig
from pianorhythm.tui.net.tokens import TokenStore
from pianorhythm.wire import pianorhythm_pb2 as pb


async def _run(url: str, config_dir: str, admin_token: str) -> dict[str, object]:
    tokens = TokenStore(config_dir)
    results: asyncio.Queue[pb.ServerMessage] = asyncio.Queue()

    def keep(message: pb.ServerMessage, received_ns: int) -> None:
        if message.WhichOneof("event") in ("command_result", "error"):
            results.put_nowait(message)

    first = ClientSession(SessionConfig(url, "keeper", tokens=tokens), on_message=keep)
    await first.start()
    assert await first.wait_connected(10), first.detail
    assert first.welcome is not None
    resume_token = first.welcome.resume_token
    await first.close()

    second = ClientSession(SessionConfig(url, "keeper", tokens=tokens), on_message=keep)
    await second.start()
    try:
        assert await second.wait_connected(10), second.detail
        assert second.welcome is not None
        command = pb.ServerCommand(name="stats", admin_token=admin_token)
        second.send(pb.ClientMessage(ref=second.next_ref(), server_command=command))
        answer = await asyncio.wait_for(results.get(), 10)
        return {
            "resume_token": resume_token,
            "resumed": second.welcome.resumed,
            "answer": answer.WhichOneof("event"),
        }
    finally:
        await second.close()


def main() -> None:
    url, config_dir, admin_token = sys.argv[1:4]
    configure_logging("debug")
    print(json.dumps(asyncio.run(_run(url, config_dir, admin_token))), flush=True)


if __name__ == "__main__":
    main()
