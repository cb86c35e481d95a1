"""Does JACK deliver a MIDI message twice when the sending client misses cycles? (bench/midi_out.py's extras)

A sender process (this script with --send) writes 3,000 distinct note-ons through python-rtmidi's JACK
backend, one a millisecond, to a JACK virtual MIDI input recorded by bench/_midi_capture.py. Meanwhile it is
stopped (SIGSTOP) `--stops` times for `--stop-ms`, as a loaded machine stalls a listener: its JACK process
callback, which clears its output buffer each cycle, does not run. Each message is numbered by its key and
velocity, so the capture shows which arrived more than once.

    .venv/bin/python bench/jack_midi_stall.py [--stops 0 10] [--stop-ms 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURE_CLIENT = "STALLCAP"
MESSAGES = 3000


def send(count: int) -> None:
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="stall-sender")
    ports = [str(port) for port in out.get_ports()]
    out.open_port(next(i for i, port in enumerate(ports) if CAPTURE_CLIENT in port), "out")
    print("ready", flush=True)
    for i in range(count):
        out.send_message([0x90, i % 128, 1 + i // 128])
        time.sleep(0.001)
    time.sleep(0.5)  # RtMidi's ring buffer is emptied by the JACK thread: let it go before closing
    out.close_port()
    out.delete()
    print("done", flush=True)


def run(stops: int, stop_s: float, workdir: Path) -> dict[str, object]:
    from e2e_latency import Jackd

    jackd = Jackd(workdir, period=32)
    out = workdir / "capture.json"
    capture = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "_midi_capture.py"), CAPTURE_CLIENT, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert capture.stdout is not None and capture.stdout.readline().strip() == b"ready"
        sender = subprocess.Popen([sys.executable, __file__, "--send", str(MESSAGES)], stdout=subprocess.PIPE)
        assert sender.stdout is not None and sender.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
        for _ in range(stops):
            os.kill(sender.pid, signal.SIGSTOP)
            time.sleep(stop_s)
            os.kill(sender.pid, signal.SIGCONT)
            time.sleep(0.2)
        sender.stdout.readline()
        sender.wait(30)
    finally:
        if capture.stdin is not None:
            capture.stdin.close()
        capture.wait(10)
        jackd.stop()
    numbers = Counter((message[2] - 1) * 128 + message[1] for _, message in json.loads(out.read_text()))
    repeated = [copies for copies in numbers.values() if copies > 1]
    return {
        "stops": stops,
        "stop_ms": round(stop_s * 1000),
        "sent": MESSAGES,
        "arrived": sum(numbers.values()),
        "distinct_arrived": len(numbers),
        "arrived_more_than_once": len(repeated),
        "most_copies": max(repeated, default=1),
        "xruns": jackd.xruns(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, nargs="+", default=[0, 10])
    parser.add_argument("--stop-ms", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--send", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        send(args.send)
        return
    sys.path.insert(0, str(REPO / "bench"))
    results = []
    for stops in args.stops:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run(stops, args.stop_ms / 1000, Path(tmp)))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "jack_midi_stall", "runs": results}, indent=2))


if __name__ == "__main__":
    main()
