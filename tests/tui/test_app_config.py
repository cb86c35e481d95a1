"""A config.toml that does not parse: the app says which line at start, runs on defaults, and keeps the
user's file when a setting is changed (before, the first save replaced it with defaults, silently)."""

from __future__ import annotations

from pianorhythm.tui import config as cfg
from tests.tui.app_helpers import make_app, wait_for


async def test_a_broken_config_is_named_at_start_and_survives_a_settings_change(relay_server, config_dir):
    config_dir.mkdir()
    path = config_dir / "config.toml"
    original = 'name = "ada"\nlatency = "safe\n'
    path.write_text(original)
    app = make_app(config_dir, "--connect", relay_server.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        messages = [n.message for n in app._notifications]
        assert messages[0].startswith(f"{path} is not valid TOML: ")
        assert "(at line 2, column 16). Using the default settings until it is fixed." in messages[0]
        assert app.options.effective.latency == "balanced"  # defaults for this run
        assert path.read_text() == original

        app.apply_settings({"volume": 0.5})
        [kept] = config_dir.glob("config.toml.broken-*")
        assert kept.read_text() == original
        await wait_for(pilot, lambda: any(str(kept) in n.message for n in app._notifications))
    assert cfg.load(path).volume == 0.5
