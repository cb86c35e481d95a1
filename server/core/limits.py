"""Quotas: the numbers a session is held to, and the token bucket that enforces them."""

from __future__ import annotations

import math
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
    # Any 500 characters of the Basic Multilingual Plane (up to 3 bytes each) fit; emoji and other 4-byte
    # characters stop at 375. Keeps a stored line, and so 50 lines of history, bounded in bytes.
    max_chat_bytes: int = 1500
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
    kick_cooldown_s: int = 30
    chat_history: int = 50
    # Password guessing: attempts per address (a token bucket; a right password gives its token back),
    # failures per room, and password hashes waiting for the worker thread across the server.
    password_attempts_burst: int = 5
    password_attempts_per_min: float = 6.0
    password_failures_burst: int = 10
    password_failures_per_min: float = 20.0
    password_jobs_max: int = 16
    # Bounded growth: new room names per address (a token bucket), and how long unused state is kept.
    new_room_burst: int = 10
    new_rooms_per_min: float = 1.0
    room_expiry_s: float = 30 * 86_400  # a room nobody entered for this long is forgotten
    user_expiry_s: float = 30 * 86_400  # a user not seen for this long is pruned (their token stops working)
    store_sweep_s: float = 3_600.0  # how often stored rooms and users are swept

    # A room's fan-out budget: relayed note deliveries (one batch to one member) per second, shared by all
    # its players, so that no room can take the whole event loop while others use it. Alone on the server
    # a room may use 10,000/s, what the project's benchmark loads need ((200 listeners, 50 notes/s) and
    # (500, 20) in bench/relay.py). While another room is active (a member played a note in the last
    # `room_active_s`), every room gets `room_fanout_shared_rate`: measured on the 2-core VM with 2,000
    # lobby members and one player at its note limit, a quiet room's note p99 went from ~1 ms to 5-9 ms
    # at 10,000/s, 3-9 ms at 5,000/s and 1.5-1.9 ms at 2,000/s (bench/README.md, "crowded lobby"). At
    # 2,000/s a room of 100 still carries 20 note batches/s and the 2,000-member lobby 1: clients in
    # crowded rooms send fewer, fuller batches (Welcome.limits tells them the budget).
    room_fanout_rate: int = 10_000
    room_fanout_burst: int = 10_000
    room_fanout_shared_rate: int = 2_000
    room_active_s: float = 2.0

    @property
    def page_bytes(self) -> int:
        """The most a paged ServerMessage (room state, room list, history) may serialize to.

        7/8 of the frame cap: the page fits with room to spare in one of the outbox's batch frames
        (pianorhythm.server.outbox.CHUNK_BYTES, 60 KiB of 64), beside the batch framing and other
        queued messages.
        """
        return self.max_frame_bytes * 7 // 8

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
            max_chat_bytes=self.max_chat_bytes,
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

    def refill(self, now_us: int, rate: float, burst: float) -> None:
        elapsed = now_us - self.updated_us
        if elapsed > 0:
            self.tokens = min(float(burst), self.tokens + elapsed * rate / US)
            self.updated_us = now_us

    def take(self, cost: float, now_us: int, rate: float, burst: float) -> bool:
        self.refill(now_us, rate, burst)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def wait_us(self, cost: float, rate: float) -> int:
        """Microseconds until `cost` tokens are there (after a refill at the current time)."""
        missing = cost - self.tokens
        return 0 if missing <= 0 else math.ceil(missing * US / rate)


class KeyedBuckets:
    """One token bucket per key (an address, a room), all with the same rate and burst.

    A bucket that has refilled to full holds no information, so `sweep` forgets it: the map only holds the
    keys that were active within the last burst/rate seconds.
    """

    __slots__ = ("rate", "burst", "buckets")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, now_us: int, cost: float = 1.0) -> int:
        """Take `cost` tokens: 0 on success, else the microseconds to wait before it would succeed."""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.burst, now_us)
        if bucket.take(cost, now_us, self.rate, self.burst):
            return 0
        return bucket.wait_us(cost, self.rate)

    def give_back(self, key: str, now_us: int, amount: float = 1.0) -> None:
        bucket = self.buckets.get(key)
        if bucket is not None:
            bucket.refill(now_us, self.rate, self.burst)
            bucket.tokens = min(float(self.burst), bucket.tokens + amount)

    def sweep(self, now_us: int) -> None:
        for key, bucket in list(self.buckets.items()):
            bucket.refill(now_us, self.rate, self.burst)
            if bucket.tokens >= self.burst:
                del self.buckets[key]
