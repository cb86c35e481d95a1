"""The client session over wss://: certificates are verified (system store or $SSL_CERT_FILE), --insecure
skips that, and an unverifiable certificate gives up at once with one sentence instead of retrying.
A real relay serving a self-signed certificate made by openssl."""

from __future__ import annotations

import asyncio

import pytest

from pianorhythm.client.model import ConnectionState
from pianorhythm.server.main import RunningServer
from pianorhythm.tui.net.backoff import Backoff
from pianorhythm.tui.net.session import ClientSession, SessionConfig
from pianorhythm.tui.net.tls import insecure_warning
from tests.fixtures.tls import SelfSigned

SENTENCE = (
    "The server's certificate could not be verified (self-signed certificate); "
    "use --insecure only if you trust this server."
)


async def _session(url: str, insecure: bool = False) -> tuple[ClientSession, list[ConnectionState]]:
    states: list[ConnectionState] = []
    session = ClientSession(
        SessionConfig(url, "tls-user", insecure=insecure, backoff=Backoff(base_s=0.05, max_s=0.1)),
        on_message=lambda message, received_ns: None,
        on_state=lambda state, detail: states.append(state),
    )
    await session.start()
    return session, states


async def test_an_unverifiable_certificate_gives_up_at_once_with_one_sentence(
    tls_server: RunningServer,
) -> None:
    session, states = await _session(tls_server.url)
    try:
        async with asyncio.timeout(5):
            while session.state is not ConnectionState.GAVE_UP:
                await asyncio.sleep(0.01)
        assert session.detail == SENTENCE and session.refused
        assert states == [ConnectionState.CONNECTING, ConnectionState.GAVE_UP]  # no reconnect attempts
    finally:
        await session.close()


async def test_insecure_accepts_the_self_signed_certificate(tls_server: RunningServer) -> None:
    session, _ = await _session(tls_server.url, insecure=True)
    try:
        assert await session.wait_connected(5)
        assert session.welcome is not None and session.welcome.user.name == "tls-user"
    finally:
        await session.close()


async def test_verification_is_real_a_trusted_certificate_connects(
    tls_server: RunningServer, tls_cert: SelfSigned, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert.cert))  # OpenSSL's own override of the system store
    session, _ = await _session(tls_server.url)
    try:
        assert await session.wait_connected(5)
    finally:
        await session.close()


def test_insecure_warnings() -> None:
    assert insecure_warning("wss://example.org/api/websocket", insecure=False) is None
    warning = insecure_warning("wss://example.org/api/websocket", insecure=True)
    assert warning is not None and "certificate is not checked" in warning
    assert insecure_warning("ws://example.org/api/websocket", insecure=True) == (
        "--insecure changes nothing for ws://example.org/api/websocket: ws:// is not encrypted at all."
    )
