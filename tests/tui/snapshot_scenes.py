"""The real app, made deterministic for snapshots, and the steps that bring it to each screen.

`scene_app(tmp_path, monkeypatch)` builds the app with `pianorhythm.tui.app.build_app` (what `pianorhythm-tui`
runs) on an in-process relay that the app starts itself, as the embedded default does. What would differ from
run to run is pinned, and nothing else:
- the server clock starts at a fixed instant (chat timestamps), the room's roll runs on a clock the scene
  moves by hand (so a held note's bar has a known length), times show in UTC;
- measured figures (round trip, playout delay) are fixed numbers;
- the relay's free port shows as the default one in the lobby's title; toasts are cleared.
Other players are real wire clients on that relay: they create rooms, chat, and hold notes (never released).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from pianorhythm.client import model as m
from pianorhythm.server.local import LocalServer, host_or_join
from pianorhythm.tui.app import PianoApp, build_app
from pianorhythm.tui.cli import build_parser
from pianorhythm.tui.engine import Engine
from pianorhythm.tui.messages import RoomView
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.chat import ChatLog
from pianorhythm.tui.widgets.keyboard_roll import KeyboardRoll
from pianorhythm.tui.widgets.room_list import RoomList
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.server import TestClient
from tests.tui.app_helpers import wait_for

EPOCH_US = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC: every chat line of a scene says 22:13
ROOM = "jam session"
LONG_LINE = (
    "a long line that wraps: the chat keeps every word of it, breaks between words where it can, and never "
    "cuts the end off, whatever the width of the terminal it is read in"
)
Scene = Callable[[Pilot[Any]], Awaitable[None]]


class FixedStartClock:
    """The server clock, started at EPOCH_US instead of now (it still advances in real time)."""

    def __init__(self) -> None:
        import time

        self._mono0_ns = time.monotonic_ns()

    def now_us(self) -> int:
        import time

        return EPOCH_US + (time.monotonic_ns() - self._mono0_ns) // 1000


class HandClock:
    """The roll's clock: moves only when a scene moves it."""

    def __init__(self) -> None:
        self.t = 1000.05  # mid-row, and it moves by whole rows: no stamp sits on a row boundary

    def __call__(self) -> float:
        return self.t


def _fixed_stats(self: Engine, user_id: int) -> m.PlayerStats | None:
    return m.PlayerStats(
        user_id, delay_ms=45, target_ms=40, transit_ms=20, late_count=1, events=3, path_spread_ms=30
    )


def scene_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> PianoApp:
    """The app `pianorhythm-tui --no-audio --name ann --color #e6194b` builds, on a relay it starts itself."""
    monkeypatch.setattr("pianorhythm.server.main.ServerClock", FixedStartClock)
    monkeypatch.setattr(Engine, "rtt_ms", property(lambda self: 12.0))
    monkeypatch.setattr(Engine, "player_stats", _fixed_stats)
    args: argparse.Namespace = build_parser().parse_args(
        ["--no-audio", "--name", "ann", "--color", "#e6194b", *argv]
    )

    async def start_relay() -> LocalServer:  # the entry point's starter, on a database of the test's
        return await host_or_join(tmp_path / "relay.db", 0)

    app = build_app(args, start_relay)
    clock = HandClock()
    app.room_screen_kwargs = {"clock": clock, "tz": dt.UTC, "stats_interval_s": 3600.0}
    return app


async def _client(app: PianoApp, name: str, color: str) -> TestClient:
    assert app.server is not None
    client = await TestClient.connect(app.server.url)
    await client.hello(name, color=color)
    return client


async def _join(client: TestClient, room: str, **settings: Any) -> None:
    change = pb.RoomSettingsChange(**settings) if settings else None
    await client.act(join_room=pb.JoinRoom(name=room, settings=change))
    await client.recv("room_state")


async def _hold(client: TestClient, *keys: int) -> None:
    events = [pb.NoteEvent(offset_us=0, note=pb.Note(key=key, velocity=100)) for key in keys]
    await client.act(note_batch=pb.NoteBatch(base_time_us=0, events=events))


def _all_lit(roll: KeyboardRoll, keys: tuple[int, ...]) -> bool:
    return all(key in roll.model.lit_keys() for key in keys)


async def _connected(pilot: Pilot[Any]) -> PianoApp:
    app = pilot.app
    assert isinstance(app, PianoApp)
    await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
    app.clear_notifications()  # now, while the lobby is on top: a screen pushed later hides its toasts
    await pilot.pause()
    return app


async def finish(pilot: Pilot[Any]) -> None:
    """Clear toasts and show the relay's port as the default one (it is a free port here)."""
    app = pilot.app
    assert isinstance(app, PianoApp) and app.server is not None
    port = app.server.url.split(":")[2].split("/")[0]
    app.lobby.sub_title = str(app.lobby.sub_title).replace(f":{port}/", ":8765/")
    app.clear_notifications()
    # A focused Input blinks its cursor every 0.5 s: held visible, so a scene that takes longer (the lobby
    # waits for others to join) is not captured with the cursor off.
    for screen in app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False
    await pilot.pause()


