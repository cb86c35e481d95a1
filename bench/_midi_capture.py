"""A JACK virtual MIDI input standing in for a hardware synth: records what arrives, for bench/midi_out.py.

    python bench/_midi_capture.py CLIENT OUT.json

Opens CLIENT:in (python-rtmidi, API_UNIX_JACK), prints "ready", and records every message with
time.perf_counter_ns() on arrival (CLOCK_MONOTONIC: the same clock as the other processes) until stdin
closes; then writes [[ns, [bytes...]], ...] to OUT.json. A process of its own, so its callback never
competes for the listener's GIL.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import rtmidi


def main() -> None:
    client, out = sys.argv[1], sys.argv[2]
    received: list[tuple[int, list[int]]] = []
    lock = threading.Lock()

    def on_message(message: tuple[list[int], float], _data: object = None) -> None:
        now = time.perf_counter_ns()
        with lock:
            received.append((now, message[0]))

    port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=client)
    port.set_callback(on_message)
    port.open_virtual_port("in")
    print("ready", flush=True)
    sys.stdin.read()
    port.cancel_callback()
    port.close_port()
    port.delete()
    with lock, open(out, "w") as file:
        json.dump(received, file)


if __name__ == "__main__":
    main()
