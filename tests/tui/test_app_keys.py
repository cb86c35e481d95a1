"""The app's key modes (issue 12 item 1) on a real relay, with a recording stand-in for the terminal: the
event-type flags are pushed while the keyboard roll has focus and popped for chat and dialogs; a held key is
a held note; the status bar names the mode. The real terminal: tests/e2e/test_pty_keys.py."""

from __future__ import annotations

from pianorhythm.tui.keys.kitty import POP, PUSH, KeyReleased
from pianorhythm.tui.screens.dialogs import HelpScreen
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.keyboard_roll import KeyboardRoll
from pianorhythm.tui.widgets.status import StatusBar
from tests.tui.app_helpers import RecordingTerminal, current_screen, make_app, wait_for


async def test_flags_follow_the_keyboard_roll_and_held_keys_hold_notes(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--room", "keys")
    terminal = RecordingTerminal()
    app.keyboard_input.attach(terminal)  # type: ignore[arg-type]
    app.keyboard_input.supported = True  # as if the terminal had answered the query
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        room = current_screen(app, RoomScreen)
        status = room.query_one(StatusBar)
        await wait_for(pilot, lambda: terminal.out == [PUSH])
        assert status.keys == "C3 v96 keys held"
        roll = room.query_one(KeyboardRoll)
        assert roll.hold_keys

        sent: list[tuple[int, int]] = []
        app.engine.play_local = lambda event: sent.append((event.number, event.value))
        await pilot.press("z", "z", "z", "c")  # a repeat of a held key strikes nothing
        await pilot.pause(0.5)  # longer than the fixed length: still held
        assert sent == [(48, 96), (52, 96)]
        app.post_message(KeyReleased("z"))
        await pilot.press("right")  # the octave keys still work; the held E is released where it was struck
        app.post_message(KeyReleased("c"))
        await pilot.press("z")
        app.post_message(KeyReleased("z"))
        await wait_for(pilot, lambda: len(sent) == 6)
        assert sent == [(48, 96), (52, 96), (48, 0), (52, 0), (60, 96), (60, 0)]

        await pilot.press("f1")  # a dialog: ordinary keys
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert terminal.out[-1] == POP and not roll.hold_keys
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is room and terminal.out[-1] == PUSH)

        await pilot.press("c")
        await pilot.press("enter")  # chat: ordinary keys, and the held key is let go
        await wait_for(pilot, lambda: terminal.out[-1] == POP)
        assert sent[-2:] == [(64, 96), (64, 0)]
        await pilot.press("escape")
        await wait_for(pilot, lambda: terminal.out[-1] == PUSH)
    assert terminal.out.count(PUSH) == terminal.out.count(POP)  # left as it was


async def test_fixed_overrides_a_terminal_that_speaks_the_protocol(relay_server, config_dir):
    url = relay_server.url
    app = make_app(config_dir, "--connect", url, "--name", "ann", "--room", "keys", "--keys", "fixed")
    terminal = RecordingTerminal()
    app.keyboard_input.attach(terminal)  # type: ignore[arg-type]
    app.keyboard_input.supported = True
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        room = current_screen(app, RoomScreen)
        await wait_for(pilot, lambda: [bar.keys for bar in room.query(StatusBar)] == ["C3 v96 keys fixed"])
        assert terminal.out == [] and not room.query_one(KeyboardRoll).hold_keys


async def test_an_unknown_keys_setting_in_the_config_is_said_and_auto_used(relay_server, config_dir):
    config_dir.mkdir()
    (config_dir / "config.toml").write_text('keys = "sometimes"\n')
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: any("keys = 'sometimes'" in n.message for n in app._notifications))
        assert app.keyboard_input.setting == "auto"
