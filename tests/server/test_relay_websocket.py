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
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

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


def _client_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A final, masked client frame (RFC 6455 5.2), built by hand to control how frames share writes."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x80 | opcode]) + (
        bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _server_frames(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    """The next `count` server frames (unmasked) as (opcode, payload)."""
    frames: list[tuple[int, bytes]] = []
    async with asyncio.timeout(5):
        while len(frames) < count:
            head = await reader.readexactly(2)
            size = head[1] & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2), "big")
            frames.append((head[0] & 0x0F, await reader.readexactly(size)))
    return frames


async def test_frames_together_split_or_beside_a_control_frame_are_each_read_once_in_order(
    relay_server: RunningServer,
) -> None:
    """However the bytes of several frames fall into reads (together, split, beside a control frame),
    every message arrives once and in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay_server.port)
    try:
        writer.write(_upgrade(relay_server.port))
        async with asyncio.timeout(5):
            assert b" 101 " in await reader.readuntil(b"\r\n\r\n")

        def ping(ref: int) -> bytes:
            return _client_frame(codec.encode(pb.ClientMessage(ref=ref, ping=pb.Ping(client_send_us=ref))))

        hello = pb.ClientMessage(hello=pb.Hello(name="frames", client_version="tests" + "x" * 120))
        writer.write(_client_frame(codec.encode(hello)))  # a 16-bit length
        writer.write(ping(1) + ping(2))  # two in one write
        split = ping(3)
        writer.write(split[:5])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(split[5:] + ping(4))  # the end of one, then a whole one
        writer.write(_client_frame(b"live", opcode=0x9) + ping(5))  # a WebSocket ping beside a message
        await writer.drain()
        refs: list[int] = []
        pongs: list[bytes] = []
        while len(refs) < 5:
            for opcode, payload in await _server_frames(reader, 1):
                if opcode == 0xA:
                    pongs.append(payload)
                    continue
                assert opcode == 0x2
                refs += [m.ref for m in codec.decode_server(payload) if m.WhichOneof("event") == "pong"]
        assert refs == [1, 2, 3, 4, 5]
        assert pongs == [b"live"]
    finally:
        writer.close()


def _notes(base_time_us: int) -> pb.ClientMessage:
    event = pb.NoteEvent(offset_us=0, note=pb.Note(key=60, velocity=100))
    return pb.ClientMessage(note_batch=pb.NoteBatch(base_time_us=base_time_us, events=[event]))


async def test_a_note_behind_a_message_still_being_handled_waits_its_turn(
    relay_server: RunningServer, relay_clients: Callable[..., Awaitable[TestClient]]
) -> None:
    """Notes and pings are handled as their bytes are read (server/ws.py `on_message`), unless a message
    before them is still queued or being handled: one write holds a note in the lobby, a JoinRoom (which
    the handler takes) and a second note, which must reach the room joined, not the lobby."""
    lobby = await relay_clients("lobbyist")
    ann = await relay_clients("ann")
    await ann.act(join_room=pb.JoinRoom(name="stage"))
    await ann.recv("room_state")
    reader, writer = await asyncio.open_connection("127.0.0.1", relay_server.port)
    try:
        writer.write(_upgrade(relay_server.port))
        async with asyncio.timeout(5):
            assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        hello = pb.ClientMessage(hello=pb.Hello(name="bob", client_version="tests"))
        writer.write(_client_frame(codec.encode(hello)) + _client_frame(codec.encode(pb.ClientMessage(
            ref=7, ping=pb.Ping(client_send_us=1)))))  # fmt: skip
        seen: list[str] = []
        while "pong" not in seen:  # answered: bob's handler is back waiting for a message
            for _opcode, payload in await _server_frames(reader, 1):
                seen += [str(m.WhichOneof("event")) for m in codec.decode_server(payload)]
        join = pb.ClientMessage(join_room=pb.JoinRoom(name="stage"))
        writer.write(b"".join(_client_frame(codec.encode(m)) for m in (_notes(111), join, _notes(222))))
        to_lobby = await lobby.recv("notes")
        to_stage = await ann.recv("notes")
        assert to_lobby.notes.base_time_us == 111 and to_stage.notes.base_time_us == 222
        await lobby.pump(0.3)
        await ann.pump(0.3)
        assert lobby.take("notes") == [] and ann.take("notes") == []
    finally:
        writer.close()


async def test_a_note_that_fails_in_the_relay_closes_its_connection_with_1011(
    relay_server: RunningServer,
    relay_clients: Callable[..., Awaitable[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug met while handling a note where it is read ends that connection as one in the handler does
    (1011, logged), and the relay goes on serving the others."""
    ann = await relay_clients("ann")
    bob = await relay_clients("bob")
    core = relay_server.shell.core
    handle = core.handle

    def failing(session_id: int, msg: pb.ClientMessage, now: int, *rest: Any) -> list[Any]:
        if msg.WhichOneof("action") == "note_batch":
            raise RuntimeError("a bug in the relay")
        return handle(session_id, msg, now, *rest)

    monkeypatch.setattr(core, "handle", failing)
    await ann.act(ref=1, ping=pb.Ping(client_send_us=1))
    await ann.recv("pong")  # ann's handler is back waiting: the note is taken where it is read
    with caplog.at_level(logging.ERROR, logger="pianorhythm.server.ws"):
        await ann.send(_notes(5))
        code, _ = await ann.closed()
    assert code == 1011
    assert "connection handler failed" in caplog.text and "a bug in the relay" in caplog.text
    await bob.act(ref=2, ping=pb.Ping(client_send_us=2))
    assert (await bob.recv("pong")).ref == 2
