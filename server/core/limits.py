"""Quotas: the numbers a session is held to, and the token bucket that enforces them."""

from __future__ import annotations

from dataclasses import dataclass

from pianorhythm.wire import pianorhythm_pb2 as pb

US = 1_000_000


@dataclass(frozen=True, slots=True)
class Limits:
    note_rate: int = 200
    note_burst: int = 600
    owner_note_rate: int = 300
    owner_note_burst: int = 900
    chat_messages: int = 4
    chat_window_s: int = 4
    other_rate: int = 20
    other_burst: int = 20
    ping_rate: int = 10
    ping_burst: int = 10
    max_frame_bytes: int = 64 * 1024
    max_events_per_batch: int = 64
    max_chat_chars: int = 500
    typing_timeout_ms: int = 5_000
    ping_interval_s: int = 20
    hello_timeout_s: float = 10.0
    abuse_close_s: float = 10.0
    bad_frames_max: int = 10
    bad_frames_window_s: float = 10.0
    max_connections_per_ip: int = 20
    crown_grace_s: float = 15.0
    resume_room_s: float = 120.0
    default_ban_s: int = 3600
    chat_history: int = 50
    # A room's fan-out budget: relayed note deliveries (one batch to one member) per second, shared by all
    # its players, so that no room can take the whole event loop while others use it. Alone on the server
    # a room may use 10,000/s, what the project's benchmark loads need ((200 listeners, 50 notes/s) and
    # (500, 20) in bench/relay.py). While another room is active (a member sent anything in the last
    # `room_active_s`), every room gets `room_fanout_shared_rate`: measured on the 2-core VM with 2,000
    # lobby members and one player at its note limit, a quiet room's note p99 went from ~1 ms to 5-9 ms
    # at 10,000/s, 3-9 ms at 5,000/s and 1.5-1.9 ms at 2,000/s (bench/README.md, "crowded lobby"). At
    # 2,000/s a room of 100 still carries 20 note batches/s and the 2,000-member lobby 1: clients in
    # crowded rooms send fewer, fuller batches (Welcome.limits tells them the budget).
    room_fanout_rate: int = 10_000
    room_fanout_burst: int = 10_000
    room_fanout_shared_rate: int = 2_000
    room_active_s: float = 2.0

    def to_pb(self) -> pb.Limits:
        return pb.Limits(
            note_rate=self.note_rate,
            note_burst=self.note_burst,
            owner_note_rate=self.owner_note_rate,
            owner_note_burst=self.owner_note_burst,
            chat_messages=self.chat_messages,
            chat_window_s=self.chat_window_s,
            other_rate=self.other_rate,
            max_frame_bytes=self.max_frame_bytes,
            max_events_per_batch=self.max_events_per_batch,
            max_chat_chars=self.max_chat_chars,
            typing_timeout_ms=self.typing_timeout_ms,
            ping_interval_s=self.ping_interval_s,
            room_fanout_rate=self.room_fanout_rate,
            room_fanout_burst=self.room_fanout_burst,
            room_fanout_shared_rate=self.room_fanout_shared_rate,
        )


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second. Times are microseconds."""

    __slots__ = ("tokens", "updated_us")

    def __init__(self, burst: float, now_us: int) -> None:
        self.tokens = float(burst)
        self.updated_us = now_us

    def take(self, cost: float, now_us: int, rate: float, burst: float) -> bool:
        elapsed = now_us - self.updated_us
        if elapsed > 0:
            self.tokens = min(float(burst), self.tokens + elapsed * rate / US)
            self.updated_us = now_us
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False
