"""The layout down to the smallest size (60x20), the message below it, and how screens follow a resize."""

from __future__ import annotations

from typing import Any

import pytest
from textual import events
from textual.geometry import Region
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Static

from pianorhythm.commands import HELP
from pianorhythm.tui.messages import ChatLine
from pianorhythm.tui.screens.dialogs import HELP_SECTIONS, CreateRoomScreen, HelpScreen
from pianorhythm.tui.screens.lobby import LobbyScreen
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.screens.settings import SettingsScreen
from pianorhythm.tui.widgets.chat import ChatInput, ChatLog
from pianorhythm.tui.widgets.keyboard_roll import KeyboardRoll
from pianorhythm.tui.widgets.players import PlayersList
from pianorhythm.tui.widgets.status import StatusBar
from pianorhythm.tui.widgets.too_small import TooSmall
from tests.tui.app_helpers import current_screen, focused, make_app, wait_for

T0_US = 1_700_000_000_000_000


async def _in_room(pilot, app, name="jam"):
    await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
    app.engine.join_room(name, None, None)
    await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
    room = app.screen
    await wait_for(pilot, lambda: room.query(KeyboardRoll) and room.focused is room.query_one(KeyboardRoll))
    return room


def _inside(widget: Widget, screen: Screen[Any]) -> bool:
    return bool(screen.region.contains_region(widget.region) and widget.region.area > 0)


async def test_below_60x20_a_message_says_so_until_the_terminal_grows(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(50, 15)) as pilot:
        await pilot.pause()
        [notice] = app.screen.query(TooSmall)
        assert str(notice.render()) == (
            "pianorhythm needs at least 60×20; this terminal is 50×15 — enlarge it."
        )
        assert app.screen.focused is notice  # keys typed meanwhile neither play nor type
        assert app.screen.query_one(StatusBar).region.area == 0  # hidden, not squeezed
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert not app.screen.query(TooSmall)
        assert isinstance(app.screen, LobbyScreen)
        assert _inside(app.screen.query_one(StatusBar), app.screen)
        # In a room too, and the keys get their focus back.
        room = await _in_room(pilot, app)
        await pilot.resize_terminal(59, 20)
        await pilot.pause()
        assert "59×20" in str(room.query_one(TooSmall).render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not room.query(TooSmall) and room.focused is room.query_one(KeyboardRoll)


async def test_the_room_keeps_its_status_bar_and_chat_at_60x20(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(60, 20)) as pilot:
        room = await _in_room(pilot, app)
        await pilot.pause()
        for widget in (room.query_one(StatusBar), room.query_one(ChatInput), room.query_one(KeyboardRoll)):
            assert _inside(widget, room), widget
        assert room.query_one(ChatLog).region.height >= 4
        assert room.max_scroll_y == 0  # nothing is pushed below the bottom edge


async def test_at_200x60_the_chat_and_players_panel_share_the_room(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(200, 60)) as pilot:
        room = await _in_room(pilot, app)
        await pilot.pause()
        assert room.query_one(ChatLog).region.height >= 20
        assert room.query_one(KeyboardRoll).region.height >= 20
        players = room.query_one(PlayersList)
        assert players.region.width >= 50  # "rtt 20 · +45 ms · away · Acoustic Grand Piano" fits
        assert players.region.width + room.query_one(ChatLog).region.width <= 200


async def test_chat_rewraps_when_the_terminal_is_resized(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(80, 24)) as pilot:
        room = await _in_room(pilot, app)
        log = room.query_one(ChatLog)
        # Written before the log knows its size, a line waits for it (RichLog defers it): a clean run's log
        # had no line 5 s after the write. Widths, not line counts: a system line may arrive meanwhile.
        await wait_for(pilot, lambda: log.scrollable_content_region.width > 0)
        log.add(ChatLine(time_us=T0_US, text="word " * 40, author="bob", color="#3cb44b", id=1))
        await wait_for(pilot, lambda: bool(log.lines))
        assert max(line.cell_length for line in log.lines) <= 80
        await pilot.resize_terminal(160, 24)
        await wait_for(pilot, lambda: max(line.cell_length for line in log.lines) > 80)


async def test_a_tab_pasted_into_chat_becomes_a_space(relay_server, config_dir, relay_clients):
    bob = await relay_clients("bob")
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        from pianorhythm.wire import pianorhythm_pb2 as pb

        await bob.act(join_room=pb.JoinRoom(name="jam"))
        await bob.recv("room_state")
        room = await _in_room(pilot, app)
        await pilot.press("enter")
        chat_input = room.query_one(ChatInput)
        chat_input.post_message(events.Paste("tab\there"))
        await wait_for(pilot, lambda: chat_input.value == "tab here")
        await pilot.press("enter")
        line = await bob.recv("chat_message")
        assert line.chat_message.content == "tab here"


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_create_room_dialog_labels_every_field_and_reaches_create(relay_server, config_dir, size):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, CreateRoomScreen))
        dialog = app.screen
        await pilot.pause()
        for field in dialog.query(Input):
            assert field.parent is not None and field.parent.has_class("field"), field
            [label] = field.parent.query(Label)
            assert str(label.render()).strip()
        assert _inside(dialog.query_one("#ok", Button), dialog)
        assert _inside(dialog.query_one("#cancel", Button), dialog)
        dialog.query_one("#name", Input).value = "duets"
        await pilot.press("tab", "tab", "tab", "tab", "tab", "tab")  # name .. "Only the owner plays"
        owner_only = dialog.query_one("#ownerplay", Checkbox)
        assert dialog.focused is owner_only
        await pilot.press("space", "tab")
        assert focused(dialog) is dialog.query_one("#ok", Button)
        assert _inside(owner_only, dialog) or dialog.query_one(".form").scroll_y > 0
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        settings = current_screen(app, RoomScreen).state.settings
        assert settings is not None and settings.owner_only_play


