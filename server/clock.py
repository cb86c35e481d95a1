"""The server clock: the wall-clock epoch read once at start, advanced by the monotonic clock."""

from __future__ import annotations

import time


class ServerClock:
    def __init__(self) -> None:
        self._epoch_us = time.time_ns() // 1000
        self._mono0_ns = time.monotonic_ns()

    def now_us(self) -> int:
        return self._epoch_us + (time.monotonic_ns() - self._mono0_ns) // 1000
