"""The floor under the relay's cost per delivery: a fan-out that does nothing but write one prebuilt note
frame to N loopback sockets, R times a second, with one `send()` per socket per note.

On loopback the receiver's side of TCP runs inside the sender's `send()`, so the floor's CPU per delivery
is what this machine charges any server for a delivery; the relay's figure (bench/relay.py) reads as a
multiple of it. The listeners are bench/_loadgen.py's, so the same run also shows how many deliveries a
second the load generator takes and at what CPU per delivery.

    .venv/bin/python bench/floor.py -n 200 -r 50 -d 10
    .venv/bin/python bench/floor.py -n 3000 -r 50 -d 5 --procs 2     # 150,000 deliveries/s

Prints JSON: deliveries, deliveries/s, lost, latency p50/p99/max (ms), the fan-out's and the load
processes' CPU seconds and µs per delivery.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _loadgen import Crowd, cpu_times  # noqa: E402

from pianorhythm.wire import codec  # noqa: E402
from pianorhythm.wire import pianorhythm_pb2 as pb  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _accept(server: socket.socket) -> socket.socket:
    sock, _ = server.accept()
    request = b""
    while b"\r\n\r\n" not in request:
        request += sock.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    sock.setblocking(False)
    return sock


def _frame(index: int) -> bytes:
    """A relayed note exactly as the relay sends it: one ServerMessage in a binary frame."""
    event = pb.NoteEvent(offset_us=0, note=pb.Note(key=60 + index % 12, velocity=0 if index % 2 else 100))
    notes = pb.RelayedNotes(user_id=1, base_time_us=time.monotonic_ns() // 1000, events=[event])
    payload = codec.encode(pb.ServerMessage(notes=notes))
    return bytes((0x82, len(payload))) + payload  # < 126 bytes: the short length form


def serve(listeners: int) -> None:
    """The fan-out process: accepts `listeners` connections, then obeys "play RATE SECONDS" on stdin."""
    server = socket.create_server(("127.0.0.1", 0), backlog=4096)
    print(server.getsockname()[1], flush=True)
    socks = [_accept(server) for _ in range(listeners)]
    print("ready", flush=True)
    for line in sys.stdin:
        rate, seconds = map(float, line.split()[1:])
        count = int(rate * seconds)
        start = time.monotonic()
        for index in range(count):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame = _frame(index)
            for sock in socks:
                sock.send(frame)  # a few dozen bytes into a draining buffer: never short, never blocks
        print(count, flush=True)


def percentile(values: Any, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000 if ordered else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.listeners)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    crowd = Crowd(f"ws://127.0.0.1:{proc.stdout.readline().strip()}/", args.procs)
    try:
        crowd.add(args.listeners, hello=False, room=None)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        crowd.collect()
        server0, load0 = cpu_times(proc.pid), crowd.cpu_s()
        wall0 = time.monotonic()
        proc.stdin.write(f"play {args.rate} {args.duration}\n")
        proc.stdin.flush()
        sent = int(proc.stdout.readline())
        server1 = cpu_times(proc.pid)
        time.sleep(0.5)  # the last notes in flight
        load1 = crowd.cpu_s()
        wall = time.monotonic() - wall0
        latencies, _ = crowd.collect()
    finally:
        crowd.close()
        proc.kill()
        proc.wait()
    delivered = len(latencies)
    server_cpu = sum(server1) - sum(server0)
    load_cpu = sum(load1) - sum(load0)
    return {
        "listeners": args.listeners,
        "rate": args.rate,
        "duration_s": args.duration,
        "load_processes": args.procs,
        "sent": sent,
        "delivered": delivered,
        "lost": sent * args.listeners - delivered,
        "deliveries_per_s": round(delivered / args.duration),
        "latency_ms": {
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies) / 1000 if delivered else float("nan"),
        },
        "fanout_cpu_s": round(server_cpu, 2),
        "fanout_cpu_system_s": round(server1[1] - server0[1], 2),
        "fanout_us_per_delivery": round(server_cpu / delivered * 1e6, 2) if delivered else None,
        "load_cpu_s": round(load_cpu, 2),
        "load_cores": round(load_cpu / wall, 2),
        "load_us_per_delivery": round(load_cpu / delivered * 1e6, 2) if delivered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", "-n", type=int, default=200)
    parser.add_argument("--rate", "-r", type=float, default=50.0, help="notes per second")
    parser.add_argument("--duration", "-d", type=float, default=10.0, help="seconds")
    parser.add_argument("--procs", type=int, default=2, help="load processes")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
