"""Two real relay processes on one real redis-server: identity, one connection per user, chat history and
the per-address cap hold across nodes; a node that cannot join Redis refuses to start, in one sentence."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.nodes import SECRET, health, relay_nodes
from tests.fixtures.redis import RedisServer
from tests.fixtures.relay_process import REPO, connect_from
from tests.fixtures.server import TestClient, answers

CLI = (sys.executable, "-m", "pianorhythm.tui.cli", "--server", "--port", "0")


async def _run(*args: str) -> tuple[int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, [line for line in err.decode().splitlines() if line.strip()]


async def test_a_node_without_its_redis_or_flags_refuses_to_start_in_one_sentence(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    code, lines = await _run("--redis", "redis://127.0.0.1:1/0", "--node-id", "a", "--secret", "s")
    assert code != 0 and len(lines) == 1
    assert "Could not reach Redis at redis://127.0.0.1:1/0" in lines[0] and "start redis-server" in lines[0]
    code, lines = await _run("--redis", redis_server.url, "--secret", "s")
    assert code != 0 and "--redis needs --node-id NAME" in lines[-1]
    code, lines = await _run("--redis", redis_server.url, "--node-id", "a")
    assert code != 0 and "--redis needs --secret SECRET" in lines[-1]
    code, lines = await _run("--node-id", "a", "--secret", "s")
    assert code != 0 and "use it with --redis" in lines[-1]
    code, lines = await _run("--redis", redis_server.url, "--node-id", "a", "--secret", "s", "--db", "x.db")
    assert code != 0 and "drop --db" in lines[-1]
    async with relay_nodes(tmp_path, redis_server.url, "a"):
        code, lines = await _run("--redis", redis_server.url, "--node-id", "a", "--secret", SECRET)
        assert code != 0 and len(lines) == 1 and "give each node its own --node-id" in lines[0]


async def test_healthz_names_the_node_and_the_link_and_a_clean_stop_leaves_the_node_list(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        async with relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b):
            assert {k: (await asyncio.to_thread(health, a))[k] for k in ("node_id", "redis")} == {
                "node_id": "a",
                "redis": "up",
            }
            ann = await TestClient.connect(a.url)
            welcome = await ann.hello("ann")
            assert await _eventually(lambda: redis.get(f"pr:online:{welcome.user.id}")) == b"a"
            assert await a.stop() == 0
            assert await redis.smembers("pr:nodes") == {b"b"}
            assert await redis.get(f"pr:online:{welcome.user.id}") is None
            assert (await asyncio.to_thread(health, b))["node_id"] == "b"
    finally:
        await redis.aclose()


async def test_a_player_who_reconnects_to_the_other_node_keeps_their_identity(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b):
        ann = await TestClient.connect(a.url)
        first = await ann.hello("ann", color="#123456")
        await ann.close()
        again = await TestClient.connect(b.url)
        welcome = await again.hello("someone-else", token=first.resume_token)
        assert welcome.resumed
        assert (welcome.user.id, welcome.user.name, welcome.user.color) == (first.user.id, "ann", "#123456")
        newcomer = await TestClient.connect(b.url)
        assert (await newcomer.hello("bob")).user.id not in (0, first.user.id)
        for client in (again, newcomer):
            await client.close()


async def test_a_second_connection_of_a_user_on_the_other_node_replaces_the_first(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b):
        ann = await TestClient.connect(a.url)
        first = await ann.hello("ann")
        second = await TestClient.connect(b.url)
        assert (await second.hello("ann", token=first.resume_token)).user.id == first.user.id
        code, reason = await ann.closed(timeout=10)
        assert code == 4001 and reason and "replaced" in reason
        await second.act(ref=7, chat_send=pb.ChatSend(content="still here"))
        assert (await second.recv("chat_message", where=answers(7))).chat_message.content == "still here"
        await second.close()


async def _eventually(read: Callable[[], Awaitable[object]], seconds: float = 5.0) -> object:
    """What `read` gives once it gives something (a node marks a user online just after its Welcome)."""
    for _ in range(int(seconds * 20)):
        if (value := await read()) is not None:
            return value
        await asyncio.sleep(0.05)
    return None


async def _say(client: TestClient, ref: int, content: str) -> pb.ChatMessage:
    await client.act(ref=ref, chat_send=pb.ChatSend(content=content))
    return (await client.recv("chat_message", timeout=5, where=answers(ref))).chat_message


async def _history(client: TestClient, ref: int) -> list[tuple[int, str, str]]:
    await client.act(ref=ref, chat_history_request=pb.ChatHistoryRequest(limit=50))
    page = (await client.recv("chat_history_page", timeout=5, where=answers(ref))).chat_history_page
    return [(m.id, m.user_name, m.content) for m in page.messages]


async def test_chat_history_is_the_same_from_either_node(redis_server: RedisServer, tmp_path: Path) -> None:
    admin = ("--admin-token", "tests-admin")
    async with relay_nodes(tmp_path, redis_server.url, "a", "b", extra=admin) as (a, b):
        ann = await TestClient.connect(a.url)
        await ann.hello("ann")
        bob = await TestClient.connect(b.url)
        await bob.hello("bob")
        said = [await _say(ann, 1, "one"), await _say(bob, 2, "two")]
        notice = pb.ServerCommand(name="broadcast", args=["hello", "all"], admin_token="tests-admin")
        await bob.act(ref=9, server_command=notice)
        assert (await bob.recv("command_result", timeout=5, where=answers(9))).command_result.ok
        said.append(
            (await bob.recv("chat_message", timeout=5, where=lambda m: m.chat_message.system)).chat_message
        )
        said.append(await _say(ann, 3, "three"))
        assert [m.id for m in said] == sorted({m.id for m in said})  # ids increase across nodes
        assert said[2].content == "hello all"
        expected = [(m.id, m.user_name, m.content) for m in said]
        assert await _history(ann, 4) == expected
        assert await _history(bob, 5) == expected
        for client in (ann, bob):
            await client.close()


async def test_chat_sent_at_once_by_many_players_on_a_node_is_all_stored_in_id_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with relay_nodes(tmp_path, redis_server.url, "a") as (a,):
        players = [await TestClient.connect(a.url) for _ in range(8)]
        for index, player in enumerate(players):
            await player.hello(f"p{index}")
        for line in range(4):  # the chat rate limit allows 4 at once
            for index, player in enumerate(players):
                await player.act(ref=10 + line, chat_send=pb.ChatSend(content=f"{index}.{line}"))
        acked = [
            (await player.recv("chat_message", timeout=10, where=answers(10 + line))).chat_message
            for player in players
            for line in range(4)
        ]
        history = await _history(players[0], 99)
        assert len(history) == 32 and [i for i, _, _ in history] == sorted(m.id for m in acked)
        for player in players:
            await player.close()


async def test_the_cap_on_connections_per_address_holds_across_nodes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    cap = ("--max-connections-per-ip", "2")
    async with relay_nodes(tmp_path, redis_server.url, "a", "b", extra=cap) as (a, b):
        on_a = await connect_from(a.url, "127.0.0.7", hello="ann")
        on_b = await connect_from(b.url, "127.0.0.7", hello="bob")
        third = await connect_from(a.url, "127.0.0.7")
        code, reason = await third.closed(timeout=10)
        assert code == 1008 and reason == "Too many connections from your address."
        other = await connect_from(a.url, "127.0.0.8", hello="cat")  # another address is not affected
        await on_b.close()
        await asyncio.sleep(0.5)  # the closed connection is uncounted in Redis after it closed
        fourth = await connect_from(a.url, "127.0.0.7", hello="dan")
        assert fourth.welcome is not None
        for client in (on_a, other, fourth):
            await client.close()


async def test_a_killed_nodes_connections_stop_counting_against_their_address(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    cap = ("--max-connections-per-ip", "1")
    async with relay_nodes(tmp_path, redis_server.url, "a", "b", extra=cap) as (a, b):
        await connect_from(a.url, "127.0.0.9", hello="ann")
        refused = await connect_from(b.url, "127.0.0.9")
        assert (await refused.closed(timeout=10))[0] == 1008
        await a.stop(signal.SIGKILL)
        for _ in range(300):  # the node's presence lapses (10 s), then a survivor's beat (every 3 s) sees it
            client = await connect_from(b.url, "127.0.0.9")
            try:
                await client.hello("bob")
            except ConnectionClosed:
                await asyncio.sleep(0.1)
                continue
            await client.close()
            break
        else:
            raise AssertionError("the killed node's connection still counted after 30 s")
        assert b.logged("node 'a' stopped refreshing its presence")


async def test_while_redis_is_down_a_nodes_rooms_play_on_and_players_hear_chat_may_be_missing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with relay_nodes(tmp_path, redis_server.url, "a") as (a,):
        ann = await TestClient.connect(a.url)
        await ann.hello("ann")
        bob = await TestClient.connect(a.url)
        await bob.hello("bob")
        for player in (ann, bob):
            await player.act(join_room=pb.JoinRoom(name="den"))
            await player.recv("room_state", where=lambda m: m.room_state.name == "den")
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGKILL)
        redis_server.process.wait()
        redis_server.process = None
        for _ in range(100):
            if (await asyncio.to_thread(health, a))["redis"] == "down":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("/healthz never said the Redis link was down")
        # The room on this node keeps working meanwhile: ann's notes reach bob.
        for key in range(60, 65):
            note = pb.NoteEvent(offset_us=0, note=pb.Note(key=key, velocity=90))
            await ann.act(note_batch=pb.NoteBatch(base_time_us=0, events=[note]))
        heard = [(await bob.recv("notes", timeout=5)).notes.events[0].note.key for _ in range(5)]
        assert heard == list(range(60, 65))
        await ann.act(ref=1, chat_send=pb.ChatSend(content="lost?"))
        error = (await ann.recv("error", timeout=10, where=answers(1))).error
        assert error.code == pb.ERROR_CODE_INTERNAL  # not acknowledged: it is not in the stream
        redis_server.start()
        notice = (
            await ann.recv("chat_message", timeout=15, where=lambda m: m.chat_message.system)
        ).chat_message
        assert "may be missing" in notice.content
        assert (await asyncio.to_thread(health, a))["redis"] == "up"
        assert (await _say(ann, 2, "back")).content == "back"
        assert [c for _, _, c in await _history(ann, 3)] == ["back"]
        await ann.close()
        await bob.close()
