"""The relay's own WebSocket layer (server/ws.py: websockets' sans-I/O ServerProtocol on our transport),
on loopback, for what the other relay suites do not reach: fragmented and text messages, a client that
never finishes the closing handshake, a handshake cut short by shutdown, HTTP answers and headers.
The handshake, 1009, 1001, the hello timeout, the keepalive timeout and slow readers are held in
test_relay_loopback.py, test_relay_frame_cap.py and the adversarial suites.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

from pianorhythm import __version__
from pianorhythm.server.main import RunningServer
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.server import TestClient, start_test_server


def _upgrade(port: int, path: str = "/api/websocket") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def _read_to_end(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it ends the connection (EOF or reset)."""
    data = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


async def _sockets(server: RunningServer) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    response = await _read_to_end(reader, 5)
    writer.close()
    return int(json.loads(response.split(b"\r\n\r\n", 1)[1])["sockets"])


async def test_a_fragmented_message_is_put_back_together(relay_server: RunningServer) -> None:
    client = await TestClient.connect(relay_server.url)
    try:
        hello = codec.encode(pb.ClientMessage(hello=pb.Hello(name="frag", client_version="tests")))
        await client.ws.send([hello[:3], hello[3:7], hello[7:]])  # one message in three frames
        welcome = await client.recv("welcome")
        assert welcome.welcome.user.name == "frag"
    finally:
        await client.close()


async def test_invalid_utf8_in_a_text_message_closes_with_1007(relay_server: RunningServer) -> None:
    client = await TestClient.connect(relay_server.url)
    await client.ws.send(b"\xff\xfe", text=True)
    code, _ = await client.closed()
    assert code == 1007


async def test_a_client_that_never_answers_the_close_is_dropped_after_close_timeout(tmp_path: Path) -> None:
    server = await start_test_server(tmp_path / "db", hello_timeout=0.2, close_timeout=0.5)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(_upgrade(server.port))
        # No hello: the relay closes with 1008; this client never answers the close frame.
        received = await _read_to_end(reader, 5)
        head, frames = received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101")
        assert frames[:1] == b"\x88"  # a close frame (FIN + opcode 8) ...
        assert int.from_bytes(frames[2:4], "big") == 1008  # ... with 1008, then the socket ended
        writer.close()
        assert await _sockets(server) == 0
    finally:
        await server.close()


async def test_shutdown_ends_a_connection_still_in_its_handshake(tmp_path: Path) -> None:
    server = await start_test_server(tmp_path / "db")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /api/websocket HTTP/1.1\r\n")  # a request never finished
    await asyncio.sleep(0.1)
    await asyncio.wait_for(server.close(), 5)  # not held for the 10 s handshake timeout
    assert await _read_to_end(reader, 5) == b""
    writer.close()


async def test_http_answers_carry_the_server_header_and_unknown_paths_get_404(
    relay_server: RunningServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay_server.port)
    writer.write(_upgrade(relay_server.port, "/elsewhere"))
    response = await _read_to_end(reader, 5)
    writer.close()
    head, body = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 404")
    assert f"Server: pianorhythm-tui/{__version__}".encode() in head
    assert body == b"Not found: the WebSocket endpoint is /api/websocket\n"


async def test_a_websocket_upgrade_offering_compression_gets_none(relay_server: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay_server.port)
    request = _upgrade(relay_server.port).replace(
        b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    )
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 101")
    assert b"sec-websocket-extensions" not in head.lower()
    assert f"Server: pianorhythm-tui/{__version__}".encode() in head
