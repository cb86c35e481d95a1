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
    chat_history: int = 50

    @property
    def page_bytes(self) -> int:
        """The most a paged ServerMessage (room state, room list, history) may serialize to.

        7/8 of the frame cap: the page fits with room to spare in one of the outbox's batch frames
        (server.outbox.CHUNK_BYTES, 60 KiB of 64), beside the batch framing and other queued messages.
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
