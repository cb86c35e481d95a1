"""Player -> synth channel allocation (pure)."""

from __future__ import annotations

import pytest

from pianorhythm.channels import ChannelAllocator, usable_channels


def test_each_player_gets_a_distinct_channel_and_keeps_it():
    alloc = ChannelAllocator(64)
    first = [alloc.acquire(player) for player in range(20)]
    assert all(new for _, new in first)
    channels = [channel for channel, _ in first]
    assert len(set(channels)) == 20
    assert alloc.acquire(3) == (channels[3], False)
    assert alloc.channel_of(3) == channels[3] and alloc.channel_of("nobody") is None


def test_drum_channels_are_never_used():
    assert 9 not in usable_channels(128) and 25 not in usable_channels(128)
    assert len(usable_channels(128)) == 120
    alloc = ChannelAllocator(32)
    assert {alloc.acquire(p)[0] for p in range(30)} == set(usable_channels(32))


def test_released_channels_are_reused_last():
    alloc = ChannelAllocator(16)
    a, _ = alloc.acquire("a")
    alloc.acquire("b")
    assert alloc.release("a") == a
    assert alloc.release("a") is None
    taken = [alloc.acquire(p)[0] for p in range(13)]  # the 13 channels that were never used
    assert a not in taken
    assert alloc.acquire("c") == (a, True)


def test_more_players_than_channels_share_rather_than_fail():
    alloc = ChannelAllocator(16)  # 15 usable
    for player in range(15):
        alloc.acquire(player)
    assert not alloc.shared
    channel, new = alloc.acquire("late")
    assert new and alloc.shared and channel in usable_channels(16)
    sharer = next(p for p, c in alloc.players().items() if c == channel and p != "late")
    assert alloc.release("late") == channel
    assert alloc.channel_of(sharer) == channel
    assert alloc.free_count == 0  # still used by the sharer: not freed
    assert alloc.release(sharer) == channel
    assert alloc.free_count == 1


def test_invalid_size():
    with pytest.raises(ValueError):
        ChannelAllocator(0)
