"""A JACK client that records what a synth client sends out, with each cycle's frame time. For the benches.

    python bench/_jack_capture.py SOURCE_CLIENT OUT.npz SECONDS

Connects an input port to each output port of SOURCE_CLIENT (e.g. "pianorhythm-tui"), prints "ready", and
records until stdin closes (or SECONDS are full). OUT.npz holds `audio` (float32, frames x ports),
`cycle_frame` and `cycle_us` (JACK's frame counter and time at the start of each cycle, for the cycle's
first frame), `jack_to_perf_us` (add it to a JACK time to get time.perf_counter_ns() / 1000: JACK keeps a
clock of its own, so the offset is measured), `rate` and `playback_latency` (frames from the synth's port
to the sound card, as JACK reports it: a sample computed in a cycle is heard that many frames later).

It runs in a process of its own so that its process callback (Python, on JACK's thread) never competes
for the listener's GIL. libjack is reached through ctypes: its C API, documented and stable since 2005.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time

import numpy as np

JACK_DEFAULT_AUDIO_TYPE = b"32 bit float mono audio"
JACK_PORT_IS_INPUT = 0x1
JACK_PORT_IS_OUTPUT = 0x2
JACK_PLAYBACK_LATENCY = 1
JACK_NO_START_SERVER = 0x01


class LatencyRange(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
    vp, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
    lib.jack_client_open.restype = vp
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_port_register.restype = vp
    lib.jack_port_register.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong]
    lib.jack_port_get_buffer.restype = vp
    lib.jack_port_get_buffer.argtypes = [vp, u32]
    lib.jack_port_name.restype = ctypes.c_char_p
    lib.jack_port_name.argtypes = [vp]
    lib.jack_port_by_name.restype = vp
    lib.jack_port_by_name.argtypes = [vp, ctypes.c_char_p]
    lib.jack_get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.jack_get_ports.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
    lib.jack_connect.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
    lib.jack_activate.argtypes = [vp]
    lib.jack_deactivate.argtypes = [vp]
    lib.jack_client_close.argtypes = [vp]
    lib.jack_get_sample_rate.restype = u32
    lib.jack_get_sample_rate.argtypes = [vp]
    lib.jack_last_frame_time.restype = u32
    lib.jack_last_frame_time.argtypes = [vp]
    lib.jack_frames_to_time.restype = u64
    lib.jack_frames_to_time.argtypes = [vp, u32]
    lib.jack_get_time.restype = u64
    lib.jack_port_get_latency_range.argtypes = [vp, ctypes.c_int, ctypes.POINTER(LatencyRange)]
    lib.jack_free.argtypes = [vp]
    lib.jack_set_process_callback.argtypes = [vp, vp, vp]
    return lib


def _jack_to_perf_us(lib: ctypes.CDLL) -> float:
    """perf_counter - jack_get_time in µs, from the tightest of 200 brackets."""
    best = (float("inf"), 0.0)
    for _ in range(200):
        before = time.perf_counter_ns()
        jack = lib.jack_get_time()
        after = time.perf_counter_ns()
        best = min(best, (after - before, (before + after) / 2000 - jack))
    return best[1]


def main() -> None:
    source, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lib = _lib()
    status = ctypes.c_int(0)
    client = lib.jack_client_open(b"onset-capture", JACK_NO_START_SERVER, ctypes.byref(status))
    if not client:
        raise SystemExit(f"jack_client_open failed (status {status.value:#x})")
    sources_raw = lib.jack_get_ports(
        client, f"^{source}:".encode(), JACK_DEFAULT_AUDIO_TYPE, JACK_PORT_IS_OUTPUT
    )
    sources = []
    i = 0
    while sources_raw and sources_raw[i]:
        sources.append(sources_raw[i])
        i += 1
    if not sources:
        raise SystemExit(f"no output ports on JACK client {source!r}")
    rate = lib.jack_get_sample_rate(client)
    audio = np.zeros((int(seconds * rate), len(sources)), dtype=np.float32)
    columns = [np.zeros(audio.shape[0], dtype=np.float32) for _ in sources]
    ports = [
        lib.jack_port_register(client, f"in_{n}".encode(), JACK_DEFAULT_AUDIO_TYPE, JACK_PORT_IS_INPUT, 0)
        for n in range(len(sources))
    ]
    cycle_frame: list[int] = []
    cycle_us: list[int] = []
    position = [0]
    full = threading.Event()

    def on_cycle(nframes: int, _arg: object) -> int:
        at = position[0]
        if at + nframes > len(columns[0]):
            full.set()
            return 0
        frame = lib.jack_last_frame_time(client)
        cycle_frame.append(frame)
        cycle_us.append(lib.jack_frames_to_time(client, frame))
        for port, column in zip(ports, columns, strict=True):
            ctypes.memmove(column.ctypes.data + 4 * at, lib.jack_port_get_buffer(port, nframes), 4 * nframes)
        position[0] = at + nframes
        return 0

    process = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)(on_cycle)
    lib.jack_set_process_callback(client, ctypes.cast(process, ctypes.c_void_p), None)
    if lib.jack_activate(client) != 0:
        raise SystemExit("jack_activate failed")
    for src, port in zip(sources, ports, strict=True):
        lib.jack_connect(client, src, lib.jack_port_name(port))
    latency = LatencyRange()
    lib.jack_port_get_latency_range(lib.jack_port_by_name(client, sources[0]), JACK_PLAYBACK_LATENCY, latency)
    lib.jack_free(sources_raw)
    offset = _jack_to_perf_us(lib)
    print("ready", flush=True)

    def until_stdin_closes() -> None:
        sys.stdin.read()
        full.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    full.wait(seconds + 5)
    lib.jack_deactivate(client)
    frames = position[0]
    for n, column in enumerate(columns):
        audio[:, n] = column
    np.savez(
        out,
        audio=audio[:frames],
        cycle_frame=np.array(cycle_frame, dtype=np.int64),
        cycle_us=np.array(cycle_us, dtype=np.int64),
        jack_to_perf_us=offset,
        rate=rate,
        playback_latency=latency.max,
    )
    lib.jack_client_close(client)


if __name__ == "__main__":
    main()