async def test_help_wraps_between_phrases_at_80_columns(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        help_text = app.screen.query_one("#help-text", Static)
        lines = [strip.text for strip in help_text.render_lines(Region(0, 0, *help_text.size))]
        starts = [title for title, _ in HELP_SECTIONS] + [key for _, rows in HELP_SECTIONS for key, _ in rows]
        starts.append("Commands")
        usages = [line.split(" - ")[0] for line in HELP.values()]
        for line in lines:
            # At the left edge only a title, a key or a command's usage (wrapping under itself); a wrapped
            # description continues under its own column.
            first_cell = line.split("  ")[0]
            if first_cell:
                assert any(line.startswith(s) for s in starts) or any(first_cell in u for u in usages), line
        assert any(line.startswith("Note length") for line in lines)
        assert _inside(app.screen.query_one("#close", Button), app.screen)


async def test_settings_keep_save_and_cancel_in_sight_at_60x20(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        dialog = app.screen
        await pilot.pause()
        for button in ("#save", "#cancel"):
            assert _inside(dialog.query_one(button, Button), dialog), button
        dialog.query_one("#note_length_s", Input).focus()  # the last field: the form scrolls to it
        await pilot.pause()
        assert dialog.query_one(".form").scroll_y > 0
        assert _inside(dialog.query_one("#save", Button), dialog)


async def test_a_narrow_status_bar_drops_whole_parts_never_the_state(relay_server, config_dir):
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(60, 20)) as pilot:
        # Laid out at 60 columns (58 inside the padding), connected: the bar says so from its first frame,
        # even when the connection came up before the lobby had mounted it.
        await wait_for(
            pilot,
            lambda: (
                app.connection == "connected"
                and any(b.is_mounted and b.content_size.width == 58 for b in app.lobby.query(StatusBar))
            ),
        )
        bar = app.lobby.query_one(StatusBar)
        assert bar.connection == "connected"
        # Read before yielding: the app's 1 s tick sets midi and audio back from its own (absent) devices.
        bar.notes_per_s, bar.audio, bar.midi_in = 7, "fluidsynth/pulseaudio · TimGM6mb.sf2", "testkbd:keys"
        shown = str(bar.render())
        assert shown.startswith("● connected") and "midi testkbd:keys" in shown
        assert "notes/s" not in shown  # gone whole, not cut to "7 not"
        assert len(shown) <= bar.content_size.width
        await pilot.resize_terminal(160, 20)
        await wait_for(pilot, lambda: bar.content_size.width == 158)
        assert "7 notes/s" in str(bar.render())  # nothing in the lobby sets notes/s back
