"""CPU cost of the client engine in a room receiving 50 notes/s. Prints JSON.

A `--server` process, a `--headless --no-audio` listener process in room "bench", and a sender process
playing `--rate` note-ons/s, each with its note-off `--hold-ms` later (so 2 x rate events/s, each its own
due time). The listener's CPU (utime + stime from /proc/<pid>/stat) over `--seconds` of wall time is
reported as % of one core, with how late events reached the synth's queue (p50/p99, 0 when in time) as
the listener prints it when it stops. The sound itself is timed by bench/e2e_latency.py (through JACK).

    .venv/bin/python bench/engine_cpu.py [--seconds 20] [--rate 50]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _note_sender import SCRIPT as SENDER_SCRIPT  # noqa: E402
from _note_sender import free_port  # noqa: E402

CLI = [sys.executable, "-m", "pianorhythm.tui.cli"]
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int, tid: int | None = None) -> float:
    path = Path(f"/proc/{pid}/stat") if tid is None else Path(f"/proc/{pid}/task/{tid}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def _sleeps(pid: int) -> int:
    """Voluntary context switches of the main thread: how often it went to sleep (~ event-loop wakes)."""
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE).group(1))  # type: ignore[union-attr]


def _thread_cpu_s(pid: int) -> dict[int, float]:
    return {int(t.name): _cpu_s(pid, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()}


def _wait_for(path: Path, pattern: str, timeout: float = 20.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text(errors="replace"))
        if match:
            return match
        time.sleep(0.05)
    raise RuntimeError(f"no {pattern!r} in {path}:\n{path.read_text(errors='replace')}")


def bench_headless(seconds: float, rate: float, hold_ms: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pr-cpu-"))
    port = free_port()
    url = f"ws://127.0.0.1:{port}/api/websocket"
    env = {**os.environ, "PIANORHYTHM_CONFIG_DIR": str(tmp), "PYTHONPATH": str(REPO)}
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(args: list[str], name: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        out = (tmp / f"{name}.out").open("wb")
        err = (tmp / f"{name}.err").open("wb")
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=kwargs.get("stdout", out), stderr=err)
        procs.append(proc)
        return proc

    try:
        spawn(
            [*CLI, "--server", "--port", str(port), "--db", str(tmp / "s.db"), "--log-level", "warning"],
            "srv",
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        listener = spawn(
            [*CLI, "--headless", "--connect", url, "--room", "bench", "--name", "me", "--no-audio"], "me"
        )
        _wait_for(tmp / "me.out", r"room bench users=1")
        sender = spawn(
            [
                sys.executable,
                SENDER_SCRIPT,
                url,
                "bench",
                str(rate),
                str(seconds + 4),
                str(int(hold_ms * 1000)),
            ],
            "sender",
            stdout=subprocess.PIPE,
        )
        assert sender.stdout is not None
        sender.stdout.readline()
        time.sleep(2.0)  # the playout delay settles
        cpu0, threads0, wall0 = _cpu_s(listener.pid), _thread_cpu_s(listener.pid), time.monotonic()
        sleeps0 = _sleeps(listener.pid)
        time.sleep(seconds)
        cpu1, threads1, wall1 = _cpu_s(listener.pid), _thread_cpu_s(listener.pid), time.monotonic()
        sleeps1 = _sleeps(listener.pid)
        listener.send_signal(2)
        listener.wait(10)
        out = (tmp / "me.out").read_text()
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(5)
    stats = re.search(r"stats sent=\d+ received=(\d+) late=(\d+).*", out)
    late = re.search(r"queue_late_p50=([\d.]+)ms queue_late_p99=([\d.]+)ms", out)
    return {
        "notes_per_s": rate,
        "events_per_s": 2 * rate,
        "seconds": seconds,
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "main_thread_cpu_percent": round(
            100 * (threads1.get(listener.pid, 0) - threads0.get(listener.pid, 0)) / (wall1 - wall0), 1
        ),
        "main_thread_ms_per_event": round(
            1000
            * (threads1.get(listener.pid, 0) - threads0.get(listener.pid, 0))
            / (wall1 - wall0)
            / (2 * rate),
            3,
        ),
        "main_thread_wakes_per_s": round((sleeps1 - sleeps0) / (wall1 - wall0), 1),
        "other_threads_cpu_percent": round(
            100
            * sum(v - threads0.get(t, 0) for t, v in threads1.items() if t != listener.pid)
            / (wall1 - wall0),
            1,
        ),
        "received": int(stats.group(1)) if stats else None,
        "late": int(stats.group(2)) if stats else None,
        "queue_late_ms": {"p50": float(late.group(1)), "p99": float(late.group(2))} if late else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="note-ons per second")
    parser.add_argument("--hold-ms", type=float, default=15.0, help="note-off this long after its note-on")
    args = parser.parse_args()
    result: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    result["headless"] = bench_headless(args.seconds, args.rate, args.hold_ms)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
