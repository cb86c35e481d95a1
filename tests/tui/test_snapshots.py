"""How every screen of the real app looks at 80x24, 60x20 (the smallest it lays out) and 160x48.

The app is the one `pianorhythm-tui` builds, on a relay it starts itself, with other players as real
clients; tests/tui/snapshot_scenes.py says what is pinned to make the pictures repeatable.
"""

from __future__ import annotations

import pytest

from tests.tui import snapshot_scenes as scenes

SIZES = [(80, 24), (60, 20), (160, 48)]
SCENES = {
    "lobby": scenes.lobby,
    "room_with_players_holding_notes": scenes.room,
    "chat_with_a_long_line": scenes.chat,
    "settings": scenes.settings,
    "create_room_dialog": scenes.create_room,
    "help": scenes.help_screen,
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scene", SCENES)
def test_screen(snap_compare, tmp_path, monkeypatch, scene, size):
    app = scenes.scene_app(tmp_path, monkeypatch)
    assert snap_compare(app, terminal_size=size, run_before=SCENES[scene])


def test_too_small_terminal(snap_compare, tmp_path, monkeypatch):
    app = scenes.scene_app(tmp_path, monkeypatch)
    assert snap_compare(app, terminal_size=(50, 15), run_before=scenes.too_small)
