"""The MIDI port picked in F2 is remembered with its system (JACK here), and a saved port that is gone is
reported at start with the way out. Real app, real relay, a real JACK server with a virtual keyboard port.

Before, F2 saved the port but not the system: the next start looked for a JACK port on ALSA and showed
"midi none" with no reason.
"""

from __future__ import annotations

import pytest
from textual.widgets import Select

from pianorhythm.tui import config as cfg
from pianorhythm.tui.midi.ports import list_ports_by_api
from pianorhythm.tui.screens.settings import SettingsScreen
from pianorhythm.tui.widgets.status import StatusBar
from tests.tui.app_helpers import make_app, wait_for
from tests.tui.test_midi_input import KEYBOARD_CLIENT, KEYBOARD_PORT, Keyboard

pytestmark = pytest.mark.usefixtures("jackd")
PORT = f"{KEYBOARD_CLIENT}:{KEYBOARD_PORT}"


def midi_status(app) -> str:
    return str(app.screen.query_one(StatusBar).midi_in)


async def test_a_jack_port_picked_in_settings_is_opened_on_jack_next_time(relay_server, config_dir):
    keyboard = Keyboard()
    try:
        assert ("jack", PORT) in list_ports_by_api()
        app = make_app(config_dir, "--connect", relay_server.url)
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
            await pilot.press("f2")
            screen = app.screen
            assert isinstance(screen, SettingsScreen)
            select = screen.query_one("#midi_device", Select)
            assert (f"{PORT} (jack)", ("jack", PORT)) in select._options
            select.value = ("jack", PORT)
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: midi_status(app) == PORT)
        saved = cfg.load(config_dir / "config.toml")
        assert (saved.midi_device, saved.midi_api) == (PORT, "jack")

        again = make_app(config_dir, "--connect", relay_server.url)  # no --midi-api
        async with again.run_test(size=(100, 40)) as pilot:
            await wait_for(pilot, lambda: again.midi is not None)
            await wait_for(pilot, lambda: midi_status(again) == PORT)
            assert not [n for n in again._notifications if "MIDI" in n.message]
    finally:
        keyboard.unplug()

    gone = make_app(config_dir, "--connect", relay_server.url)
    async with gone.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: gone.midi is not None)
        expected = f"MIDI port {PORT!r} (jack) not found; pick one in F2."
        await wait_for(pilot, lambda: any(n.message == expected for n in gone._notifications))
        assert midi_status(gone) == "none"
