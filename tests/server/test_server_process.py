"""`pianorhythm-tui --server` as a real process: SIGTERM closes every client with 1001 and keeps every
acknowledged chat message on disk."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.server import TestClient, answers

CLI = Path(sys.executable).with_name("pianorhythm-tui")


async def _start(db: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        str(CLI), "--server", "--port", "0", "--db", str(db), "--log-level", "info",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    async with asyncio.timeout(15):
        while line := (await proc.stderr.readline()).decode():
            match = re.search(r"listening on (ws://\S+)", line)
            if match:
                return proc, match.group(1)
    raise AssertionError("the server never said it was listening")


async def _chatter(client: TestClient, acked: list[int]) -> None:
    """Send chat lines within the chat quota until the connection closes; record the acknowledged ids."""
    ref = 0
    try:
        while True:
            ref += 1
            await client.act(ref=ref, chat_send=pb.ChatSend(content=f"line {ref}"))
            message = await client.recv("chat_message", timeout=5, where=answers(ref))
            acked.append(message.chat_message.id)
            await asyncio.sleep(0.25)
    except Exception:
        return  # the connection closed under us: everything acknowledged so far must be on disk


async def _three_chatting(url: str) -> tuple[list[TestClient], list[int], list[asyncio.Task[None]]]:
    """Three clients chatting within their quota; returns once some lines were acknowledged."""
    clients = [await TestClient.connect(url) for _ in range(3)]
    for index, client in enumerate(clients):
        await client.hello(f"player{index}")
    acked: list[int] = []
    chatters = [asyncio.create_task(_chatter(c, acked)) for c in clients]
    await asyncio.sleep(1.2)
    assert acked, "no chat was acknowledged within 1.2 s"
    return clients, acked, chatters


@pytest.mark.slow
@pytest.mark.skipif(not CLI.exists(), reason="the pianorhythm-tui entry point is not installed")
async def test_sigterm_closes_clients_with_1001_and_keeps_acknowledged_chat(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    proc, url = await _start(db)
    assert proc.stderr is not None
    drain = asyncio.create_task(proc.stderr.read())  # keep the pipe from filling
    try:
        clients, acked, chatters = await _three_chatting(url)
        started = asyncio.get_running_loop().time()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*chatters), 10)  # each ends when its connection closes
        codes = await asyncio.gather(*(c.closed(timeout=1) for c in clients))
        returncode = await asyncio.wait_for(proc.wait(), 10)
        assert asyncio.get_running_loop().time() - started < 10
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await drain
    assert returncode == 0
    assert codes == [(1001, "server shutting down")] * 3
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM chat")}
    assert set(acked) <= stored


@pytest.mark.slow
@pytest.mark.skipif(not CLI.exists(), reason="the pianorhythm-tui entry point is not installed")
async def test_kill_9_loses_no_acknowledged_chat(tmp_path: Path) -> None:
    """Figure: 3 clients chatting (their 4-line bursts, ~12 lines acknowledged); after kill -9 every
    acknowledged line is in the database."""
    db = tmp_path / "server.db"
    proc, url = await _start(db)
    assert proc.stderr is not None
    drain = asyncio.create_task(proc.stderr.read())
    try:
        clients, acked, chatters = await _three_chatting(url)
        proc.kill()
        returncode = await asyncio.wait_for(proc.wait(), 10)
        await asyncio.wait_for(asyncio.gather(*chatters), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await drain
    assert returncode == -signal.SIGKILL
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM chat")}
    assert set(acked) <= stored, f"acknowledged but lost: {sorted(set(acked) - stored)}"
