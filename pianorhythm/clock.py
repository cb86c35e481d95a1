"""Clock-offset estimation from Ping/Pong exchanges (NTP-style). Pure: timestamps in, estimate out.

One exchange gives four timestamps: t0 the client sends the ping (client clock), t1 the server receives it
and t2 the server answers (server clock), t3 the client receives the pong (client clock). With the offset
theta = server clock - client clock and one-way delays up/down:

    t1 = t0 + theta + up        ->  theta = t1 - t0 - up    <= t1 - t0
    t3 = t2 - theta + down      ->  theta = t2 - t3 + down  >= t2 - t3

so every sample bounds the offset to [t2 - t3, t1 - t0]; its midpoint is the classic NTP offset
((t1 - t0) + (t2 - t3)) / 2 and its width is the round trip (t3 - t0) - (t2 - t1).

The estimator keeps a sliding window of samples and intersects their bounds: the lower bound comes from the
sample with the shortest way back, the upper bound from the one with the shortest way out. That is the
lowest-RTT filter applied to each direction separately, which converges faster than picking the single
lowest-RTT sample when both directions jitter independently, and a one-sided spike (a slow way out or a
slow way back) only loosens the bound on its own side, which the intersection ignores. If clock drift or a
server clock step makes the bounds cross, the estimate falls back to the mean offset of the lowest-RTT
quarter of the window.

Notes use the estimate through a slew (`Slew`): the offset that stamps our notes and places remote ones
follows the estimate freely until the first note depends on it, then at most SLEW_PPM fast, so a better
ping never moves a note by more than that fraction of the time since the previous one (at 150 ± 60 ms a
jump of the estimate stretched one interval by 5-12 ms). It starts from the offset the last ping told the
relay, so the uplink floor below holds from the first note.

The floor of a note's transit (how low arrival - capture can go, as the listener measures it): a note
captured at c on the player's clock is stamped c + o_A (o_A: the player's applied offset) and reaches the
relay at server time c + theta_A + up, so its uplink part is relay time - stamp = up + theta_A - o_A. A ping
sent at t0 reached the relay at t1 = t0 + theta_A + up, so over the relay's recent pings

    uplink floor = min(t1 - t0) - o_A              (the relay knows t1 - t0; the Ping carries o_A)

The listener places the stamp at stamp - o_B on its clock and hears the note at r + down - theta_B (r: the
relay's send time), so the downlink part is down - theta_B + o_B; a pong sent at t2 arrived at
t3 = t2 + down - theta_B, so

    downlink floor = min(t3 - t2) + o_B          (the listener knows both)

and the transit floor is their sum, whatever the offsets' errors: the errors are in the stamps and in the
pings alike. With o = the intersected-bounds midpoint (theta + (min up - min down) / 2, see above) each side
comes to (min up + min down) / 2: half that side's narrowest round trip, the width of its offset bounds.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Final

DEFAULT_WINDOW: Final = 64
SPREAD_WINDOW: Final = 32  # one-way delays: the burst, the settle pings and a few more
BURST_PINGS: Final = 8
SETTLE_PINGS: Final = 16  # after the burst, one every SETTLE_INTERVAL_S: the bounds tighten in seconds
SETTLE_INTERVAL_S: Final = 0.5
PING_INTERVAL_S: Final = 5.0
# How fast the note offset follows the estimate once notes depend on it: a 1 s interval moves by 0.2 ms at
# most on either side (the playout leaves room for it beside its steps and the synth's block), 10 ms of
# correction takes 50 s, and quartz clocks drift at a tenth of this.
SLEW_PPM: Final = 200


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One ping/pong exchange, all in microseconds (t0/t3 on the client clock, t1/t2 on the server's)."""

    t0: int
    t1: int
    t2: int
    t3: int

    @property
    def offset_us(self) -> float:
        return ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2

    @property
    def rtt_us(self) -> int:
        return (self.t3 - self.t0) - (self.t2 - self.t1)

    @property
    def upper_us(self) -> int:
        """The offset is at most this (the way out took no time)."""
        return self.t1 - self.t0

    @property
    def lower_us(self) -> int:
        """The offset is at least this (the way back took no time)."""
        return self.t2 - self.t3


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    offset_us: float  # server time = client time + offset
    rtt_us: float  # median round trip over the window
    min_rtt_us: int
    jitter_us: float  # mean absolute change between consecutive round trips (RFC 3550 style)
    uncertainty_us: float  # half the width of the intersected bounds (0 once the bounds cross)
    samples: int


