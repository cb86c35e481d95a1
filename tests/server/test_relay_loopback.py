"""The relay over real WebSockets on loopback with a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from pianorhythm.server.core import Limits
from pianorhythm.server.main import RunningServer
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.server import ADMIN_TOKEN, TestClient, answers, start_test_server


def _batch(*events: tuple[int, int, int], base: int = 0) -> pb.NoteBatch:
    return pb.NoteBatch(
        base_time_us=base,
        events=[pb.NoteEvent(offset_us=o, note=pb.Note(key=k, velocity=v)) for o, k, v in events],
    )


async def _in_room(relay_clients, room: str, *names: str) -> list[TestClient]:
    clients = []
    for name in names:
        client = await relay_clients(name)
        await client.act(join_room=pb.JoinRoom(name=room))
        await client.recv("room_state", where=lambda m: m.room_state.name == room)
        clients.append(client)
    return clients


async def test_join_notes_and_leave_with_three_clients(relay_clients) -> None:
    a, b, c = await _in_room(relay_clients, "trio", "a", "b", "c")
    joined = await a.recv("user_joined", where=lambda m: m.user_joined.user.id == c.user_id)
    assert joined.user_joined.user.name == "c"
    await a.act(note_batch=_batch((0, 60, 100), (2_500, 64, 90), (500_000, 60, 0), base=42))
    for listener in (b, c):
        relayed = (await listener.recv("notes")).notes
        assert relayed.user_id == a.user_id and relayed.base_time_us == 42 and relayed.server_receive_us > 0
        assert [(e.offset_us, e.note.key, e.note.velocity) for e in relayed.events] == [
            (0, 60, 100),
            (2_500, 64, 90),
            (500_000, 60, 0),
        ]
    await a.act(ping=pb.Ping(client_send_us=7))  # a marker: anything before the pong was delivered
    await a.recv("pong")
    assert a.take("notes") == []
    await c.close()
    for listener in (a, b):
        left = await listener.recv("user_left")
        assert (left.user_left.user_id, left.user_left.reason) == (c.user_id, pb.LEAVE_REASON_DISCONNECTED)


async def test_pong_echoes_the_client_time_with_server_times(relay_clients) -> None:
    a = await relay_clients("a")
    for i in range(8):
        await a.act(ref=i + 1, ping=pb.Ping(client_send_us=1000 + i))
    pongs = [(await a.recv("pong", where=lambda m, i=i: m.ref == i + 1)).pong for i in range(8)]
    assert [p.client_send_us for p in pongs] == [1000 + i for i in range(8)]
    assert all(p.server_receive_us <= p.server_send_us for p in pongs)
    assert a.take("error") == []


async def test_chat_is_persisted_and_in_history_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    server = await start_test_server(db)
    a = await TestClient.connect(server.url)
    welcome = await a.hello("ann")
    await a.act(join_room=pb.JoinRoom(name="talk"))
    await a.recv("room_state", where=lambda m: m.room_state.name == "talk")
    ids = []
    for i in range(3):
        await a.act(ref=10 + i, chat_send=pb.ChatSend(content=f"line {i}"))
        ids.append((await a.recv("chat_message", where=answers(10 + i))).chat_message.id)
    await a.close()
    await server.close()

    server = await start_test_server(db)
    try:
        b = await TestClient.connect(server.url)
        await b.hello("ignored", token=welcome.resume_token)
        assert b.welcome is not None and b.welcome.resumed and b.user_id == welcome.user.id
        await b.act(join_room=pb.JoinRoom(name="talk"))
        state = (await b.recv("room_state", where=lambda m: m.room_state.name == "talk")).room_state
        assert [m.content for m in state.chat_history] == ["line 0", "line 1", "line 2"]
        await b.act(ref=1, chat_history_request=pb.ChatHistoryRequest(before_id=ids[2], limit=1))
        page = (await b.recv("chat_history_page")).chat_history_page
        assert [m.content for m in page.messages] == ["line 1"] and page.has_more
        await b.act(ref=2, chat_history_request=pb.ChatHistoryRequest(after_id=ids[0]))
        page = (await b.recv("chat_history_page")).chat_history_page
        assert [m.id for m in page.messages] == ids[1:] and not page.has_more
        await b.close()
    finally:
        await server.close()


async def test_typing_and_presence_reach_the_room(relay_clients) -> None:
    a, b = await _in_room(relay_clients, "p", "a", "b")
    await a.act(typing_start=pb.TypingStart())
    assert (await b.recv("typing")).typing.typing
    await a.act(typing_stop=pb.TypingStop())
    assert not (await b.recv("typing")).typing.typing
    await a.act(update_position=pb.UpdatePosition(position=pb.Position(x=1, y=2, z=3)))
    await a.act(update_profile=pb.UpdateProfile(name="Anna", color="#123456"))
    user = (
        await b.recv("user_updated", where=lambda m: m.user_updated.user.name == "Anna")
    ).user_updated.user
    assert (user.position.x, user.position.z, user.color) == (1.0, 3.0, "#123456")


async def test_room_list_subscription_gets_deltas(relay_clients) -> None:
    watcher = await relay_clients("watcher")
    await watcher.act(room_list_subscribe=pb.RoomListSubscribe())
    listing = (await watcher.recv("room_list")).room_list
    assert [r.name for r in listing.rooms] == ["lobby"]
    await _in_room(relay_clients, "hall", "a")

    def names(m: pb.ServerMessage) -> list[str]:
        return [r.name for r in m.room_list_delta.upserted]

    delta = (await watcher.recv("room_list_delta", where=lambda m: "hall" in names(m))).room_list_delta
    hall = [r for r in delta.upserted if r.name == "hall"]
    assert hall and hall[0].member_count == 1 and hall[0].owner_name == "a"


async def test_owner_powers_password_and_crown(relay_clients) -> None:
    owner = await relay_clients("owner")
    change = pb.RoomSettingsChange(password="pw", user_limit=10)
    await owner.act(join_room=pb.JoinRoom(name="vip", settings=change))
    state = (await owner.recv("room_state", where=lambda m: m.room_state.name == "vip")).room_state
    assert state.settings.locked and state.owner_id == owner.user_id
    guest = await relay_clients("guest")
    await guest.act(join_room=pb.JoinRoom(name="vip", password="nope"))
    assert (await guest.recv("error")).error.code == pb.ERROR_CODE_WRONG_PASSWORD
    await guest.act(join_room=pb.JoinRoom(name="vip", password="pw"))
    await guest.recv("room_state", where=lambda m: m.room_state.name == "vip")
    await owner.act(mute_user=pb.MuteUser(user_id=guest.user_id))
    await guest.recv("user_updated", where=lambda m: m.user_updated.user.muted)
    await guest.act(chat_send=pb.ChatSend(content="hello?"))
    assert (await guest.recv("error")).error.code == pb.ERROR_CODE_MUTED
    await owner.act(kick_user=pb.KickUser(user_id=guest.user_id))
    assert (await guest.recv("removed")).removed.reason == pb.REMOVAL_REASON_KICKED
    assert (await guest.recv("room_state")).room_state.is_lobby
    await guest.act(join_room=pb.JoinRoom(name="vip", password="pw"))
    kicked = (await guest.recv("error")).error
    assert kicked.code == pb.ERROR_CODE_BANNED and "kicked" in kicked.message
    await owner.act(unban_user=pb.UnbanUser(name="guest"))  # the owner may lift a kick's cool-down
    assert list((await owner.recv("ban_list")).ban_list.bans) == []
    await guest.act(join_room=pb.JoinRoom(name="vip", password="pw"))
    await guest.recv("room_state", where=lambda m: m.room_state.name == "vip")
    await owner.act(ban_user=pb.BanUser(user_id=guest.user_id, duration_s=60))
    assert (await guest.recv("removed")).removed.reason == pb.REMOVAL_REASON_BANNED
    await guest.act(join_room=pb.JoinRoom(name="vip", password="pw"))
    assert (await guest.recv("error")).error.code == pb.ERROR_CODE_BANNED
    await owner.act(unban_user=pb.UnbanUser(user_id=guest.user_id))
    await guest.act(join_room=pb.JoinRoom(name="vip", password="pw"))
    await guest.recv("room_state", where=lambda m: m.room_state.name == "vip")
    await owner.act(give_ownership=pb.GiveOwnership(user_id=guest.user_id))
    updated = (await guest.recv("room_updated", where=lambda m: m.room_updated.owner_id != 0)).room_updated
    assert updated.owner_id == guest.user_id


async def test_resume_token_restores_identity_and_room_and_replaces_duplicates(
    relay_server, relay_clients
) -> None:
    a, b = await _in_room(relay_clients, "jam", "ann", "bob")
    assert a.welcome is not None
    token = a.welcome.resume_token
    a2 = await relay_clients()
    await a2.act(hello=pb.Hello(name="other", resume_token=token))
    welcome = (await a2.recv("welcome")).welcome
    assert welcome.resumed and welcome.user.id == a.user_id and welcome.user.name == "ann"
    assert (await a2.recv("room_state")).room_state.name == "jam"
    code, reason = await a.closed()
    assert code == 4001 and reason and "replaced" in reason
    left = await b.recv("user_left")
    assert (left.user_left.user_id, left.user_left.reason) == (a.user_id, pb.LEAVE_REASON_REPLACED)
    await b.recv("user_joined", where=lambda m: m.user_joined.user.id == a.user_id)
    await a2.close()
    await b.recv("user_left", where=lambda m: m.user_left.reason == pb.LEAVE_REASON_DISCONNECTED)
    a3 = await relay_clients("again", token=token)
    assert a3.user_id == a.user_id
    await a3.act(join_room=pb.JoinRoom(name="jam"))  # already there after the resume: answered with the state
    assert (await a3.recv("room_state")).room_state.name == "jam"


async def test_anything_before_hello_gets_hello_required(relay_clients) -> None:
    client = await relay_clients()
    await client.act(ref=3, join_room=pb.JoinRoom(name="x"))
    error = await client.recv("error")
    assert (error.ref, error.error.code, error.error.message) == (
        3,
        pb.ERROR_CODE_HELLO_REQUIRED,
        "hello required",
    )


async def test_no_hello_closes_the_connection(tmp_path: Path) -> None:
    server = await start_test_server(tmp_path / "db", hello_timeout=0.3)
    try:
        client = await TestClient.connect(server.url)
        code, _ = await client.closed(timeout=3)
        assert code == 1008
    finally:
        await server.close()


async def test_note_burst_past_600_is_cut(relay_clients) -> None:
    a, b = await _in_room(relay_clients, "burst", "a", "b")
    frame = codec.encode_batch([pb.ClientMessage(note_batch=_batch(*[(0, 60, 1)] * 50)) for _ in range(20)])
    await a.send(frame)  # 1000 events in one frame, at one instant
    await a.act(ping=pb.Ping())
    await a.recv("pong")
    errors = a.take("error")
    assert [e.error.code for e in errors] == [pb.ERROR_CODE_RATE_LIMITED]
    await b.pump(0.3)
    assert sum(len(m.notes.events) for m in b.take("notes")) == 600


async def test_oversized_frame_closes_with_1009(relay_clients) -> None:
    a = await relay_clients("a")
    await a.send(b"\x00" + b"\x01" * (64 * 1024 + 1))  # one byte over the cap (the flag byte aside)
    code, _ = await a.closed()
    assert code == 1009


async def test_garbage_frames_are_answered_and_survived(relay_clients) -> None:
    a, b = await _in_room(relay_clients, "g", "a", "b")
    garbage: list[bytes | str] = [b"", b"\x80junk", b"\x01not-lz4", b"\x00\xff\xff\xff", "text"]
    for frame in garbage:
        await a.ws.send(frame)
    codes = [(await a.recv("error")).error for _ in garbage]
    assert [e.code for e in codes] == [
        pb.ERROR_CODE_EMPTY_FRAME,
        pb.ERROR_CODE_UNKNOWN_FLAGS,
        pb.ERROR_CODE_CORRUPT_COMPRESSION,
        pb.ERROR_CODE_BAD_PROTOBUF,
        pb.ERROR_CODE_EMPTY_FRAME,
    ]
    assert all(e.message.startswith("bad frame: ") for e in codes)
    await a.act(note_batch=_batch((0, 60, 1)))
    await b.recv("notes")
    for _ in range(5):
        await a.ws.send(b"\x80")
    code, _ = await a.closed()
    assert code == 1002


async def test_admin_commands(relay_clients) -> None:
    a, b = await _in_room(relay_clients, "adm", "a", "b")
    await a.act(server_command=pb.ServerCommand(name="stats", admin_token="wrong"))
    assert (await a.recv("error")).error.code == pb.ERROR_CODE_FORBIDDEN
    await a.act(server_command=pb.ServerCommand(name="stats", admin_token=ADMIN_TOKEN))
    stats = json.loads((await a.recv("command_result")).command_result.output)
    assert stats["connections"] == 2
    await a.act(
        server_command=pb.ServerCommand(name="broadcast", args=["hello", "all"], admin_token=ADMIN_TOKEN)
    )
    assert (await b.recv("chat_message")).chat_message.content == "hello all"
    await a.act(server_command=pb.ServerCommand(name="nope", admin_token=ADMIN_TOKEN))
    assert (await a.recv("error")).error.code == pb.ERROR_CODE_UNKNOWN_COMMAND


async def test_healthz_and_wrong_path(relay_server: RunningServer, relay_clients) -> None:
    await relay_clients("a")
    url = f"http://127.0.0.1:{relay_server.port}/healthz"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=3).read())
    health = json.loads(body)
    assert health["connections"] == 1 and health["rooms"] == 1 and health["uptime_s"] >= 0
    with pytest.raises(Exception, match="404"):
        await TestClient.connect(f"ws://127.0.0.1:{relay_server.port}/elsewhere")


async def test_healthz_sends_one_content_type_json(relay_server: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay_server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    head, _, body = (await asyncio.wait_for(reader.read(), 5)).partition(b"\r\n\r\n")
    writer.close()
    status, *lines = head.decode().split("\r\n")
    assert status.startswith("HTTP/1.1 200")
    fields = (line.partition(":") for line in lines)
    types = [value.strip() for name, _, value in fields if name.lower() == "content-type"]
    assert types == ["application/json"]
    assert json.loads(body)["status"] == "ok"


async def test_connections_per_ip_are_capped(tmp_path: Path) -> None:
    server = await start_test_server(tmp_path / "db", max_connections_per_ip=2)
    clients = []
    try:
        for _ in range(2):
            clients.append(await TestClient.connect(server.url))
        await clients[0].act(ping=pb.Ping())  # the handshakes are complete and counted
        await clients[0].recv("error")
        with pytest.raises(Exception, match="429"):
            await TestClient.connect(server.url)
    finally:
        for client in clients:
            await client.close()
        await server.close()


async def test_close_tells_every_client_1001(tmp_path: Path) -> None:
    server = await start_test_server(tmp_path / "db")
    a = await TestClient.connect(server.url)
    await a.hello("a")
    await server.close()
    code, reason = await a.closed()
    assert (code, reason) == (1001, "server shutting down")
    with pytest.raises((ConnectionClosed, OSError)):
        await TestClient.connect(server.url)


async def test_a_dead_peer_is_cleaned_up_by_the_heartbeat(tmp_path: Path) -> None:
    server = await start_test_server(tmp_path / "db", ping_interval=0.2, ping_timeout=0.3)
    a = await TestClient.connect(server.url)
    b = await TestClient.connect(server.url)
    try:
        await a.hello("a")
        await b.hello("b")
        await a.recv("user_joined")
        b.ws.transport.pause_reading()  # b stops answering pings, as a vanished peer would
        left = await a.recv("user_left", timeout=5)
        assert (left.user_left.user_id, left.user_left.reason) == (b.user_id, pb.LEAVE_REASON_DISCONNECTED)
    finally:
        await a.close()
        b.ws.transport.abort()
        await server.close()


async def test_a_client_that_stops_reading_is_disconnected_as_slow(tmp_path: Path) -> None:
    generous = Limits(other_rate=10_000, other_burst=10_000, chat_messages=100, chat_window_s=1)
    server = await start_test_server(tmp_path / "db", max_queue_bytes=256 * 1024, limits=generous)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    a = await TestClient.connect(server.url)
    slow = await TestClient.connect(server.url, sock=sock)
    try:
        await a.hello("a")
        await slow.hello("slow")
        await a.recv("user_joined")
        for i in range(50):  # random text, so that the lz4 frame flag cannot shrink the pages
            await a.act(ref=i + 1, chat_send=pb.ChatSend(content=secrets.token_urlsafe(375)))
        await a.recv("chat_message", where=lambda m: m.ref == 50)
        slow.ws.transport.pause_reading()
        for _ in range(400):  # each answer is a page of 50 lines of 500 characters
            await slow.act(chat_history_request=pb.ChatHistoryRequest())
        for _ in range(50):
            await slow.act(chat_history_request=pb.ChatHistoryRequest())
            with contextlib.suppress(TimeoutError):
                left = await a.recv("user_left", timeout=0.1)
                break
        else:
            raise AssertionError("the slow client was never disconnected")
        assert (left.user_left.user_id, left.user_left.reason) == (slow.user_id, pb.LEAVE_REASON_SLOW)
    finally:
        await a.close()
        slow.ws.transport.abort()
        await server.close()


async def test_a_new_user_id_that_cannot_be_had_is_an_error_and_the_connection_stays(tmp_path: Path) -> None:
    """The directory leases user ids from a table; while the real SQLite file cannot give one, a Hello that
    would create a user is answered ERROR_CODE_INTERNAL, the connection stays, and a later Hello works."""
    db = tmp_path / "ids.db"
    server = await start_test_server(db)
    try:
        with contextlib.closing(sqlite3.connect(db)) as other:
            other.execute("ALTER TABLE counters RENAME TO counters_away")
        client = await TestClient.connect(server.url)
        await client.act(ref=3, hello=pb.Hello(name="ann", client_version="tests"))
        error = (await client.recv("error")).error
        assert error.code == pb.ERROR_CODE_INTERNAL and "try again" in error.message
        with contextlib.closing(sqlite3.connect(db)) as other:
            other.execute("ALTER TABLE counters_away RENAME TO counters")
        welcome = await client.hello("ann")
        assert welcome.user.id == 1 and welcome.user.name == "ann"
        await client.close()
    finally:
        await server.close()


async def test_chat_that_cannot_be_stored_is_an_error_and_sent_to_nobody(tmp_path: Path) -> None:
    """A line is numbered where it is stored: while the real SQLite file cannot store it, its sender is told
    to try again (ERROR_CODE_INTERNAL), nobody gets it, it is not recent chat; once it can, chat goes on."""
    db = tmp_path / "chat.db"
    server = await start_test_server(db)
    try:
        ann, bob = await TestClient.connect(server.url), await TestClient.connect(server.url)
        await ann.hello("ann")
        await bob.hello("bob")
        await ann.pump(0.2)
        with contextlib.closing(sqlite3.connect(db)) as other:
            other.execute("ALTER TABLE chat RENAME TO chat_away")
        await ann.act(ref=4, chat_send=pb.ChatSend(content="lost"))
        error = (await ann.recv("error", where=answers(4))).error
        assert error.code == pb.ERROR_CODE_INTERNAL and "try again" in error.message
        with contextlib.closing(sqlite3.connect(db)) as other:
            other.execute("ALTER TABLE chat_away RENAME TO chat")
        await ann.act(ref=5, chat_send=pb.ChatSend(content="kept"))
        mine = (await ann.recv("chat_message", where=answers(5))).chat_message
        theirs = (await bob.recv("chat_message")).chat_message
        assert mine == theirs and (mine.id, mine.content) == (1, "kept")  # the lost line took no id
        await bob.pump(0.2)
        assert bob.take("chat_message") == []  # "lost" never came
        cy = await TestClient.connect(server.url)
        await cy.act(hello=pb.Hello(name="cy", client_version="tests"))
        lobby = (await cy.recv("room_state")).room_state
        assert [c.content for c in lobby.chat_history] == ["kept"]
        for client in (ann, bob, cy):
            await client.close()
    finally:
        await server.close()
