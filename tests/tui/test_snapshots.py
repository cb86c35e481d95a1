"""How the screens look, at 80x24 and 160x48, with fixed data (no network, fixed clock and time zone)."""

from __future__ import annotations

import pytest

from tests.tui.snapshot_apps import SnapApp

SIZES = [(80, 24), (160, 48)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_lobby(snap_compare, size):
    assert snap_compare(SnapApp("lobby"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_room_with_players_holding_notes(snap_compare, size):
    assert snap_compare(SnapApp("room"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_settings(snap_compare, size):
    assert snap_compare(SnapApp("settings"), terminal_size=size)
