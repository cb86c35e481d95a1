"""A link that goes silent is noticed within 10 s, and why a connection ended reaches the user in words: the
server's own close reason, a silent link, a dropped one, a refused one; never an exception's class name.
Real relay, real websockets on loopback; the silent link is the proxy pausing without closing anything."""

from __future__ import annotations

import asyncio
import re

from pianorhythm.client import model as m
from pianorhythm.client.model import ConnectionState
from pianorhythm.server.main import ServerOptions, start_server
from pianorhythm.tui.engine import Engine, EngineConfig
from tests.fixtures.proxy import JitterProxy
from tests.tui.test_session_reconnect import Events, entered, fast_backoff

CLASS_NAME = re.compile(r"[A-Z][a-z]+(Error|Exception|Closed|Handshake|URI)\b")


def left_connected(event: m.EngineEvent) -> bool:
    return isinstance(event, m.ConnectionChanged) and event.state is not ConnectionState.CONNECTED


async def test_a_silent_link_is_noticed_within_ten_seconds(relay_server, tmp_path):
    proxy = JitterProxy("127.0.0.1", relay_server.port, delay_s=0, jitter_s=0)
    await proxy.start()
    engine = Engine(EngineConfig(proxy.url(), "quiet", room="den", save_token=False, backoff=fast_backoff()))
    events = Events(engine)
    await engine.start()
    try:
        await events.wait_for(entered("den"))
        mark = len(events.items)
        loop = asyncio.get_running_loop()
        paused_at = loop.time()
        proxy.pause()  # nothing gets through either way, and nothing is closed
        lost = await events.wait_for(left_connected, timeout=10.0, after=mark)
        assert loop.time() - paused_at <= 10.0
        assert lost.state is ConnectionState.RECONNECTING
        assert "stopped answering" in lost.detail
        assert not CLASS_NAME.search(lost.detail), lost.detail
    finally:
        await engine.close()
        await proxy.close()


async def test_a_server_shutdown_is_reported_with_the_servers_reason(tmp_path):
    server = await start_server(ServerOptions(port=0, db_path=tmp_path / "server.db"))
    engine = Engine(EngineConfig(server.url, "left", save_token=False, backoff=fast_backoff()))
    events = Events(engine)
    await engine.start()
    try:
        await events.wait_for(entered("lobby"))
        mark = len(events.items)
        await server.close()
        lost = await events.wait_for(left_connected, after=mark)
        assert lost.detail == "server shutting down"
    finally:
        await engine.close()


async def test_a_dropped_link_is_worded_without_class_names(relay_server, tmp_path):
    proxy = JitterProxy("127.0.0.1", relay_server.port, delay_s=0, jitter_s=0)
    await proxy.start()
    engine = Engine(EngineConfig(proxy.url(), "dropped", save_token=False, backoff=fast_backoff()))
    events = Events(engine)
    await engine.start()
    try:
        await events.wait_for(entered("lobby"))
        mark = len(events.items)
        await proxy.close()  # the TCP connection ends without a WebSocket close
        lost = await events.wait_for(left_connected, after=mark)
        assert lost.detail == "the connection dropped"
        gave_up = await events.wait_for(
            lambda e: isinstance(e, m.ConnectionChanged) and e.state is ConnectionState.GAVE_UP, after=mark
        )
        assert "refused" in gave_up.detail and "is the server running" in gave_up.detail
        assert not CLASS_NAME.search(gave_up.detail), gave_up.detail
    finally:
        await engine.close()
        await proxy.close()
