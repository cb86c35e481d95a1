"""Issue 11, item 4: the README's two-node recipe, run as the README writes it.

The lines of the README's recipe block ("### Many relay nodes on one Redis") are read from README.md and run
with free ports in place of 6379, 8765, 8766 and 8700, a temp dir in place of the Redis directory, a fresh
secret: a real redis-server, two real `pianorhythm-tui --server --redis ...` nodes, and a real haproxy on
deploy/haproxy.cfg (the same ports changed). Players come in through the balancer: real WebSocket clients,
and the README's client line as a headless client (the same client without a screen). The README's HTTP-mode
variant (nodes with --trust-proxy, deploy/haproxy-http.cfg) runs the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.e2e.headless_procs import Proc
from tests.fixtures.daemons import die_with_parent, stop
from tests.fixtures.server import TestClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECTION = "### Many relay nodes on one Redis"
CONFIGS = ("deploy/haproxy.cfg", "deploy/haproxy-http.cfg")
PORTS = ("6379", "8765", "8766", "8700")  # Redis, node a, node b, the balancer
NOTICED_S = 30.0  # a dead node's players leave their rooms within this (the bound)


def sh_blocks(readme: str) -> list[list[str]]:
    """The ```sh blocks of the recipe's section, each a list of its lines."""
    start = readme.index(SECTION)
    end = readme.index("\n## ", start)
    blocks = re.findall(r"```sh\n(.*?)```", readme[start:end], re.S)
    return [block.strip("\n").splitlines() for block in blocks]


def free_ports(count: int) -> list[str]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [str(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Recipe:
    """The README's lines with this run's ports, directory and secret; what was started from them."""

    workdir: Path
    ports: dict[str, str] = field(default_factory=dict)
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def localize(self, line: str) -> list[str]:
        """One README line as an argv here: ports, directory, secret, the config and the programs."""
        for original, port in self.ports.items():
            line = re.sub(rf"\b{original}\b", port, line)
        line = line.replace("/var/lib/pianorhythm-redis", str(self.workdir / "redis"))
        for config in CONFIGS:
            line = line.replace(config, str(self.workdir / Path(config).name))
        line = line.replace("piano.example.org", "127.0.0.1")
        argv = shlex.split(line, comments=True)
        if argv and argv[-1] == "&":
            argv.pop()
        programs = {"haproxy": _haproxy(), "redis-server": shutil.which("redis-server") or "redis-server"}
        return [programs.get(argv[0], argv[0]), *(self.secret if a == "$SECRET" else a for a in argv[1:])]

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
        log.close()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    async def wait_logged(self, name: str, pattern: str, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not re.search(pattern, self.log(name)):
                assert self.processes[name].poll() is None, f"{name} exited:\n{self.log(name)}"
                await asyncio.sleep(0.05)

    def stop_all(self) -> None:
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                stop(process)


def _haproxy() -> str:
    return shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or ""


def health(port: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        answer: dict[str, object] = json.load(response)
        return answer


async def redis_ready(port: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
                writer.write(b"PING\r\n")
                answer = await reader.read(16)
                writer.close()
                if answer.startswith(b"+PONG"):
                    return
            await asyncio.sleep(0.05)


@pytest.fixture
def recipe(tmp_path: Path) -> Iterator[Recipe]:
    if not _haproxy():
        pytest.skip("haproxy is not installed (`make system` installs it)")
    run = Recipe(tmp_path, dict(zip(PORTS, free_ports(len(PORTS)), strict=True)))
    for name in CONFIGS:
        config = (REPO / name).read_text()
        for original, port in run.ports.items():
            config = re.sub(rf"\b{original}\b", port, config)
        (tmp_path / Path(name).name).write_text(config)
    try:
        yield run
    finally:
        run.stop_all()


@contextlib.asynccontextmanager
async def through(
    url: str, name: str, token: str = "", source: str = "127.0.0.1"
) -> AsyncIterator[TestClient]:
    client = await TestClient.connect(url, local_addr=(source, 0))
    try:
        await client.hello(name, token)
        yield client
    finally:
        await client.close()


async def plays_and_says_hello(player: TestClient, name: str, listener: TestClient, keys: range) -> None:
    """`player` plays one note per key, then chats: `listener` hears every note once, in order, and reads
    the line."""
    for key in keys:
        event = pb.NoteEvent(note=pb.Note(key=key, velocity=90))
        await player.act(note_batch=pb.NoteBatch(base_time_us=key, events=[event]))
    heard = [(await listener.recv("notes")).notes for _ in keys]
    assert [n.events[0].note.key for n in heard] == list(keys)
    assert {n.user_id for n in heard} == {player.user_id}
    await player.act(chat_send=pb.ChatSend(content=f"hello from {name}"))
    said = await listener.recv("chat_message", where=lambda m: m.chat_message.user_id == player.user_id)
    assert said.chat_message.content == f"hello from {name}"


def connections(port: str) -> int:
    return int(str(health(port)["connections"]))


async def start(recipe: Recipe, redis_lines: list[str], balanced: list[str]) -> tuple[dict[str, str], str]:
    """Redis from `redis_lines` (mkdir, redis-server), then the two nodes and haproxy of `balanced`; the
    nodes' HTTP ports by node id and the balancer's WebSocket URL, once both nodes answer behind it."""
    kinds = [shlex.split(line)[0] for line in redis_lines + balanced]
    assert kinds == ["mkdir", "redis-server", "pianorhythm-tui", "pianorhythm-tui", "haproxy"], kinds
    subprocess.run(recipe.localize(redis_lines[0]), check=True)
    recipe.start("redis", recipe.localize(redis_lines[1]))
    await redis_ready(recipe.ports["6379"])
    nodes = {"a": recipe.ports["8765"], "b": recipe.ports["8766"]}
    for name, line in zip(nodes, balanced[:2], strict=True):
        argv = recipe.localize(line)
        assert argv[argv.index("--node-id") + 1] == name
        recipe.start(name, [sys.executable, "-m", "pianorhythm.tui.cli", *argv[1:]])
    for name in nodes:
        await recipe.wait_logged(name, r"listening on ws://")
    recipe.start("haproxy", recipe.localize(balanced[2]))
    balancer = recipe.ports["8700"]
    async with asyncio.timeout(20):  # haproxy listening, both nodes taking turns behind it
        seen: set[object] = set()
        while seen != set(nodes):
            assert recipe.processes["haproxy"].poll() is None, recipe.log("haproxy")
            with contextlib.suppress(OSError):
                seen.add(health(balancer)["node_id"])
            await asyncio.sleep(0.05)
    return nodes, f"ws://127.0.0.1:{balancer}/api/websocket"


async def test_two_players_through_the_balancer_play_and_chat_across_nodes_and_a_dead_node_is_noticed(
    recipe: Recipe,
) -> None:
    servers, clients, _ = sh_blocks((REPO / "README.md").read_text())
    lines = [line for line in servers if not line.startswith("SECRET=")]
    nodes, url = await start(recipe, lines[:2], lines[2:])

    async with contextlib.AsyncExitStack() as players:
        ann = await players.enter_async_context(through(url, "ann"))
        (anns_node,) = (name for name, port in nodes.items() if connections(port) == 1)
        bob = await players.enter_async_context(through(url, "bob"))
        on = {name: connections(port) for name, port in nodes.items()}
        assert on == {"a": 1, "b": 1}, "two connections in a row land on different nodes"
        for player in (ann, bob):
            await player.act(ref=5, join_room=pb.JoinRoom(name="den"))
            await player.recv("room_state", where=lambda m: m.ref == 5)
        joined = await ann.recv("user_joined", where=lambda m: m.user_joined.user.id == bob.user_id)
        assert joined.user_joined.user.name == "bob"
        await plays_and_says_hello(ann, "ann", bob, range(40, 60))
        await plays_and_says_hello(bob, "bob", ann, range(70, 90))

        survivor = anns_node
        (bobs_node,) = (name for name in nodes if name != survivor)
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        recipe.processes[bobs_node].kill()
        # At once, before haproxy's checks see the node gone: two new players in a row (round robin sends
        # one of them to the dead node first), then one more with the README's client line.
        dan = await players.enter_async_context(through(url, "dan"))
        eve = await players.enter_async_context(through(url, "eve"))
        for player in (dan, eve):
            await player.act(ref=6, join_room=pb.JoinRoom(name="den"))
            state = (await player.recv("room_state", where=lambda m: m.ref == 6)).room_state
            assert ann.user_id in {u.id for u in state.users}
        (client_line,) = clients
        cat = Proc(
            [*recipe.localize(client_line)[1:], "--headless", "--no-audio", "--name", "cat"],
            recipe.workdir,
            "cat",
            env={"PIANORHYTHM_CONFIG_DIR": str(recipe.workdir / "cfg-cat")},
        )
        try:
            await asyncio.to_thread(cat.wait_for, r"room den users=\d+ \[.*ann", 20.0)
            assert connections(nodes[survivor]) == 4, "ann, dan, eve and cat, all on the surviving node"
            left = await ann.recv(
                "user_left",
                timeout=NOTICED_S - (loop.time() - killed_at),
                where=lambda m: m.user_left.user_id == bob.user_id,
            )
            assert left.user_left.reason == pb.LEAVE_REASON_DISCONNECTED
            await asyncio.to_thread(cat.wait_for, rf"leave bob id={bob.user_id}", 5.0)
            assert bob.welcome and bob.welcome.resume_token
            again = await players.enter_async_context(through(url, "bob", bob.welcome.resume_token))
            assert again.user_id == bob.user_id, "bob back through the balancer, on the survivor, as himself"
        finally:
            cat.kill()


async def test_in_http_mode_the_nodes_see_each_players_own_address_and_a_ban_keeps_out_only_that_one(
    recipe: Recipe,
) -> None:
    servers, _, http = sh_blocks((REPO / "README.md").read_text())
    lines = [line for line in servers if not line.startswith("SECRET=")]
    assert all("--trust-proxy 127.0.0.1" in line for line in http[:2]), http
    nodes, url = await start(recipe, lines[:2], http)

    def addresses() -> dict[str, list[str]]:
        return {name: re.findall(r"connect session=\d+ ip=(\S+)", recipe.log(name)) for name in nodes}

    async with contextlib.AsyncExitStack() as players:
        # Round robin: ann and cy on one node, bob and then dan on the other.
        ann = await players.enter_async_context(through(url, "ann", source="127.0.0.2"))
        bob = await players.enter_async_context(through(url, "bob", source="127.0.0.3"))
        cy = await players.enter_async_context(through(url, "cy", source="127.0.0.4"))
        seen = addresses()
        assert sorted(seen.values()) == [["127.0.0.2", "127.0.0.4"], ["127.0.0.3"]], seen
        for player in (ann, bob, cy):
            await player.act(ref=5, join_room=pb.JoinRoom(name="den"))
            await player.recv("room_state", where=lambda m: m.ref == 5)
        await ann.recv("user_joined", where=lambda m: m.user_joined.user.id == cy.user_id)
        await plays_and_says_hello(ann, "ann", bob, range(40, 50))
        await plays_and_says_hello(bob, "bob", ann, range(70, 80))

        await ann.act(ref=6, ban_user=pb.BanUser(user_id=cy.user_id, duration_s=600))
        removed = (await cy.recv("removed")).removed
        assert removed.reason == pb.REMOVAL_REASON_BANNED
        # The ban covers cy's address, not the balancer's: a new identity from there (on the other node)
        # stays out; bob, from another address, stays in.
        dan = await players.enter_async_context(through(url, "dan", source="127.0.0.4"))
        (bobs_node,) = (name for name in nodes if seen[name] == ["127.0.0.3"])
        assert addresses()[bobs_node] == ["127.0.0.3", "127.0.0.4"], "dan, from cy's address, on bob's node"
        await dan.act(ref=7, join_room=pb.JoinRoom(name="den"))
        refused = await dan.recv("error", where=lambda m: m.ref == 7)
        assert refused.error.code == pb.ERROR_CODE_BANNED
        left = await bob.recv("user_left", where=lambda m: m.user_left.user_id == cy.user_id)
        assert left.user_left.reason == pb.LEAVE_REASON_BANNED
        await bob.act(ref=8, chat_send=pb.ChatSend(content="still here"))
        said = await ann.recv("chat_message", where=lambda m: m.chat_message.user_id == bob.user_id)
        assert said.chat_message.content == "still here"