def _lobby_settled(rooms: dict[str, RoomView]) -> bool:
    others = {name: (room.players, room.owner) for name, room in rooms.items() if not room.is_lobby}
    lobby_counts = [room.players for room in rooms.values() if room.is_lobby]
    locked = {name for name, room in rooms.items() if room.locked}
    return (
        others == {ROOM: (1, "bob"), "secret [red]club": (1, "eve")}
        and lobby_counts == [1]
        and locked == {"secret [red]club"}
    )


async def lobby(pilot: Pilot[Any]) -> None:
    """The lobby listing three rooms made by other players (one locked, one with markup in its name)."""
    app = await _connected(pilot)
    bob = await _client(app, "bob", "#3cb44b")
    await _join(bob, ROOM, user_limit=20)
    eve = await _client(app, "eve", "#911eb4")
    await _join(eve, "secret [red]club", password="pw", user_limit=5)
    # Not just three rows: bob and eve pass through the lobby, so its count drops back to 1 (only us) a
    # delta later, and a row captured before that has a wider Players column.
    table = app.lobby.query_one(RoomList)
    await wait_for(pilot, lambda: _lobby_settled(table.rooms) and _shown_settled(app))
    await finish(pilot)


def _shown_settled(app: PianoApp) -> bool:
    """The screen, as the snapshot takes it, shows the last list: clean runs twice captured the rows of an
    earlier one (the locked room's name cut, its lock not shown) after the list itself had settled."""
    screen = app.export_screenshot()
    return "[red]club" in screen and "🔒" in screen


async def room(pilot: Pilot[Any]) -> None:
    """ann in a room with bob (the owner), cy and dee, who hold notes begun at different times."""
    await _room(pilot)
    await finish(pilot)


async def _room(pilot: Pilot[Any]) -> dict[str, TestClient]:
    app = await _connected(pilot)
    clock = app.room_screen_kwargs["clock"]
    bob = await _client(app, "bob", "#3cb44b")
    await _join(bob, ROOM, user_limit=20)
    await bob.act(update_instrument=pb.UpdateInstrument(program=40))
    await bob.act(chat_send=pb.ChatSend(content="hello everyone"))
    cy = await _client(app, "[b]cy", "#4363d8")
    await _join(cy, ROOM)
    await cy.act(update_status=pb.UpdateStatus(status=pb.STATUS_AWAY))
    await cy.act(chat_send=pb.ChatSend(content="[bold]not bold[/bold]"))
    dee = await _client(app, "dee", "#f58231")
    await _join(dee, ROOM)
    name_input = app.lobby.query_one("#room-name", Input)
    name_input.value = ROOM
    name_input.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen) and app.screen.is_mounted)
    screen = app.screen
    assert isinstance(screen, RoomScreen)
    await wait_for(pilot, lambda: len(screen.state.users) == 4)
    roll = screen.query_one(KeyboardRoll)
    for player, keys, then in ((bob, (48, 52, 55), 0.8), (cy, (61, 66, 70), 0.4), (dee, (36, 60), 0.2)):
        await _hold(player, *keys)
        await wait_for(pilot, partial(_all_lit, roll, keys))
        clock.t += then
    roll.advance()
    screen._update_stats()  # once: the figures, with no timer racing the screenshot
    return {"bob": bob, "cy": cy, "dee": dee}


async def chat(pilot: Pilot[Any]) -> None:
    """The room after dee sent a long line, with ann typing a reply."""
    clients = await _room(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, RoomScreen)
    await clients["dee"].act(chat_send=pb.ChatSend(content=LONG_LINE))
    log = screen.query_one(ChatLog)
    await wait_for(pilot, lambda: any(line.text == LONG_LINE for line in log.lines_shown))
    await pilot.press("enter", *"soon")
    await finish(pilot)


async def settings(pilot: Pilot[Any]) -> None:
    """F2 from the lobby."""
    await _connected(pilot)
    await pilot.press("f2")
    await pilot.pause()
    await finish(pilot)


async def create_room(pilot: Pilot[Any]) -> None:
    """Ctrl+N from the lobby, with a name typed."""
    await _connected(pilot)
    await pilot.press(*"duets", "ctrl+n")
    await pilot.pause()
    await finish(pilot)


async def help_screen(pilot: Pilot[Any]) -> None:
    """F1 in the lobby."""
    await _connected(pilot)
    await pilot.press("f1")
    await pilot.pause()
    await finish(pilot)


async def too_small(pilot: Pilot[Any]) -> None:
    """The lobby in a 50x15 terminal: only the message that asks for 60x20."""
    await _connected(pilot)
    await finish(pilot)
