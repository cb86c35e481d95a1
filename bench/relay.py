"""Relay fan-out benchmark: N listeners and 1 sender in one room; the sender plays R notes/s for D s.

Starts `pianorhythm-tui --server` in a subprocess, opens the listeners from 1-2 load processes
(bench/_loadgen.py: bare protocols that read frame headers and decode each distinct payload once, so the
load side costs little), and prints JSON: delivered, lost, relay latency p50/p90/p99/max in ms (sender send
-> listener receive, both on CLOCK_MONOTONIC, which every process on the machine shares), server and load
CPU seconds while playing and per delivery, and server peak RSS.

    .venv/bin/python bench/relay.py                    # every load of ANCHORS.md, then 1,000 idle
    .venv/bin/python bench/relay.py --listeners 200 --rate 50 --duration 10
    .venv/bin/python bench/relay.py --idle 1000        # RSS per idle connection
    .venv/bin/python bench/relay.py --crowded 2000     # a quiet room's p99 while a crowded lobby plays
    .venv/bin/python bench/relay.py --churn 10000      # memory drift over connect/join/chat/leave cycles
    .venv/bin/python bench/relay.py --guessing 80      # a quiet room's p99 while 80 connections guess
    .venv/bin/python bench/relay.py --nodes 2 -n 200 -r 50   # listeners on two nodes on one Redis

With `--nodes 2` the listeners are split over two `pianorhythm-tui --server --redis ...` nodes on one
redis-server (started here, as the README's recipe runs it), the sender on node a: the p99 of b's listeners
(notes crossing Redis) against a's, and against a run of the same load on one node on Redis (`--nodes 1`
alone runs only that); server CPU per delivery on each node.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _loadgen import Crowd, cpu_times  # noqa: E402

from pianorhythm.wire import codec  # noqa: E402
from pianorhythm.wire import pianorhythm_pb2 as pb  # noqa: E402
from tests.fixtures.relay_process import connect_from, note_latency  # noqa: E402
from tests.load.churn import churn, memory_report  # noqa: E402

ADMIN_TOKEN = "bench-admin"  # for the churn row's "memory" command
ROOM = "lobby"  # the one room without a user limit (other rooms hold at most 100)
CLI = Path(sys.executable).with_name("pianorhythm-tui")


class LeanClient(asyncio.Protocol):
    """A WebSocket client on the sans-I/O protocol; `on_frame(payload, recv_ns)` gets every binary frame."""

    def __init__(self, url: str, on_frame: Any = None) -> None:
        self.proto = ClientProtocol(parse_uri(url), max_size=2**20)
        self.on_frame = on_frame
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now_ns = time.monotonic_ns()
        if not self.opened.done():
            self.proto.receive_data(data)
            for event in self.proto.events_received():
                if isinstance(event, Response):
                    self.opened.set_result(None)
                elif isinstance(event, Frame) and event.opcode is Opcode.BINARY and self.on_frame is not None:
                    self.on_frame(event.data, now_ns)
            self._flush()
            if self.opened.done():  # from now on, frames are parsed here; keep the protocol's leftovers
                self.buffer = bytearray(self.proto.reader.buffer)
            return
        self.buffer += data
        self._parse(now_ns)

    def _parse(self, now_ns: int) -> None:
        """Server frames are unmasked and unfragmented: parse them by hand, which costs far less than the
        generator-based parser, so the load side adds little to the latency it measures."""
        buffer = self.buffer
        offset = 0
        while len(buffer) - offset >= 2:
            opcode = buffer[offset] & 0x0F
            length = buffer[offset + 1] & 0x7F
            header = 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 4], "big")
                header = 4
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 10], "big")
                header = 10
            end = offset + header + length
            if end > len(buffer):
                break
            payload = bytes(buffer[offset + header : end])
            offset = end
            if opcode == 0x2 and self.on_frame is not None:
                self.on_frame(payload, now_ns)
            elif opcode == 0x9:  # ping: answer it so the server's heartbeat keeps us
                self.proto.send_pong(payload)
                self._flush()
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during the handshake"))

    def send(self, message: pb.ClientMessage) -> None:
        self.proto.send_binary(codec.encode(message))
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.proto.data_to_send():
            if data:
                self.transport.write(data)


async def open_client(url: str, host: str, port: int, on_frame: Any = None) -> LeanClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: LeanClient(url, on_frame), host, port)
    await client.opened
    return client


async def play(url: str, rate: float, duration: float) -> int:
    uri = parse_uri(url)
    joined = asyncio.get_running_loop().create_future()

    def on_frame(payload: bytes, _: int) -> None:
        for message in codec.decode_server(payload, codec.CodecConfig(max_payload=2**20)):
            if message.WhichOneof("event") == "room_state" and message.room_state.name == ROOM:
                if not joined.done():
                    joined.set_result(None)

    sender = await open_client(url, uri.host, uri.port, on_frame)
    sender.send(pb.ClientMessage(hello=pb.Hello(name="sender")))
    await joined
    await asyncio.sleep(0.5)
    count = int(rate * duration)
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        event = pb.NoteEvent(offset_us=0, note=pb.Note(key=60 + index % 12, velocity=0 if index % 2 else 100))
        batch = pb.NoteBatch(base_time_us=time.monotonic_ns() // 1000, events=[event])
        sender.send(pb.ClientMessage(note_batch=batch))
    await asyncio.sleep(1.0)
    return count


# -- server process ----------------------------------------------------------------------------------


def start_server(loop: str, *where: str) -> tuple[subprocess.Popen[bytes], str]:
    """The relay on event loop `loop` (`--loop`) with `where` it keeps its state: `--db PATH`, or `--redis
    URL --node-id ...`."""
    prefix = os.environ.get("RELAY_BENCH_PREFIX", "").split()  # e.g. "python -m cProfile -o out.prof"
    proc = subprocess.Popen(
        [*prefix, str(CLI), "--server", "--port", "0", "--loop", loop, *where, "--log-level", "info",
         "--max-connections-per-ip", "5000", "--admin-token", ADMIN_TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    while line := proc.stderr.readline().decode():
        match = re.search(r"listening on (ws://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
            return proc, match.group(1)
    raise RuntimeError("the server did not start")


def memory_kib(pid: int, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def loop_wakeups(pid: int) -> int:
    """How often the process's main thread (the event loop) went to sleep and was woken so far."""
    match = re.search(r"^voluntary_ctxt_switches:\s+(\d+)$", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def percentile(values: Sequence[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(args.loop, "--db", str(Path(tmp) / "bench.db"))
        try:
            time.sleep(0.3)
            if args.idle:
                return run_idle(server.pid, url, args)
            if args.crowded:
                return run_crowded(server.pid, url, args)
            if args.churn:
                return run_churn(url, args)
            if args.guessing:
                return run_guessing(server.pid, url, args)
            return run_load(server.pid, url, args)
        finally:
            server.terminate()
            server.wait(15)


def run_idle(pid: int, url: str, args: argparse.Namespace) -> dict[str, Any]:
    before = memory_kib(pid, "VmRSS")
    crowd = Crowd(url, args.procs or 2)
    # One at a time, as the figures before the load generator were taken: 50 joins in flight at once
    # leave their lobby broadcasts queued when RSS is read (35 KiB per connection instead of 16).
    crowd.add(args.idle, hello=True, room=None, at_once=1)
    time.sleep(2.0)
    after = memory_kib(pid, "VmRSS")
    crowd.close()
    return {
        "idle_connections": args.idle,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_per_connection_kib": round((after - before) / args.idle, 1),
        "server_peak_rss_mib": round(memory_kib(pid, "VmHWM") / 1024, 1),
    }


def run_load(pid: int, url: str, args: argparse.Namespace) -> dict[str, Any]:
    procs = args.procs or (2 if args.listeners >= 200 else 1)
    crowd = Crowd(url, procs)
    try:
        crowd.add(args.listeners, hello=True, room=ROOM)
        crowd.collect()
        user0, sys0 = cpu_times(pid)
        wakes0 = loop_wakeups(pid)
        load0 = sum(crowd.cpu_s())
        sent = asyncio.run(play(url, args.rate, args.duration))
        user1, sys1 = cpu_times(pid)
        wakes = loop_wakeups(pid) - wakes0
        load = sum(crowd.cpu_s()) - load0
        latencies, _ = crowd.collect()
    finally:
        crowd.close()
    expected = sent * args.listeners
    server_cpu = user1 - user0 + sys1 - sys0
    delivered = len(latencies)
    return {
        "listeners": args.listeners,
        "rate": args.rate,
        "duration_s": args.duration,
        "load_processes": procs,
        "sent": sent,
        "delivered": delivered,
        "lost": expected - delivered,
        "latency_ms": {
            "p50": percentile(latencies, 0.50),
            "p90": percentile(latencies, 0.90),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies) / 1000 if latencies else float("nan"),
        },
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_user_s": round(user1 - user0, 2),
        "server_cpu_system_s": round(sys1 - sys0, 2),
        "server_us_per_delivery": round(server_cpu / delivered * 1e6, 1) if delivered else None,
        # the server's event loop going to sleep and waking up again (voluntary context switches)
        "server_wakeups_per_s": round(wakes / args.duration),
        "load_cpu_s": round(load, 2),
        "load_us_per_delivery": round(load / delivered * 1e6, 1) if delivered else None,
        "server_peak_rss_mib": round(memory_kib(pid, "VmHWM") / 1024, 1),
    }


# -- many nodes on one Redis -------------------------------------------------------------------------

NODE_SECRET = "bench-cluster-secret"


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """redis-server with the README recipe's settings on a free loopback port; (process, port) once it
    answers PING."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("redis-server exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not answer within 10 s")


def stopped(proc: subprocess.Popen[bytes], name: str) -> None:
    """Wait for a process sent SIGTERM; after 15 s kill it and say so, so that a stop that hangs (one did:
    bench/README.md, "Session 6, Y") is reported, not waited for."""
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        print(f"warning: {name} did not stop within 15 s of SIGTERM; killed it", file=sys.stderr, flush=True)
        proc.kill()
        proc.wait()


def run_nodes(args: argparse.Namespace) -> dict[str, Any]:
    """`--nodes 1`: the load on one node on Redis. `--nodes 2`: that, then the listeners split over two
    nodes (the sender on a), with b's p99 against a's and against the one node's."""
    one = nodes_load(["a"], args)
    if args.nodes == 1:
        return one
    two = nodes_load(["a", "b"], args)
    same, cross = (node["latency_ms"]["p99"] for node in two["per_node"])
    return {
        **two,
        "same_node_p99_ms": same,
        "cross_node_p99_ms": cross,
        "cross_node_extra_ms": round(cross - same, 3),
        "one_node": one,
        "cross_node_extra_vs_one_node_ms": round(cross - one["per_node"][0]["latency_ms"]["p99"], 3),
    }


def nodes_load(node_ids: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    """`args.listeners` listeners split evenly over one node per id on a fresh redis-server, all in the
    lobby (the one room without a user limit); the sender, on the first node, plays `args.rate` notes/s."""
    procs = args.procs or 2
    with tempfile.TemporaryDirectory() as tmp:
        redis, port = start_redis(Path(tmp))
        nodes: list[tuple[subprocess.Popen[bytes], str]] = []
        crowds: list[Crowd] = []
        try:
            for node in node_ids:
                nodes.append(start_server(
                    args.loop, "--redis", f"redis://127.0.0.1:{port}/0",
                    "--node-id", node, "--secret", NODE_SECRET,
                ))  # fmt: skip
            time.sleep(0.3)
            shares = [
                args.listeners // len(nodes) + (i < args.listeners % len(nodes)) for i in range(len(nodes))
            ]
            for (_, url), share in zip(nodes, shares, strict=True):
                crowd = Crowd(url, max(1, procs // len(nodes)))
                crowds.append(crowd)
                crowd.add(share, hello=True, room=ROOM)
            for crowd in crowds:
                crowd.collect()
            before = [sum(cpu_times(proc.pid)) for proc, _ in nodes]
            redis_before = sum(cpu_times(redis.pid))
            sent = asyncio.run(play(nodes[0][1], args.rate, args.duration))
            used = [sum(cpu_times(proc.pid)) - b for (proc, _), b in zip(nodes, before, strict=True)]
            redis_used = sum(cpu_times(redis.pid)) - redis_before
            received = [crowd.collect()[0] for crowd in crowds]
        finally:
            for crowd in crowds:
                crowd.close()
            for proc, _ in nodes:
                proc.terminate()
            for (proc, _), node in zip(nodes, node_ids, strict=False):
                stopped(proc, f"node {node}")
            redis.terminate()
            stopped(redis, "redis-server")
    per_node = []
    for node, share, latencies, cpu in zip(node_ids, shares, received, used, strict=True):
        delivered = len(latencies)
        per_node.append({
            "node": node,
            "listeners": share,
            "delivered": delivered,
            "lost": sent * share - delivered,
            "latency_ms": {
                "p50": percentile(latencies, 0.50),
                "p90": percentile(latencies, 0.90),
                "p99": percentile(latencies, 0.99),
                "max": max(latencies) / 1000 if latencies else float("nan"),
            },
            "server_cpu_s": round(cpu, 2),
            "server_us_per_delivery": round(cpu / delivered * 1e6, 1) if delivered else None,
        })  # fmt: skip
    return {
        "nodes": len(node_ids),
        "listeners": args.listeners,
        "rate": args.rate,
        "duration_s": args.duration,
        "sent": sent,
        "lost": sum(node["lost"] for node in per_node),
        "per_node": per_node,
        "redis_cpu_s": round(redis_used, 2),
    }


# -- crowded lobby -----------------------------------------------------------------------------------

CROWD = Path(__file__).resolve().with_name("_crowd.py")
QUIET = "quiet"


async def quiet_latency(url: str, seconds: float, rate: float) -> dict[str, float]:
    """Two clients in room QUIET: one plays `rate` notes/s for `seconds`, the other times them (ms)."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    welcomed = [loop.create_future(), loop.create_future()]
    joined = [loop.create_future(), loop.create_future()]
    latencies: list[int] = []

    def watcher(index: int) -> Any:
        def on_frame(payload: bytes, now_ns: int) -> None:
            for message in codec.decode_server(payload, codec.CodecConfig(max_payload=2**20)):
                kind = message.WhichOneof("event")
                if kind == "welcome" and not welcomed[index].done():
                    welcomed[index].set_result(None)
                elif kind == "room_state" and message.room_state.name == QUIET and not joined[index].done():
                    joined[index].set_result(None)
                elif kind == "notes" and index == 1:
                    latencies.append(now_ns // 1000 - message.notes.base_time_us)

        return on_frame

    clients = []
    for index, name in enumerate(("quiet-a", "quiet-b")):
        client = await open_client(url, uri.host, uri.port, watcher(index))
        client.send(pb.ClientMessage(hello=pb.Hello(name=name)))
        # Join once welcomed: the crowded lobby's own state (large) must not share a turn with the join.
        await asyncio.wait_for(welcomed[index], 30)
        client.send(pb.ClientMessage(join_room=pb.JoinRoom(name=QUIET)))
        clients.append(client)
    await asyncio.wait_for(asyncio.gather(*joined), 30)
    count = int(rate * seconds)
    start = time.monotonic()
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        event = pb.NoteEvent(note=pb.Note(key=60, velocity=0 if index % 2 else 100))
        batch = pb.NoteBatch(base_time_us=time.monotonic_ns() // 1000, events=[event])
        clients[0].send(pb.ClientMessage(note_batch=batch))
    await asyncio.sleep(0.5)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return {
        "count": len(latencies),
        "lost": count - len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
    }


def crowd_command(crowd: subprocess.Popen[str], command: str) -> str:
    assert crowd.stdin is not None and crowd.stdout is not None
    crowd.stdin.write(command + "\n")
    crowd.stdin.flush()
    return crowd.stdout.readline().strip()


def run_crowded(pid: int, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The quiet room's note latency alone, then with `args.crowded` lobby members and one of them
    sending 200 single-note batches/s (its note limit)."""
    seconds, rate = args.duration, 20.0
    baseline = asyncio.run(quiet_latency(url, seconds, rate))
    crowd = subprocess.Popen(
        [sys.executable, str(CROWD), url, str(args.crowded), "--play", "200"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert crowd.stdout is not None and crowd.stdin is not None
    try:
        if crowd.stdout.readline().strip() != "ready":
            raise RuntimeError("the crowd did not get in")
        idle = asyncio.run(quiet_latency(url, seconds, rate))
        crowd_command(crowd, "play")
        time.sleep(1.0)
        user0, sys0 = cpu_times(pid)
        wall0 = time.monotonic()
        loaded = asyncio.run(quiet_latency(url, seconds, rate))
        user1, sys1 = cpu_times(pid)
        wall = time.monotonic() - wall0
        crowd_command(crowd, "stop")
        crowd.stdin.close()
        report = json.loads(crowd.stdout.readline())
    finally:
        crowd.kill()
        crowd.wait()
    return {
        "members": args.crowded,
        "quiet_room_rate": rate,
        "duration_s": seconds,
        "baseline": baseline,
        "crowd_idle": idle,
        "crowd_playing": loaded,
        "p99_vs_baseline": round(loaded["p99_ms"] / baseline["p99_ms"], 2),
        "server_cpu_pct_while_playing": round((user1 - user0 + sys1 - sys0) / wall * 100, 1),
        "crowd": report,
        "server_peak_rss_mib": round(memory_kib(pid, "VmHWM") / 1024, 1),
    }


CHURN_WARMUP = 10_000  # by then SQLite's page cache (2 MB by default) has filled up with the database
RESUME_WINDOW_S = 120  # Limits.resume_room_s: how long a dropped user's room is remembered


def run_churn(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """A warm-up, then three blocks of `args.churn` cycles, from a fresh database: the RSS after a full GC
    before and after each block, and once more (with /healthz) when the rooms the dropped users could
    resume into have expired."""

    async def main() -> dict[str, Any]:
        warm = await churn(url, CHURN_WARMUP, args.workers, 4, 10)
        rss = [(await memory_report(url, ADMIN_TOKEN))["rss_kib"]]
        blocks = []
        for _ in range(3):
            blocks.append(await churn(url, args.churn, args.workers, 4, 10))
            rss.append((await memory_report(url, ADMIN_TOKEN))["rss_kib"])
        await asyncio.sleep(RESUME_WINDOW_S + 2)
        expired = (await memory_report(url, ADMIN_TOKEN))["rss_kib"]
        await asyncio.sleep(0.5)  # the admin connection's disconnect
        health = urllib.request.urlopen(url.replace("ws://", "http://").rsplit("/api/", 1)[0] + "/healthz")
        return {
            "churn_cycles_per_block": args.churn,
            "workers": args.workers,
            "warmup_cycles": CHURN_WARMUP,
            "failures": warm["failures"] + sum(b["failures"] for b in blocks),
            "cycles_per_s": [round(args.churn / b["seconds"]) for b in blocks],
            "rss_after_gc_kib": rss,
            "drift_pct": [
                round((after - before) / before * 100, 2) for before, after in itertools.pairwise(rss)
            ],
            "drift_total_pct": round((rss[-1] - rss[0]) / rss[0] * 100, 2),
            "rss_after_resume_window_kib": expired,
            "drift_after_resume_window_pct": round((expired - rss[0]) / rss[0] * 100, 2),
            "healthz": json.loads(health.read()),
        }

    return asyncio.run(main())


# The loads measured on an MPP server in ../shared/docs/ANCHORS.md: (listeners, notes/s, its p99 ms).
ANCHOR_LOADS = ((10, 20, 3.0), (50, 50, 4.2), (200, 50, 9.4), (500, 20, 23.5))
IDLE_CONNECTIONS = 1000
CROWDED_MEMBERS = 2000
GUESSING_CONNECTIONS = 80  # the attack: 4 addresses x 20 connections, 10 wrong passwords/s each
CHURN_CYCLES = 10_000


def run_guessing(pid: int, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """A quiet room's note p99 (50 notes/s for 8 s) before and while `args.guessing` connections from 4
    addresses send wrong passwords to a locked room (tests/load/guessers.py, a process of its own)."""

    async def main() -> dict[str, Any]:
        owner = await connect_from(url, "127.0.0.1", hello="owner")
        locked = pb.JoinRoom(name="vault", settings=pb.RoomSettingsChange(password="s3cret"))
        await owner.act(join_room=locked)
        await owner.recv("room_state", where=lambda m: m.room_state.name == "vault")
        baseline = await note_latency(url, "quiet", seconds=8, rate=50)
        guessers = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.load.guessers", url, "vault",
            "--per-source", str(args.guessing // 4), "--seconds", "10", *(["--pings"] if args.pings else []),
            cwd=Path(__file__).resolve().parents[1], stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert guessers.stdout is not None
        await guessers.stdout.readline()  # "ready"
        cpu_before = sum(cpu_times(pid))
        attacked = await note_latency(url, "quiet", seconds=8, rate=50)
        cpu = sum(cpu_times(pid)) - cpu_before
        report = json.loads(await guessers.stdout.readline())
        await guessers.wait()
        await owner.close()
        answers = report["answers"]
        return {
            "guessing_connections": report["connections"],
            "guesses_answered": sum(answers.values()),
            "passwords_checked": answers.get("ERROR_CODE_WRONG_PASSWORD", 0),
            "rate_limited": answers.get("ERROR_CODE_RATE_LIMITED", 0),
            "quiet_room_baseline": baseline.as_dict(),
            "quiet_room_attacked": attacked.as_dict(),
            "p99_ratio": round(attacked.p99_ms / baseline.p99_ms, 2),
            "server_cpu_pct_attacked": round(cpu / 8 * 100, 1),
        }

    return asyncio.run(main())


def run_anchors(args: argparse.Namespace) -> dict[str, Any]:
    """Every anchor load, then the idle-memory and churn measurements: the issue's whole table in one run."""
    rows = []
    for listeners, rate, mpp_p99 in ANCHOR_LOADS:
        result = run(argparse.Namespace(**{**vars(args), "listeners": listeners, "rate": rate}))
        result["mpp_p99_ms"] = mpp_p99
        result["beats_mpp_p99"] = result["latency_ms"]["p99"] < mpp_p99
        rows.append(result)
    idle = run(argparse.Namespace(**{**vars(args), "idle": IDLE_CONNECTIONS}))
    crowded = run(argparse.Namespace(**{**vars(args), "crowded": CROWDED_MEMBERS, "duration": 5.0}))
    guessing = run(argparse.Namespace(**{**vars(args), "guessing": GUESSING_CONNECTIONS}))
    churned = run(argparse.Namespace(**{**vars(args), "churn": CHURN_CYCLES}))
    return {
        "loads": rows,
        "idle": idle,
        "crowded_lobby": crowded,
        "password_guessing": guessing,
        "churn": churned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--listeners", "-n", type=int, default=0, help="one load (default: every ANCHORS.md load + idle RSS)"
    )
    parser.add_argument("--rate", "-r", type=float, default=20.0, help="notes per second")
    parser.add_argument("--duration", "-d", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--procs", type=int, default=0, help="load processes (default 1, 2 from 200 listeners)"
    )
    parser.add_argument("--idle", type=int, default=0, help="measure RSS per idle connection with this many")
    parser.add_argument(
        "--crowded", type=int, default=0, help="a quiet room's p99 with this many lobby members, one playing"
    )
    parser.add_argument(
        "--guessing",
        type=int,
        default=0,
        help="a quiet room's p99 while this many connections guess a password",
    )
    parser.add_argument(
        "--pings", action="store_true", help="with --guessing: the same crowd sends pings, not passwords"
    )
    parser.add_argument("--churn", type=int, default=0, help="memory drift over 3 blocks of this many cycles")
    parser.add_argument("--workers", type=int, default=16, help="churn cycles at a time (one address each)")
    parser.add_argument(
        "--nodes",
        type=int,
        choices=(1, 2),
        default=0,
        help="with --listeners: nodes on one redis-server (2: listeners split, compared with 1 node)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the relay's event loop (its --loop; default auto: uvloop when installed)",
    )
    args = parser.parse_args()
    if args.nodes:
        if not args.listeners:
            parser.error("--nodes needs --listeners N")
        print(json.dumps({"loop": args.loop, **run_nodes(args)}, indent=2))
        return
    one = args.listeners or args.idle or args.crowded or args.guessing or args.churn
    print(json.dumps({"loop": args.loop, **(run(args) if one else run_anchors(args))}, indent=2))


if __name__ == "__main__":
    main()
