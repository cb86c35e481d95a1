"""`pianorhythm-tui --server --loop auto|asyncio|uvloop`: the relay as a real process on either event loop,
end to end (notes past the outbox's liveness ping, chat, a clean stop on SIGTERM and SIGINT), auto's choice,
and the error when uvloop is asked for and missing."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from pianorhythm.server.main import LoopUnavailable, loop_factory
from pianorhythm.server.outbox import PING_AFTER_MESSAGES
from pianorhythm.server.shell import loop_name
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.relay_process import CLI, REPO, ServerProcess, connect_from, relay_process
from tests.fixtures.server import answers


async def _healthz(server: ServerProcess) -> dict[str, object]:
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(server.http + "/healthz", timeout=5).read())
    return json.loads(body)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("loop", "sig"),
    [
        ("uvloop", signal.SIGTERM),
        ("asyncio", signal.SIGTERM),
        ("uvloop", signal.SIGINT),
        ("asyncio", signal.SIGINT),
    ],
)
async def test_the_relay_plays_chats_and_stops_cleanly_on_either_loop(
    tmp_path: Path, loop: str, sig: signal.Signals
) -> None:
    async with relay_process(tmp_path, "--loop", loop) as server:
        assert server.logged(rf"listening on .*; event loop {loop}\)")
        assert (await _healthz(server))["event_loop"] == loop
        ann = await connect_from(server.url, "127.0.0.1", hello="ann")
        bob = await connect_from(server.url, "127.0.0.1", hello="bob")
        for client in (ann, bob):
            await client.act(join_room=pb.JoinRoom(name="duo"))
            await client.recv("room_state", where=lambda m: m.room_state.name == "duo")
        # More notes than PING_AFTER_MESSAGES: bob's outbox pings him and his pong comes back through the
        # loop's transport while notes keep flowing.
        count = PING_AFTER_MESSAGES * 2 + 4
        for seq in range(1, count + 1):
            note = pb.NoteEvent(note=pb.Note(key=60, velocity=64 * (seq % 2)))
            await ann.act(note_batch=pb.NoteBatch(base_time_us=seq, events=[note]))
            await asyncio.sleep(0.01)
        heard = [(await bob.recv("notes", timeout=10)).notes for _ in range(count)]
        assert [n.base_time_us for n in heard] == list(range(1, count + 1))
        assert all(n.user_id == ann.user_id for n in heard)
        await bob.act(ref=7, chat_send=pb.ChatSend(content="on " + loop))
        acked = await bob.recv("chat_message", where=answers(7))
        said = await ann.recv("chat_message", where=lambda m: m.chat_message.content == "on " + loop)
        assert said.chat_message.id == acked.chat_message.id
        assert await server.stop(sig) == 0
        for client in (ann, bob):
            assert await client.closed() == (1001, "server shutting down")
        assert server.logged("server stopped")
        assert not server.logged(r"ERROR|Traceback")


async def test_auto_runs_on_uvloop_when_it_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    async with relay_process(tmp_path) as server:
        assert server.logged(r"listening on .*; event loop uvloop\)")
        assert (await _healthz(server))["event_loop"] == "uvloop"


def _without_uvloop(tmp_path: Path) -> dict[str, str]:
    """An environment whose `import uvloop` fails, as on a machine without it (a module of that name first
    on the path, raising ImportError)."""
    shadow = tmp_path / "no-uvloop"
    shadow.mkdir()
    (shadow / "uvloop.py").write_text("raise ImportError('No module named uvloop')\n")
    return {"PYTHONPATH": str(shadow), "PATH": "/usr/bin:/bin"}


async def test_asking_for_uvloop_without_it_is_one_line_with_the_fix_and_status_2(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--server", "--port", "0", "--db", str(tmp_path / "s.db"), "--loop", "uvloop",
        cwd=REPO, env=_without_uvloop(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    lines = err.decode().splitlines()
    assert proc.returncode == 2 and out == b""
    assert len(lines) == 1 and "--loop uvloop needs the uvloop package" in lines[0]
    assert "pip install uvloop" in lines[0] and "--loop asyncio" in lines[0]
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened


async def test_auto_without_uvloop_runs_on_asyncio(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--server", "--port", "0", "--db", str(tmp_path / "s.db"),
        cwd=REPO, env=_without_uvloop(tmp_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while "listening on" not in (lines or [""])[-1]:
                line = await proc.stderr.readline()
                assert line, "the server exited before listening:\n" + "\n".join(lines)
                lines.append(line.decode().rstrip("\n"))
        assert "; event loop asyncio)" in lines[-1]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_loop_factory_makes_the_loop_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    for choice, expected in (("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")):
        loop = loop_factory(choice)()
        try:
            assert loop_name(loop) == expected
        finally:
            loop.close()
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError
    with pytest.raises(LoopUnavailable, match="pip install uvloop"):
        loop_factory("uvloop")
    loop = loop_factory("auto")()
    try:
        assert loop_name(loop) == "asyncio"
    finally:
        loop.close()
