"""Deterministic apps for the snapshot tests: fixed clock, fixed data, no network."""

from __future__ import annotations

import datetime as dt

from textual.app import App

from tui.config import Config
from tui.messages import RoomView
from tui.net import model as m
from tui.screens.lobby import LobbyScreen
from tui.screens.room import RoomScreen
from tui.screens.settings import SettingsScreen
from tui.widgets.keyboard_roll import KeyboardRoll
from tui.widgets.status import StatusBar

T0_US = 1_700_000_000_000_000


class FixedClock:
    def __init__(self, t: float = 500.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def user(uid: int, name: str, color: str, **kw: object) -> m.UserInfo:
    base = {"status": "online", "instrument": 0, "muted": False, "joined_room_us": T0_US + uid}
    base.update(kw)
    return m.UserInfo(uid, name, color, **base)  # type: ignore[arg-type]


USERS = (
    user(1, "ann", "#e6194b"),
    user(2, "bob", "#3cb44b", instrument=40),
    user(3, "[b]cy", "#4363d8", status="away"),
    user(4, "dee", "#f58231", muted=True),
)
SETTINGS = m.RoomSettingsInfo(True, False, 20, True, False)
CHAT = (
    m.ChatLine(1, 2, "bob", "#3cb44b", "hello everyone", T0_US),
    m.ChatLine(2, 3, "[b]cy", "#4363d8", "[bold]not bold[/bold]", T0_US + 60_000_000),
)
ROOM = m.RoomInfo("jam session", False, 2, SETTINGS, USERS, CHAT, 0)


class SnapApp(App[None]):
    CSS_PATH = "../../tui/app.tcss"
    TITLE = "pianorhythm"

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which
        self.clock = FixedClock()

    def on_mount(self) -> None:
        if self.which == "lobby":
            screen = LobbyScreen()
            self.push_screen(screen)
            screen.set_rooms(
                [
                    RoomView("lobby", 3, 0, False, "", is_lobby=True),
                    RoomView("jam session", 4, 20, False, "bob"),
                    RoomView("secret [red]club", 1, 5, True, "eve"),
                    RoomView("practice", 0, 10, False, ""),
                ]
            )
            self.call_after_refresh(self._status, screen)
        elif self.which == "room":
            room = RoomScreen(
                ROOM,
                1,
                None,
                clock=self.clock,
                now_us=lambda: T0_US + 120_000_000,
                tz=dt.UTC,
                stats_interval_s=0,
            )
            self.push_screen(room)
            self.call_after_refresh(self._fill_room, room)
        elif self.which == "settings":
            self.push_screen(LobbyScreen())
            config = Config(name="ann", color="#e6194b", instrument=0, latency="balanced")
            self.push_screen(
                SettingsScreen(
                    config,
                    midi_ports=lambda: [("alsa", "Keystation 49 MIDI 1")],
                    audio_drivers=["auto", "pulseaudio", "jack"],
                    soundfonts=["/usr/share/sounds/sf2/TimGM6mb.sf2"],
                    poll_s=0,
                )
            )

    def _status(self, screen: LobbyScreen | RoomScreen) -> None:
        bar = screen.query_one(StatusBar)
        bar.connection = "connected"
        bar.rtt_ms = 12
        bar.midi_in = "none"
        bar.audio = "fluidsynth/pulseaudio · TimGM6mb.sf2"

    def _fill_room(self, room: RoomScreen) -> None:
        self._status(room)
        room.state.stats = {
            uid: m.PlayerStats(
                uid, delay_ms=40 + uid, target_ms=40, transit_ms=20 + uid, late_count=0, events=9
            )
            for uid in (2, 3, 4)
        }
        room.state.my_rtt_ms = 12
        room.state.typing = {3}
        room.say("dee joined")
        roll = room.query_one(KeyboardRoll)
        clock = self.clock
        # Four players, twenty notes, some held, some sustained, some finished.
        roll.pedal(2, True)
        for i, key in enumerate((48, 52, 55, 60, 64)):
            roll.note_on(1, key, 90)
            roll.note_on(2, key + 12, 80)
            clock.t += 0.1
            if i % 2:
                roll.note_off(2, key + 12)
        for key in (61, 63, 66, 68, 70):
            roll.note_on(3, key, 100)
            clock.t += 0.1
        roll.note_off(3, 61)
        for key in (36, 40, 43, 45, 47):
            roll.note_on(4, key, 70)
        roll.note_on(1, 60, 90)  # shared with nobody yet: ann and bob on one key below
        roll.note_on(2, 60, 90)
        clock.t += 0.3
        roll.advance()  # the frame tick, so the picture does not depend on when the timer fires
        room._refresh_players()
