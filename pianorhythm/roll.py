"""The keyboard-roll model (pure): which keys each player holds, and the bars of the scrolling roll.

Every note is a `Bar` from its key press to the end of its sound. A bar is *held* while the key is down and
*sustained* after the key is released while that player's sustain pedal is down; it ends at the release (no
pedal) or when the pedal comes up. Time is passed in (seconds on any monotonic clock, the same for every
call), never read here, so the model is exact under test.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter
from typing import Final

DEFAULT_HISTORY_S: Final = 30.0
_START: Final = attrgetter("start")
_ORDER: Final = attrgetter("start", "seq")


class KeyState(Enum):
    HELD = "held"
    SUSTAINED = "sustained"


@dataclass(slots=True)
class Bar:
    """One note of one player on the roll."""

    player: int
    key: int
    velocity: int
    start: float
    release: float | None = None  # the key came up (None while held)
    end: float | None = None  # the sound stopped (None while sounding)
    seq: int = 0  # the model's count of bars when this one started (orders bars that start together)

    def state_at(self, t: float) -> KeyState | None:
        if t < self.start or (self.end is not None and t >= self.end):
            return None
        if self.release is None or t < self.release:
            return KeyState.HELD
        return KeyState.SUSTAINED

    def overlaps(self, t0: float, t1: float) -> bool:
        """Whether the bar sounds at some time in [t0, t1)."""
        return self.start < t1 and (self.end is None or self.end > t0)

    def state_in(self, t0: float, t1: float) -> KeyState | None:
        """HELD if the key is down at some time in [t0, t1), else SUSTAINED if it sounds there, else None."""
        if not self.overlaps(t0, t1):
            return None
        if self.release is None or self.release > max(t0, self.start):
            return KeyState.HELD
        return KeyState.SUSTAINED


@dataclass(slots=True)
class _Player:
    pedal: bool = False
    sounding: dict[int, Bar] = field(default_factory=dict)  # key -> its current bar


class RollModel:
    """Held keys per player plus the bars of the last `history_s` seconds."""

    def __init__(self, history_s: float = DEFAULT_HISTORY_S) -> None:
        self.history_s = history_s
        self._players: dict[int, _Player] = {}
        self._bars: list[Bar] = []  # in start order
        self._seq = 0
        self._longest = 0.0  # the longest finished bar: finished bars before t0 - this are over by t0
        self._last_prune = float("-inf")
        self.version = 0  # bumped whenever the set of sounding keys changes

    # -- events ------------------------------------------------------------------------------------------

    def note_on(self, player: int, key: int, velocity: int, now: float) -> None:
        if velocity <= 0:
            self.note_off(player, key, now)
            return
        state = self._players.setdefault(player, _Player())
        previous = state.sounding.pop(key, None)
        if previous is not None:  # re-struck: the old note stops here
            self._finish(previous, now)
        self._seq += 1
        bar = Bar(player=player, key=key, velocity=velocity, start=now, seq=self._seq)
        state.sounding[key] = bar
        if self._bars and self._bars[-1].start > now:
            bisect.insort_right(self._bars, bar, key=_START)  # a clock that went back: keep start order
        else:
            self._bars.append(bar)
        self.version += 1
        self._maybe_prune(now)

    def note_off(self, player: int, key: int, now: float) -> None:
        state = self._players.get(player)
        bar = state.sounding.get(key) if state else None
        if state is None or bar is None or bar.release is not None:
            return
        if state.pedal:
            bar.release = now
        else:
            del state.sounding[key]
            self._finish(bar, now)
        self.version += 1

    def pedal(self, player: int, down: bool, now: float) -> None:
        state = self._players.setdefault(player, _Player())
        if state.pedal == down:
            return
        state.pedal = down
        if not down:
            for key, bar in list(state.sounding.items()):
                if bar.release is not None:
                    del state.sounding[key]
                    self._finish(bar, now)
        self.version += 1

    def release_player(self, player: int, now: float) -> None:
        """The player left or dropped: every note and the pedal come up now (no stuck notes)."""
        state = self._players.pop(player, None)
        if state is None:
            return
        for bar in state.sounding.values():
            self._finish(bar, now)
        self.version += 1

    def release_all(self, now: float) -> None:
        for player in list(self._players):
            self.release_player(player, now)

    # -- queries -----------------------------------------------------------------------------------------

    def held(self, player: int) -> dict[int, KeyState]:
        state = self._players.get(player)
        if state is None:
            return {}
        return {key: _current(bar) for key, bar in state.sounding.items()}

    def lit_keys(self) -> dict[int, list[tuple[int, KeyState]]]:
        """Key -> the players sounding it now (in the order they struck it) and how."""
        bars = sorted(
            (bar for state in self._players.values() for bar in state.sounding.values()),
            key=lambda bar: bar.start,
        )
        lit: dict[int, list[tuple[int, KeyState]]] = {}
        for bar in bars:
            lit.setdefault(bar.key, []).append((bar.player, _current(bar)))
        return lit

    def sounding_count(self) -> int:
        return sum(len(state.sounding) for state in self._players.values())

    def bars(self, t0: float, t1: float) -> Iterator[Bar]:
        """The bars that sound at some time in [t0, t1), in start order.

        Only the bars that started late enough to reach t0 are looked at (plus any still sounding from
        before), so a query costs what is near the window, not the whole history.
        """
        bars = self._bars
        end = bisect.bisect_left(bars, t1, key=_START)
        cut = t0 - self._longest
        first = bisect.bisect_left(bars, cut, 0, end, key=_START)
        if first:
            early = [
                bar
                for state in self._players.values()
                for bar in state.sounding.values()
                if bar.start < cut and bar.overlaps(t0, t1)
            ]
            early.sort(key=_ORDER)
            yield from early
        for index in range(first, end):
            bar = bars[index]
            if bar.overlaps(t0, t1):
                yield bar

    def bar_count(self) -> int:
        return len(self._bars)

    # -- internals ---------------------------------------------------------------------------------------

    def _finish(self, bar: Bar, now: float) -> None:
        if bar.release is None:
            bar.release = now
        bar.end = now
        self._longest = max(self._longest, now - bar.start)

    def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune < self.history_s / 4:
            return
        self._last_prune = now
        cutoff = now - self.history_s
        self._bars = [bar for bar in self._bars if bar.end is None or bar.end >= cutoff]
        self._longest = max((bar.end - bar.start for bar in self._bars if bar.end is not None), default=0.0)

    def prune(self, now: float) -> None:
        """Forget bars that ended more than `history_s` ago."""
        self._last_prune = float("-inf")
        self._maybe_prune(now)


def _current(bar: Bar) -> KeyState:
    return KeyState.HELD if bar.release is None else KeyState.SUSTAINED
