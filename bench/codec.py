"""Codec cost: encode and decode time per frame for note batches and a 50-user room state.

Prints JSON. Target: encode + decode of a 1-event note batch <= 10 us.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pianorhythm.wire import pb  # noqa: E402
from pianorhythm.wire.codec import CodecConfig, decode_client, decode_server, encode  # noqa: E402

PLAIN = CodecConfig(compress_threshold=1 << 30)
COMPRESSED = CodecConfig(compress_threshold=0)


def note_batch(events: int) -> pb.ClientMessage:
    return pb.ClientMessage(
        note_batch=pb.NoteBatch(
            base_time_us=1_764_000_000_000_000,
            events=[
                pb.NoteEvent(offset_us=i * 2500, note=pb.Note(key=48 + i, velocity=80 + i))
                for i in range(events)
            ],
        )
    )


def room_state(users: int) -> pb.ServerMessage:
    return pb.ServerMessage(
        room_state=pb.RoomState(
            name="Jazz Lounge",
            settings=pb.RoomSettings(visible=True, user_limit=100, chat_enabled=True),
            owner_id=1,
            users=[
                pb.User(
                    id=i + 1,
                    name=f"player-{i:03d}",
                    color=f"#{(i * 2654435761) & 0xFFFFFF:06x}",
                    instrument=i % 128,
                    joined_room_us=1_764_000_000_000_000 + i,
                )
                for i in range(users)
            ],
            chat_history=[
                pb.ChatMessage(
                    id=i,
                    user_id=i % users + 1,
                    user_name=f"player-{i % users:03d}",
                    user_color="#88ccff",
                    content=f"message number {i} in the room",
                    server_time_us=1_764_000_000_000_000 + i,
                )
                for i in range(50)
            ],
        )
    )


def per_call_us(fn: Callable[[], object], seconds: float = 0.4) -> float:
    """Median of 5 runs of the mean time per call."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start > seconds / 5:
            break
        calls *= 2
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(runs)[2]


def measure(
    name: str, mode: str, message: pb.ClientMessage | pb.ServerMessage, config: CodecConfig
) -> dict[str, object]:
    decode = decode_client if isinstance(message, pb.ClientMessage) else decode_server
    frame = encode(message, config)
    assert decode(frame, config) == [message]
    encode_us = per_call_us(lambda: encode(message, config))
    decode_us = per_call_us(lambda: decode(frame, config))
    return {
        "case": name,
        "mode": mode,  # "compress" asks for lz4 on every frame; it is kept only when it saves bytes
        "compressed": bool(frame[0] & 1),
        "frame_bytes": len(frame),
        "encode_us": round(encode_us, 2),
        "decode_us": round(decode_us, 2),
        "round_trip_us": round(encode_us + decode_us, 2),
    }


def main() -> None:
    cases: list[tuple[str, pb.ClientMessage | pb.ServerMessage]] = [
        ("note_batch_1", note_batch(1)),
        ("note_batch_10", note_batch(10)),
        ("room_state_50_users", room_state(50)),
    ]
    modes = (("plain", PLAIN), ("compress", COMPRESSED))
    results = [measure(name, mode, message, config) for name, message in cases for mode, config in modes]
    one = next(r for r in results if r["case"] == "note_batch_1" and r["mode"] == "plain")
    print(
        json.dumps(
            {
                "benchmark": "codec",
                "python": sys.version.split()[0],
                "results": results,
                "target_note_batch_1_round_trip_us": 10,
                "meets_target": float(str(one["round_trip_us"])) <= 10,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
