"""Attacks on access control against a real relay process: password guessing from 80 connections, a banned
user who drops their identity, names that pass for the server or for another member. Attackers connect
from 127.0.0.2 and up, honest clients from 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.relay_process import REPO, connect_from, note_latency, relay_process
from tests.fixtures.server import ADMIN_TOKEN, TestClient

pytestmark = pytest.mark.slow


async def _enter(client: TestClient, room: str, password: str = "") -> pb.RoomState:
    await client.act(join_room=pb.JoinRoom(name=room, password=password))
    return (await client.recv("room_state", timeout=10, where=lambda m: m.room_state.name == room)).room_state


async def _stats(url: str) -> dict[str, int]:
    admin = await connect_from(url, "127.0.0.1", hello="operator")
    try:
        command = pb.ServerCommand(name="stats", admin_token=ADMIN_TOKEN)
        await admin.act(ref=9, server_command=command)
        result = await admin.recv("command_result", where=lambda m: m.ref == 9)
        return json.loads(result.command_result.output)  # type: ignore[no-any-return]
    finally:
        await admin.close()


async def test_80_password_guessers_from_4_addresses_leave_other_rooms_fast(tmp_path: Path) -> None:
    """Figure: the server checks at most 30 of the ~8,700 guesses (measured 13: 10 per room, then 1 per
    3 s); another room's note p99 (40 notes/s for 8 s) stays within 2x its baseline + 3 ms. Before, each
    guess ran PBKDF2 on the loop and that p99 went to 3.5 s. The 3 ms cover this rig, where the guessing
    process, the probe and the relay share 2 cores: measured 1.7-2.3x a ~1 ms baseline here (1.4-1.5x in
    bench/relay.py --guessing), so the literal 2x is not what this test holds."""
    async with relay_process(tmp_path, "--admin-token", ADMIN_TOKEN) as server:
        owner = await connect_from(server.url, "127.0.0.1", hello="owner")
        await owner.act(
            join_room=pb.JoinRoom(name="vault", settings=pb.RoomSettingsChange(password="s3cret"))
        )
        await owner.recv("room_state", where=lambda m: m.room_state.name == "vault")
        baseline = await note_latency(server.url, "quiet", seconds=8, rate=40)
        guessers = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.load.guessers", server.url, "vault", "--seconds", "11",
            cwd=REPO, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert guessers.stdout is not None
        assert (await asyncio.wait_for(guessers.stdout.readline(), 60)).strip() == b"ready"
        attacked = await note_latency(server.url, "quiet", seconds=8, rate=40)
        report = json.loads(await asyncio.wait_for(guessers.stdout.readline(), 60))
        await guessers.wait()
        answers = report["answers"]
        print("baseline", baseline, "attacked", attacked, "guessers", report)
        assert report["connections"] == 80
        assert answers.get("ERROR_CODE_RATE_LIMITED", 0) > 1000
        assert answers.get("ERROR_CODE_WRONG_PASSWORD", 0) <= 30
        assert attacked.lost == 0 and attacked.p99_ms < 2 * baseline.p99_ms + 3
        stats = await _stats(server.url)
        assert stats["wrong_passwords"] == answers.get("ERROR_CODE_WRONG_PASSWORD", 0)
        # The owner's friend, from an address that never guessed, still gets in with the right password
        # once the room's failure budget refills (1 per 3 s).
        await asyncio.sleep(3)
        friend = await connect_from(server.url, "127.0.0.9", hello="friend")
        assert (await _enter(friend, "vault", "s3cret")).name == "vault"


async def test_a_banned_user_who_drops_the_token_stays_out_also_after_a_restart(tmp_path: Path) -> None:
    """Figure: 0 of 3 ways back in for a banned address (same identity, fresh identity, after a restart);
    another address gets in at once."""
    db = tmp_path / "server.db"
    async with relay_process(tmp_path, db=db) as server:
        owner = await connect_from(server.url, "127.0.0.1", hello="owner")
        await _enter(owner, "club")
        pest = await connect_from(server.url, "127.0.0.2", hello="pest")
        await _enter(pest, "club")
        await owner.act(ban_user=pb.BanUser(user_id=pest.user_id, duration_s=600))
        assert (await pest.recv("removed")).removed.reason == pb.REMOVAL_REASON_BANNED
        await pest.act(join_room=pb.JoinRoom(name="club"))
        assert (await pest.recv("error")).error.code == pb.ERROR_CODE_BANNED
        await pest.close()
        fresh = await connect_from(server.url, "127.0.0.2", hello="pest")  # no token: a new user id
        assert fresh.user_id != pest.user_id
        await fresh.act(join_room=pb.JoinRoom(name="club"))
        assert (await fresh.recv("error")).error.code == pb.ERROR_CODE_BANNED
        neighbour = await connect_from(server.url, "127.0.0.3", hello="neighbour")
        assert (await _enter(neighbour, "club")).name == "club"
        await owner.act(ref=4, list_bans=pb.ListBans())
        bans = (await owner.recv("ban_list", where=lambda m: m.ref == 4)).ban_list.bans
        assert [(b.name, b.kick) for b in bans] == [("pest", False)] and 590 <= bans[0].remaining_s <= 600
        await server.stop()
    async with relay_process(tmp_path, db=db) as server:
        again = await connect_from(server.url, "127.0.0.2", hello="pest2")
        await again.act(join_room=pb.JoinRoom(name="club"))
        error = (await again.recv("error")).error
        assert error.code == pb.ERROR_CODE_BANNED and "minute" in error.message


async def test_nobody_passes_for_the_server_or_for_a_present_member(tmp_path: Path) -> None:
    """Figure: 4 of 4 impersonation names refused; a second "ann" shows as "ann#<id>"; a broadcast arrives
    flagged as a system notice with no name."""
    async with relay_process(tmp_path, "--admin-token", ADMIN_TOKEN) as server:
        for name in ("server", "System", "a.d.m.i.n", "ann#1"):
            impostor = await connect_from(server.url, "127.0.0.2")
            await impostor.act(hello=pb.Hello(name=name))
            error = (await impostor.recv("error")).error
            assert error.code == pb.ERROR_CODE_INVALID_ARGUMENT, name
            await impostor.close()
        ann = await connect_from(server.url, "127.0.0.1", hello="ann")
        copy = await connect_from(server.url, "127.0.0.2", hello="ANN")
        joined = (await ann.recv("user_joined")).user_joined.user
        assert joined.name == f"ANN#{copy.user_id}"
        await copy.act(chat_send=pb.ChatSend(content="it's me, ann"))
        line = (await ann.recv("chat_message")).chat_message
        assert line.user_name == f"ANN#{copy.user_id}" and not line.system
        command = pb.ServerCommand(
            name="broadcast", args=["maintenance", "at", "noon"], admin_token=ADMIN_TOKEN
        )
        await ann.act(server_command=command)
        notice = (await copy.recv("chat_message", where=lambda m: m.chat_message.system)).chat_message
        assert notice.user_id == 0 and notice.user_name == "" and notice.content == "maintenance at noon"
