"""The settings screen in the real app, on the real relay and engine: changes are checked, saved to the
config file and applied at once (name and colour, instrument, latency preset, audio driver)."""

from __future__ import annotations

from textual.widgets import Input, Label, Select

from pianorhythm.client import model as m
from pianorhythm.tui import config as cfg
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.screens.settings import SettingsScreen
from pianorhythm.tui.widgets.players import PlayersList
from pianorhythm.tui.widgets.status import StatusBar
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.tui.app_helpers import current_screen, make_app, wait_for


async def test_settings_are_saved_and_applied(relay_server, relay_clients, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "prefs")
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        room = current_screen(app, RoomScreen)
        bob = await relay_clients("bob")
        await bob.act(join_room=pb.JoinRoom(name="prefs"))
        await bob.recv("room_state")
        ann_id = room.state.me_id

        # Escape leaves everything as it was.
        await pilot.press("f2")
        assert isinstance(app.screen, SettingsScreen)
        app.screen.query_one("#name", Input).value = "nobody"
        await pilot.press("escape")
        assert current_screen(app, RoomScreen) is room
        assert not (config_dir / "config.toml").exists()

        # An invalid colour is refused with a sentence; the screen stays.
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        assert screen.query_one("#name", Input).value == "ann"  # the effective name, from the flag
        screen.query_one("#color", Input).value = "blue"
        await pilot.press("ctrl+s")
        assert app.screen is screen
        assert "#ff8800" in str(screen.query_one("#error", Label).render())

        # Name, colour, instrument and latency: saved and applied.
        screen.query_one("#name", Input).value = "zed"
        screen.query_one("#color", Input).value = "#00AA00"
        screen.query_one("#instrument", Select).value = 40
        screen.query_one("#latency", Select).value = "safe"
        await pilot.press("ctrl+s")
        assert current_screen(app, RoomScreen) is room

        saved = cfg.load(config_dir / "config.toml")
        assert (saved.name, saved.color, saved.instrument, saved.latency) == ("zed", "#00aa00", 40, "safe")
        assert app.engine.preset.value == "safe"

        def is_new_ann(msg: pb.ServerMessage) -> bool:
            user = msg.user_updated.user
            return user.id == ann_id and (user.name, user.color, user.instrument) == ("zed", "#00aa00", 40)

        await bob.recv("user_updated", where=is_new_ann)  # what everyone else sees
        players = room.query_one(PlayersList)
        await wait_for(pilot, lambda: any(p.is_self and p.name == "zed" for p in players.players))
        me = next(p for p in players.players if p.is_self)
        assert (me.color, me.instrument) == ("#00aa00", 40)

        # The saved settings are what the screen shows next time.
        await pilot.press("f2")
        again = app.screen
        assert isinstance(again, SettingsScreen)
        assert again.query_one("#instrument", Select).value == 40
        assert again.query_one("#latency", Select).value == "safe"


async def test_a_new_audio_driver_applies_at_once(jackd, relay_server, config_dir):
    """Choosing JACK in the settings swaps the running engine onto a FluidSynth playing through JACK."""
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        assert app.engine.synth.silent  # started with --no-audio (fast) ...
        app.options.no_audio = False  # ... as if started with sound: new audio settings apply
        app.apply_settings({"audio_driver": "jack"})
        await wait_for(pilot, lambda: not app.engine.synth.silent, timeout=15)
        assert app.engine.synth.description.startswith("fluidsynth/jack")
        status = app.lobby.query_one(StatusBar)
        await wait_for(pilot, lambda: status.audio.startswith("fluidsynth/jack"))
        assert cfg.load(config_dir / "config.toml").audio_driver == "jack"

        # If the synth fails later, the engine falls back to silence: a toast says so, the bar follows.
        app.on_engine_event(m.SynthFailed("gone", "audio stopped (gone); notes still show"))
        app.on_engine_event(m.SynthChanged("silent", True, "audio stopped"))
        await pilot.pause()
        assert "audio stopped (gone); notes still show" in [str(n.message) for n in app._notifications]
        assert status.audio == "silent"
