"""The frame cap, end to end on loopback: client and server agree on it (the flag byte included), and a
server message that cannot fit it becomes a typed error without losing anything else queued.

Figures held: a payload of exactly 65,536 bytes goes both ways (raw client and ClientSession); 65,537 is
refused (1009 from the WebSocket layer for a raw frame, FRAME_TOO_LARGE for an LZ4 frame, and the
connection survives); an oversized server message among good ones: 2/2 good ones arrive, one
FRAME_TOO_LARGE error with the request's ref, one ERROR log line naming the kind and size.
"""

from __future__ import annotations

import logging

import lz4.frame
import pytest

from pianorhythm.server.main import RunningServer
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.server import TestClient
from tests.tui.test_session_relay import open_session

CAP = codec.DEFAULT_MAX_PAYLOAD


def incompressible(count: int) -> str:
    """`count` distinct four-byte characters in a row: no 4-byte sequence repeats, so LZ4 cannot shrink it."""
    return "".join(chr(0x10000 + i) for i in range(count))


def sized(build: type[pb.ServerMessage] | type[pb.ClientMessage], size: int, **fields: object) -> bytes:
    """The serialized envelope of exactly `size` bytes: `fields` plus a text padded to fit.

    `fields` names the one text-bearing action/event, e.g. command_result=... ; the text goes in `output`
    or `content`.
    """
    ((name, make),) = fields.items()
    for pad in range(8):
        for count in range((size - 16) // 4 - 2, (size - 16) // 4 + 3):
            text = incompressible(count) + "a" * pad
            message = build(ref=77, **{name: make(text)})  # type: ignore[operator]
            data: bytes = message.SerializeToString()
            if len(data) == size:
                return data
    raise AssertionError(f"no {size}-byte {name}")


def server_message(size: int) -> bytes:
    return sized(pb.ServerMessage, size, command_result=lambda t: pb.CommandResult(ok=True, output=t))


def chat_message(size: int) -> bytes:
    return sized(pb.ClientMessage, size, chat_send=lambda t: pb.ChatSend(content=t))


def good(n: int) -> bytes:
    return pb.ServerMessage(command_result=pb.CommandResult(ok=True, output=f"good {n}")).SerializeToString()


def session_id(server: RunningServer, user_id: int) -> int:
    return server.shell.core.state.by_user[user_id].id


async def strict_client(server: RunningServer, name: str) -> TestClient:
    """A raw client held to the same limits as ClientSession (frame and payload caps)."""
    client = await TestClient.connect(server.url, max_size=codec.frame_bytes(CAP))
    await client.hello(name)
    return client


# -- the outbox: nothing dropped silently ------------------------------------------------------------


async def test_an_oversized_message_becomes_a_typed_error_and_nothing_else_is_lost(
    relay_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    a = await strict_client(relay_server, "a")
    sid = session_id(relay_server, a.user_id)
    mailer = relay_server.shell.mailer
    oversized = server_message(CAP + 1000)
    with caplog.at_level(logging.ERROR, logger="pianorhythm.server.outbox"):
        for payload in (good(1), oversized, good(2)):  # one loop turn: one flush, one batch
            mailer.send((sid,), payload)
        await a.pump(0.3)
    kinds = [(m.WhichOneof("event"), m.ref) for m in a.backlog]
    assert kinds == [("command_result", 0), ("error", 77), ("command_result", 0)]
    assert [m.command_result.output for m in a.backlog if m.HasField("command_result")] == [
        "good 1",
        "good 2",
    ]
    error = a.backlog[1].error
    assert error.code == pb.ERROR_CODE_FRAME_TOO_LARGE
    assert "command_result" in error.message and str(CAP + 1000) in error.message
    [record] = [r for r in caplog.records if r.name == "pianorhythm.server.outbox"]
    assert record.levelno == logging.ERROR
    assert "command_result" in record.getMessage() and str(CAP + 1000) in record.getMessage()
    await a.act(ref=3, ping=pb.Ping(client_send_us=1))  # and the connection carries on
    assert (await a.recv("pong")).ref == 3


async def test_an_oversized_message_to_a_crowd_is_logged_once(
    relay_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    clients = [await strict_client(relay_server, f"c{i}") for i in range(3)]
    targets = [session_id(relay_server, c.user_id) for c in clients]
    with caplog.at_level(logging.ERROR, logger="pianorhythm.server.outbox"):
        relay_server.shell.mailer.send(targets, server_message(CAP + 1))
        for client in clients:
            assert (await client.recv("error")).error.code == pb.ERROR_CODE_FRAME_TOO_LARGE
    assert len([r for r in caplog.records if r.name == "pianorhythm.server.outbox"]) == 1
    assert "3 client(s)" in caplog.records[-1].getMessage()


# -- client and server agree on the cap --------------------------------------------------------------


async def test_a_client_payload_exactly_at_the_cap_reaches_the_core(relay_server: RunningServer) -> None:
    a = await strict_client(relay_server, "a")
    payload = chat_message(CAP)
    await a.send(b"\x00" + payload)  # uncompressed: a WebSocket message of cap + 1 bytes
    error = await a.recv("error", where=lambda m: m.ref == 77)
    assert error.error.code == pb.ERROR_CODE_INVALID_ARGUMENT  # the core read it: too long for chat
    assert "500 characters" in error.error.message


async def test_a_raw_client_frame_one_byte_over_the_cap_is_closed_with_1009(
    relay_server: RunningServer,
) -> None:
    a = await strict_client(relay_server, "a")
    await a.send(b"\x00" + chat_message(CAP + 1))
    code, _ = await a.closed()
    assert code == 1009


async def test_an_lz4_client_frame_over_the_cap_is_refused_and_the_connection_survives(
    relay_server: RunningServer,
) -> None:
    a = await strict_client(relay_server, "a")
    payload = pb.ClientMessage(ref=5, chat_send=pb.ChatSend(content="a" * (CAP + 1))).SerializeToString()
    await a.send(bytes([codec.FLAG_LZ4]) + lz4.frame.compress(payload, store_size=False))
    error = await a.recv("error")
    assert error.error.code == pb.ERROR_CODE_FRAME_TOO_LARGE
    await a.act(ref=6, ping=pb.Ping(client_send_us=1))
    assert (await a.recv("pong")).ref == 6


async def test_server_payloads_at_the_cap_reach_a_client_session_and_one_over_is_an_error(
    relay_server: RunningServer,
) -> None:
    session, inbox = await open_session(relay_server.url, "ann")
    try:
        await inbox.wait_for(lambda m: m.HasField("room_state"))
        sid = session_id(relay_server, session.user_id)
        at_cap = server_message(CAP)
        assert len(codec.frame_payload(at_cap)) == CAP + 1  # incompressible: sent as is, with the flag
        relay_server.shell.mailer.send((sid,), at_cap)
        got = await inbox.wait_for(lambda m: m.HasField("command_result"))
        assert got.SerializeToString() == at_cap
        relay_server.shell.mailer.send((sid,), server_message(CAP + 1))
        relay_server.shell.mailer.send((sid,), good(3))
        error = await inbox.wait_for(lambda m: m.HasField("error"))
        assert (error.error.code, error.ref) == (pb.ERROR_CODE_FRAME_TOO_LARGE, 77)
        await inbox.wait_for(lambda m: m.HasField("command_result") and m.command_result.output == "good 3")
        assert session.connected
    finally:
        await session.close()


async def test_a_client_session_sends_a_payload_at_the_cap_and_refuses_one_over(
    relay_server: RunningServer,
) -> None:
    session, inbox = await open_session(relay_server.url, "ann")
    try:
        message = pb.ClientMessage.FromString(chat_message(CAP))
        assert len(codec.encode(message)) == CAP + 1  # LZ4 cannot shrink it
        assert session.send(message)
        error = await inbox.wait_for(lambda m: m.HasField("error") and m.ref == 77)
        assert error.error.code == pb.ERROR_CODE_INVALID_ARGUMENT  # read by the core, not cut by the socket
        with pytest.raises(codec.ProtocolError) as caught:
            session.send(pb.ClientMessage.FromString(chat_message(CAP + 1)))
        assert caught.value.code == pb.ERROR_CODE_FRAME_TOO_LARGE
        assert session.send(pb.ClientMessage(ref=9, ping=pb.Ping(client_send_us=1)))
        assert session.connected
    finally:
        await session.close()
