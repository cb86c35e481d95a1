"""Reconnect delays: exponential from 1 s to 30 s with ±50 % jitter, giving up after a few attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BASE_S = 1.0
MAX_S = 30.0
JITTER = 0.5
MAX_ATTEMPTS = 5


@dataclass(slots=True)
class Backoff:
    """Counts failed attempts; `next_delay()` is None once the session should report that it gave up."""

    base_s: float = BASE_S
    max_s: float = MAX_S
    jitter: float = JITTER
    max_attempts: int = MAX_ATTEMPTS
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def failed(self) -> None:
        """Count one failed connection attempt."""
        self.failures += 1

    def next_delay(self) -> float | None:
        """How long to wait before the next attempt, or None once `max_attempts` attempts have failed."""
        if self.failures >= self.max_attempts:
            return None
        nominal = min(self.max_s, self.base_s * float(2**self.failures))
        return nominal * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self.failures = 0
