"""Issue 14, item 1 (client side): a player's first note is already delayed enough for the whole path, their
uplink spread (the relay's figure, in presence) plus our downlink's (from our pongs). Injected time."""

from __future__ import annotations

import pytest

from pianorhythm.playout import LatencyPreset
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.core.client_harness import ClientHarness, user
from tests.core.test_client_playout import arrive, relayed

ANN = user(1, "ann")


def bob(uplink_spread_us: int) -> pb.User:
    return pb.User(id=2, name="bob", uplink_spread_us=uplink_spread_us)


def measured(preset: LatencyPreset, downs_ms: tuple[float, ...], uplink_spread_us: int) -> ClientHarness:
    h = ClientHarness(room="jam", preset=preset)
    h.connect()
    for down_ms in downs_ms:
        h.exchange_ping(up_ms=1, down_ms=down_ms)
        h.advance(30)
    h.enter("jam", ANN, bob(uplink_spread_us))
    h.take()
    return h


def first_note_delay_ms(h: ClientHarness, transit_ms: float) -> float:
    sent = h.now
    h.advance(transit_ms)
    arrive(h, relayed(h, sent, (0, 60, 90)))
    (note,) = h.scheduled()
    return (note.due_ns - sent) / 1e6


def test_our_downlink_spread_comes_from_the_pongs_way_back() -> None:
    h = measured(LatencyPreset.BALANCED, (1, 31, 11, 6), uplink_spread_us=0)
    assert h.core.link.downlink.spread_us == 30_000
    h.connect()  # a new link: a new path
    assert h.core.link.downlink.spread_us == 0


@pytest.mark.parametrize(
    ("preset", "expected_ms"),
    [
        (LatencyPreset.LOW, 10 + 0.8 * 50 + 0.5),
        (LatencyPreset.BALANCED, 10 + 50 + 1),
        (LatencyPreset.SAFE, 10 + 1.25 * 50 + 10),
    ],
)
def test_the_first_note_covers_their_uplink_and_our_downlink_per_preset(
    preset: LatencyPreset, expected_ms: float
) -> None:
    h = measured(preset, (1, 31, 11), uplink_spread_us=20_000)  # 30 ms down + 20 ms up
    assert first_note_delay_ms(h, transit_ms=10) == pytest.approx(expected_ms)


def test_without_a_known_path_the_first_note_gets_the_warm_up_headroom_only() -> None:
    h = measured(LatencyPreset.BALANCED, (1,), uplink_spread_us=0)
    assert first_note_delay_ms(h, transit_ms=10) == pytest.approx(10 + 1 + 4)


def test_a_refreshed_uplink_spread_applies_from_their_next_note() -> None:
    h = measured(LatencyPreset.BALANCED, (1,), uplink_spread_us=0)
    h.receive(user_updated=pb.UserUpdated(user=bob(40_000)))
    h.take()
    assert first_note_delay_ms(h, transit_ms=10) == pytest.approx(10 + 40 + 1)
    assert h.core.players[2].info.uplink_spread_us == 40_000


def test_the_players_figures_give_the_path_spread_and_the_late_notes() -> None:
    h = measured(LatencyPreset.BALANCED, (1, 31, 11), uplink_spread_us=20_000)
    stats = h.core.player_stats(2)
    assert stats is not None and stats.path_spread_ms == 50.0 and stats.late_count == 0
    unmeasured = ClientHarness(room="jam")
    unmeasured.connect()
    unmeasured.enter("jam", ANN, bob(0))
    stats = unmeasured.core.player_stats(2)
    assert stats is not None and stats.path_spread_ms is None