class ClockEstimator:
    """Sliding window of ping samples -> offset, RTT and jitter."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must hold at least one sample")
        self._samples: deque[ClockSample] = deque(maxlen=window)
        self._estimate: ClockEstimate | None = None

    def add(self, sample: ClockSample) -> ClockEstimate | None:
        """Add a sample; returns the new estimate (None if the sample is impossible and was dropped)."""
        if sample.rtt_us < 0 or sample.t3 < sample.t0 or sample.t2 < sample.t1:
            return None
        self._samples.append(sample)
        self._estimate = self._compute()
        return self._estimate

    def add_pong(self, t0: int, t1: int, t2: int, t3: int) -> ClockEstimate | None:
        return self.add(ClockSample(t0, t1, t2, t3))

    def reset(self) -> None:
        """Forget everything (e.g. after reconnecting to a different server)."""
        self._samples.clear()
        self._estimate = None

    @property
    def estimate(self) -> ClockEstimate | None:
        return self._estimate

    @property
    def ready(self) -> bool:
        return self._estimate is not None

    @property
    def offset_us(self) -> float:
        return self._estimate.offset_us if self._estimate else 0.0

    def to_server_us(self, client_us: int) -> int:
        return round(client_us + self.offset_us)

    def to_client_us(self, server_us: int) -> int:
        return round(server_us - self.offset_us)

    def _compute(self) -> ClockEstimate:
        samples = list(self._samples)
        rtts = [s.rtt_us for s in samples]
        lower = max(s.lower_us for s in samples)
        upper = min(s.upper_us for s in samples)
        if lower <= upper:
            offset = (lower + upper) / 2
            uncertainty = (upper - lower) / 2
        else:
            best = sorted(samples, key=lambda s: s.rtt_us)[: max(1, len(samples) // 4)]
            offset = statistics.fmean(s.offset_us for s in best)
            uncertainty = 0.0
        jitter = (
            statistics.fmean(abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False))
            if len(rtts) > 1
            else 0.0
        )
        return ClockEstimate(
            offset_us=offset,
            rtt_us=statistics.median(rtts),
            min_rtt_us=min(rtts),
            jitter_us=jitter,
            uncertainty_us=uncertainty,
            samples=len(samples),
        )


class DelaySpread:
    """How far one direction's delay reaches above its lowest, over the last `window` one-way samples.

    A sample is (receive time - send time) on two unsynchronised clocks: it carries an unknown constant
    offset, which the difference max - min cancels. Fed with a client's pings on the server (its uplink) or
    with pongs on the client (its downlink), it tells a listener how much delay that leg adds at worst.
    """

    def __init__(self, window: int = SPREAD_WINDOW) -> None:
        self._samples: deque[int] = deque(maxlen=window)

    def add(self, send_us: int, receive_us: int) -> None:
        self._samples.append(receive_us - send_us)

    def reset(self) -> None:
        self._samples.clear()

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def spread_us(self) -> int:
        return max(self._samples) - min(self._samples) if self._samples else 0

    @property
    def lowest_us(self) -> int | None:
        """The least sample, offset included (None without samples): the path's floor once that is known."""
        return min(self._samples) if self._samples else None


class Slew:
    """A value that follows a moving target at most `ppm` millionths of the time elapsed between looks,
    from `start` on (until then it holds nothing; `reset` goes back to that)."""

    def __init__(self, ppm: int = SLEW_PPM) -> None:
        self._ppm = ppm
        self._value: float | None = None
        self._at_us = 0

    @property
    def started(self) -> bool:
        return self._value is not None

    def start(self, at_us: int, value: float) -> None:
        self._value, self._at_us = value, at_us

    def at(self, now_us: int, target: float) -> float:
        """The value now, moved toward `target` as far as the time since the last look allows."""
        if self._value is None:
            raise RuntimeError("the slew has not started")
        step = max(0, now_us - self._at_us) * self._ppm / 1e6
        self._value = min(self._value + step, max(self._value - step, target))
        self._at_us = max(self._at_us, now_us)
        return self._value

    def reset(self) -> None:
        self._value = None
