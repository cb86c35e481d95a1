"""Which synth channel each player plays on: one channel per player, so pedals and programs never mix.

Pure bookkeeping (no synth here). The engine asks for a player's channel when it first hears from them and
gives it back when they leave, after telling the synth to release that channel. Freed channels go to the
back of the queue, so a channel's release tail has the longest possible time to fade before it is reused.
Channels 9, 25, 41, ... (MIDI channel 10 of each group of 16) are the General MIDI drum channels in most
synths and are never handed out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Final

DEFAULT_CHANNELS: Final = 128
DRUM_CHANNEL: Final = 9


def usable_channels(total: int) -> list[int]:
    """Channels 0..total-1 without the drum channel of each group of 16."""
    return [c for c in range(total) if c % 16 != DRUM_CHANNEL]


class ChannelAllocator:
    """Maps player keys (user ids, "me", file names...) to synth channels.

    With more players than channels (more than 120 with the default 128), extra players share channels
    (chosen by arrival order) rather than being silent; `shared` tells whether that happened.
    """

    def __init__(self, total_channels: int = DEFAULT_CHANNELS) -> None:
        if total_channels < 1:
            raise ValueError("total_channels must be at least 1")
        self._free: deque[int] = deque(usable_channels(total_channels))
        self._all: tuple[int, ...] = tuple(self._free)
        self._owner: dict[Hashable, int] = {}
        self._overflow = 0
        self.shared = False

    def channel_of(self, player: Hashable) -> int | None:
        """The player's channel, or None when they hold none."""
        return self._owner.get(player)

    def acquire(self, player: Hashable) -> tuple[int, bool]:
        """The player's channel and whether it is newly assigned (then set its program before playing)."""
        channel = self._owner.get(player)
        if channel is not None:
            return channel, False
        if self._free:
            channel = self._free.popleft()
        else:
            channel = self._all[self._overflow % len(self._all)]
            self._overflow += 1
            self.shared = True
        self._owner[player] = channel
        return channel, True

    def release(self, player: Hashable) -> int | None:
        """Give the player's channel back; returns it (release its notes on the synth) or None.

        A channel still shared with another player (only past 120 players) stays with them and is not freed;
        it is still returned, because releasing it is better than leaving the leaver's notes stuck.
        """
        channel = self._owner.pop(player, None)
        if channel is None:
            return None
        if channel not in self._owner.values() and channel not in self._free:
            self._free.append(channel)
        return channel

    @property
    def free_count(self) -> int:
        """How many channels are free."""
        return len(self._free)

    def players(self) -> dict[Hashable, int]:
        """A copy of the current player -> channel map."""
        return dict(self._owner)
