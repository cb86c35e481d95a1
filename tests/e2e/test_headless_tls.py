"""wss:// end to end: a `--server --certfile --keyfile` process with a self-signed certificate (made by
openssl at test time) and headless clients.

Figures: an unverifiable certificate ends the client in under 8 s with one sentence (retrying would take
15 s and then give the generic "could not join" line); a bad certificate path is one log line and exit 1.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.e2e.headless_procs import CLI, DATA, REPO, headless
from tests.fixtures.relay_process import relay_process
from tests.fixtures.server import TestClient
from tests.fixtures.tls import SelfSigned

pytestmark = pytest.mark.slow

SENTENCE = (
    "error: The server's certificate could not be verified (self-signed certificate); "
    "use --insecure only if you trust this server."
)


def _tls(cert: SelfSigned) -> tuple[str, ...]:
    return ("--certfile", str(cert.cert), "--keyfile", str(cert.key))


async def test_insecure_clients_play_and_chat_over_wss(tmp_path: Path, tls_cert: SelfSigned) -> None:
    async with relay_process(tmp_path, *_tls(tls_cert)) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        listener = headless(tmp_path, server.url, "bob", "--room", "tls", "--insecure", "--duration", "30")
        player = None
        speaker = None
        try:
            await asyncio.to_thread(listener.wait_for, r"room tls users=1")
            assert "warning: --insecure: the server's certificate is not checked" in listener.stderr
            song = str(DATA / "m21-test02.mid")
            player = headless(tmp_path, server.url, "alice", "--room", "tls", "--insecure", "--play", song)
            await asyncio.to_thread(listener.wait_for, r"notes sent/s=0 received/s=[1-9]")
            speaker = await TestClient.connect(server.url, ssl=tls_cert.client_context())
            await speaker.hello("carol")
            await speaker.act(join_room=pb.JoinRoom(name="tls"))
            await speaker.recv("room_state", where=lambda m: m.room_state.name == "tls")
            await speaker.act(chat_send=pb.ChatSend(content="hello over tls"))
            await asyncio.to_thread(listener.wait_for, r"chat carol: hello over tls")
            assert await asyncio.to_thread(listener.interrupt) == 0
        finally:
            if speaker is not None:
                await speaker.close()
            for proc in (listener, player):
                if proc is not None:
                    proc.kill()


async def test_a_client_without_insecure_stops_at_once_with_one_sentence(
    tmp_path: Path, tls_cert: SelfSigned
) -> None:
    async with relay_process(tmp_path, *_tls(tls_cert)) as server:
        started = time.monotonic()
        client = headless(tmp_path, server.url, "careful")
        try:
            status = await asyncio.to_thread(client.wait, 30)
        finally:
            client.kill()
        elapsed = time.monotonic() - started
    assert status == 1
    assert SENTENCE in client.stderr.splitlines()
    assert elapsed < 8, f"took {elapsed:.1f} s: it retried"
    assert "connection reconnecting" not in client.stdout


async def test_a_client_trusting_the_certificate_needs_no_insecure(
    tmp_path: Path, tls_cert: SelfSigned
) -> None:
    async with relay_process(tmp_path, *_tls(tls_cert)) as server:
        trusting = {"SSL_CERT_FILE": str(tls_cert.cert)}  # proves verification is real, not skipped
        client = headless(tmp_path, server.url, "trusting", "--duration", "1", env=trusting)
        try:
            assert await asyncio.to_thread(client.wait, 30) == 0, client.stderr
        finally:
            client.kill()
    assert "room lobby users=1" in client.stdout
    assert "--insecure" not in client.stderr


def test_a_bad_certificate_path_is_one_line_and_a_failure(tmp_path: Path, tls_cert: SelfSigned) -> None:
    missing = tmp_path / "missing.pem"
    result = subprocess.run(
        [*CLI, "--server", "--port", "0", "--db", str(tmp_path / "s.db"),
         "--certfile", str(missing), "--keyfile", str(tls_cert.key)],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith(f"ERROR server: cannot read --certfile {missing}: No such file or directory.")
