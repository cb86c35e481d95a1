"""The Textual app: composes the lobby and room screens and routes engine events and user requests.

    run_from_args(args, start_embedded_server)   # pianorhythm.tui.cli calls this

With no --connect, `start_embedded_server()` (given by pianorhythm.tui.cli, the only module that may import
the server) starts a relay on 127.0.0.1 and a free port inside the app's event loop, and the app joins its
lobby. The engine (pianorhythm.tui.engine) does all networking; this module only turns its events into screen
updates.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any, ClassVar, Protocol

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from pianorhythm.client import model as m
from pianorhythm.interpreter import settle_gc
from pianorhythm.tui import config as cfg
from pianorhythm.tui.app_setup import (
    AppOptions,
    FileFlagError,
    ObservedBackoff,
    make_engine,
    options_from_args,
    room_view,
)
from pianorhythm.tui.keys.kitty import (
    KEYS_MODES,
    KeyboardDetected,
    KeyboardInput,
    KeyReleased,
    driver_class_for,
)
from pianorhythm.tui.messages import JoinRoomRequest, LeaveRoomRequest, SettingsChanged
from pianorhythm.tui.net import reasons
from pianorhythm.tui.net.backoff import Backoff
from pianorhythm.tui.net.tls import insecure_warning
from pianorhythm.tui.screens.dialogs import HelpScreen
from pianorhythm.tui.screens.lobby import LobbyScreen
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.screens.settings import SettingsScreen
from pianorhythm.tui.widgets.keyboard_roll import KeyboardRoll
from pianorhythm.tui.widgets.status import RETRY_KEY, StatusBar
from pianorhythm.tui.widgets.too_small import SizeGuard

log = logging.getLogger(__name__)


class EmbeddedServer(Protocol):
    """What the embedded-server starter returns (pianorhythm.server.local.LocalServer fits): hosted here, or
    joined."""

    @property
    def url(self) -> str: ...

    @property
    def hosting(self) -> bool: ...

    @property
    def notice(self) -> str: ...

    async def close(self) -> None: ...


ServerStarter = Callable[[], Awaitable[EmbeddedServer]]


class PianoApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "pianorhythm"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        # Priority: it works on every screen, an input focused or not (RETRY_KEY names it in messages).
        Binding("ctrl+r", "retry", "Retry", show=False, priority=True),
        Binding("ctrl+s", "stop_play", "Stop playing the file", show=False),
    ]

    def __init__(
        self,
        options: AppOptions,
        start_embedded_server: ServerStarter | None = None,
        *,
        engine_factory: Callable[[AppOptions, str, Backoff], Any] | None = None,
        room_screen_kwargs: dict[str, Any] | None = None,
    ) -> None:
        keyboard = KeyboardInput(options.effective.keys)
        super().__init__(driver_class=driver_class_for(keyboard))
        self.keyboard_input = keyboard
        self.options = options
        self.start_embedded_server = start_embedded_server
        self.engine_factory = engine_factory or make_engine
        self.room_screen_kwargs = room_screen_kwargs or {}
        self.engine: Any = None
        self.server: EmbeddedServer | None = None
        self.midi: Any = None
        self.midi_out: Any = None
        self.backoff = ObservedBackoff()
        self.size_guard = SizeGuard(self)
        self.lobby = LobbyScreen()
        self.room_screen: RoomScreen | None = None
        self.connection = "connecting"
        self.status_values: dict[str, object] = {}  # the latest of each StatusBar field the app set
        self.url = ""
        self.playback: Any = None  # --play (pianorhythm.tui.file_play.FilePlayback)
        self.farewell: list[tuple[bool, str]] = []  # (ok, sentence) to print after the UI: --record
        self.notices: list[str] = []  # warnings from before the UI (a log file that cannot be opened)
        if options.effective.keys not in KEYS_MODES:
            self.notices.append(
                f"keys = {options.effective.keys!r} in the config: use auto, press-release or fixed."
            )
        if options.effective.theme:
            self.theme = options.effective.theme

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.size_guard.follow_screens()
        self.push_screen(self.lobby)
        for problem in (*self.options.config_problems, *self.notices):
            self.notify(problem, severity="warning", timeout=20)
        self.call_after_refresh(settle_gc)
        self.set_interval(1.0, self._tick_status)
        self.run_worker(self._start(), exclusive=True, group="engine")

    async def _start(self) -> None:
        url = self.options.connect
        if not url:
            if self.start_embedded_server is None:
                self.notify("No server: pass --connect ws://HOST:PORT/api/websocket.", severity="error")
                return
            try:
                self.server = await self.start_embedded_server()
            except Exception as error:  # the port, the database...
                log.exception("embedded server failed")
                self.notify(f"The local server did not start ({error}); use --connect.", severity="error")
                return
            url = self.server.url
            self.notify(self.server.notice, timeout=20)
        self.url = url
        warning = insecure_warning(url, self.options.insecure)
        if warning:
            self.notify(warning, severity="warning", timeout=15)
        self.lobby.sub_title = f"hosting {url}" if self.server is not None and self.server.hosting else url
        self.engine = await self.engine_factory(self.options, url, self.backoff)
        self.engine.subscribe(self.on_engine_event)
        self._prepare_play()
        await self.engine.start()
        self._open_midi()
        self._open_midi_out()
        self._set_audio_status()

    def _open_midi(self) -> None:
        from pianorhythm.tui.midi.input import open_midi_input
        from pianorhythm.tui.midi.ports import missing_port_message

        api = self.options.midi_api or self.options.effective.midi_api or None
        wanted = self.options.effective.midi_device or None
        try:
            self.midi = open_midi_input(self._on_midi_event, self._on_midi_status, api=api, wanted=wanted)
        except Exception as error:
            log.warning("MIDI input did not open: %s", error)
        self._set_midi_status()
        if wanted and not (self.midi is not None and self.midi.connected):
            reason = getattr(self.midi, "reason", "")  # no MIDI system at all: say which
            self.notify(missing_port_message(wanted, api, reason), severity="warning", timeout=15)

    def _open_midi_out(self) -> None:
        """--midi-out (or the config's midi_out): remote players to that port too; what happens as toasts."""
        from pianorhythm.tui.midi.output import open_midi_out

        if self.midi_out is not None:
            self.midi_out.close()  # releases what it sounded
            self.midi_out = None
        eff, engine = self.options.effective, self.engine
        if engine is None:
            return
        api = self.options.midi_api or eff.midi_api or None
        if eff.midi_out:
            loop = asyncio.get_running_loop()
            self.midi_out = open_midi_out(eff.midi_out, api, self._on_midi_out_status, loop)
        engine.attach_midi_out(self.midi_out)

    def _on_midi_out_status(self, message: str) -> None:
        bad = "gone" in message or message.startswith("No MIDI")
        self.notify(message, severity="warning" if bad else "information", timeout=10 if bad else 4)

    def _on_midi_event(self, event: Any) -> None:
        if self.engine is not None:
            self.engine.play_local(event)

    def _on_midi_status(self, message: str) -> None:
        self._set_midi_status()
        if "unplugged" in message.lower() or "lost" in message.lower() or "gone" in message.lower():
            self.notify(message, severity="warning")

    def _set_midi_status(self) -> None:
        name = self.midi.port_name if self.midi is not None and self.midi.connected else None
        self._status(midi_in=name or "none")

    def _set_audio_status(self) -> None:
        synth = getattr(self.engine, "synth", None)
        if synth is None:
            return
        if synth.silent:
            reason = getattr(synth, "reason", "silent")
            self._status(audio="silent")
            if not self.options.no_audio:
                self.notify(reason, severity="warning", timeout=8)
        else:
            self._status(audio=synth.description)

    def on_resize(self, event: events.Resize) -> None:
        self.size_guard.check(event.size)

    async def action_quit(self) -> None:
        await self._close_services()
        self.exit(0)

    async def on_unmount(self) -> None:
        await self._close_services()

    async def _close_services(self) -> None:
        if self.playback is not None:
            self.playback.stop()
        if self.midi is not None:
            self.midi.close()
            self.midi = None
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await engine.close()
            if self.midi_out is not None:
                self.midi_out.close()
                self.midi_out = None
            engine.synth.close()
            self._close_recording(engine)
        if self.server is not None:
            server, self.server = self.server, None
            await server.close()

    # ---- --play and --record ---------------------------------------------------------------------------

    def _prepare_play(self) -> None:
        opts = self.options
        if opts.song is None or opts.play is None:
            return
        from pianorhythm.tui.file_play import FilePlayback

        self.playback = FilePlayback(
            self.engine,
            opts.play,
            opts.song,
            opts.effective.room or None,
            run=self.run_worker,
            notify=self.notify,
            changed=self._tick_status,
            done=self.action_quit if opts.exit_after_play else None,
        )
        self.engine.subscribe(self.playback)

    def action_stop_play(self) -> None:
        if self.playback is None or not self.playback.stop():
            self.notify("No file is playing (start one with --play FILE.mid).")

    def _close_recording(self, engine: Any) -> None:
        if self.options.record is None or engine.recorder is None:
            return
        from pianorhythm.tui.file_play import close_recording

        self.farewell.append(close_recording(engine.recorder, self.options.record))

    # ---- status ------------------------------------------------------------------------------------------

    def _status_bars(self) -> Iterable[StatusBar]:
        # Not gated on the screen's own mount: its bar mounts first and would miss what is set meanwhile.
        for screen in (self.lobby, self.room_screen):
            if screen is not None:
                yield from screen.query(StatusBar)

    def _status(self, **values: object) -> None:
        self.status_values.update(values)  # a bar not mounted yet takes them on mount (StatusBar.on_mount)
        for bar in self._status_bars():
            for key, value in values.items():
                setattr(bar, key, value)

    def _tick_status(self) -> None:
        retry_in = None
        if self.connection == "reconnecting":
            retry_in = getattr(self.engine, "next_retry_in_s", None)
            if retry_in is None and self.backoff.last_delay is not None:
                retry_in = max(0.0, self.backoff.last_delay - (time.monotonic() - self.backoff.chosen_at))
        rtt = self.engine.rtt_ms if self.engine is not None else None
        playing = self.playback.status() if self.playback is not None else ""
        self._status(connection=self.connection, retry_in_s=retry_in, rtt_ms=rtt, playing=playing)
        self._set_midi_status()  # also for a lobby that was not mounted yet when MIDI opened

    # ---- engine events ---------------------------------------------------------------------------------

    def on_engine_event(self, event: m.EngineEvent) -> None:
        match event:
            case m.ConnectionChanged(state=state, detail=detail, refused=refused):
                previous, self.connection = self.connection, state.value
                self._tick_status()
                self.lobby.set_connection(state.value)
                if state.value == "reconnecting" and previous == "connected":
                    self.notify(f"Connection lost ({detail}); reconnecting…", severity="warning")
                elif state.value == "gave_up" and refused:
                    self.notify(f"{detail} Press {RETRY_KEY} to retry.", severity="error", timeout=20)
                elif state.value == "gave_up":
                    retry = f"Press {RETRY_KEY} to retry."
                    self.notify(f"Could not reach the server ({detail}). {retry}", severity="error")
                elif state.value == "replaced":
                    retry = f"press {RETRY_KEY} to take it back."
                    self.notify(f"{detail.capitalize()}; {retry}", severity="error")
                elif state.value == "connected" and previous in ("reconnecting", "gave_up", "replaced"):
                    self.notify("Reconnected.")
            case m.RoomEntered():
                self._enter(event)
            case m.RoomListChanged(rooms=rooms):
                self.lobby.set_rooms(room_view(r) for r in rooms)
            case m.Removed(reason=reason, room=room, by_name=by_name, duration_s=duration_s):
                self.notify(reasons.removal(reason, room, by_name, duration_s), severity="warning")
            case m.SynthChanged(description=description, silent=silent):
                self._status(audio="silent" if silent else description)
            case m.SynthFailed(message=message):
                self.notify(message, severity="error", timeout=10)
            case m.ServerError(message=message):
                self.notify(message or "The server refused that.", severity="error")
                if self.room_screen is not None:
                    self.room_screen.handle_engine_event(event)
            case _:
                if self.room_screen is not None:
                    self.room_screen.handle_engine_event(event)

    def _enter(self, entered: m.RoomEntered) -> None:
        room, resumed = entered.room, entered.resumed
        me = self.engine.me.id if self.engine is not None and self.engine.me is not None else 0
        if room.is_lobby:
            self._close_room_screen()
            if self.engine is not None:
                self.engine.subscribe_rooms(True)
            return
        if resumed and self.room_screen is not None and self.room_screen.state.name == room.name:
            # A reconnect into the same room: the screen takes who is there now; the catch-up fills the chat.
            self.room_screen.handle_engine_event(entered)
            return
        self._close_room_screen()
        if self.engine is not None:
            self.engine.subscribe_rooms(False)
        kwargs: dict[str, Any] = {"now_us": self.engine.session.server_now_us} if self.engine else {}
        kwargs.update(self.room_screen_kwargs)
        self.room_screen = RoomScreen(room, me, self.engine, keyboard=self.keyboard_input, **kwargs)
        self.push_screen(self.room_screen)
        self.call_after_refresh(self._after_room_mount)

    def _after_room_mount(self) -> None:
        screen = self.room_screen
        if screen is None or not screen.is_mounted:
            return
        self._tick_status()
        self._set_midi_status()
        self._set_audio_status_quiet()
        for roll in screen.query(KeyboardRoll):  # none if the screen went already
            roll.keymap = replace(roll.keymap, note_length_s=self.options.effective.note_length_s)
        settle_gc()

    def on_keyboard_detected(self, message: KeyboardDetected) -> None:
        if self.room_screen is not None and self.room_screen.is_mounted:
            self.room_screen.sync_keys()

    def on_key_released(self, message: KeyReleased) -> None:
        if self.focused is not None:  # to the widget that had the press
            self.focused.post_message(KeyReleased(message.character))

    def _set_audio_status_quiet(self) -> None:
        synth = getattr(self.engine, "synth", None)
        if synth is not None:
            self._status(audio="silent" if synth.silent else synth.description)

    def _close_room_screen(self) -> None:
        if self.room_screen is None:
            return
        while self.screen is not self.lobby and len(self.screen_stack) > 1:
            self.pop_screen()
        self.room_screen = None

    # ---- requests from screens -------------------------------------------------------------------------

    def on_join_room_request(self, message: JoinRoomRequest) -> None:
        if self.engine is None:
            self.notify("Not connected yet.", severity="warning")
            return
        settings = None
        if message.new_room is not None:
            from pianorhythm.wire import pianorhythm_pb2 as pb

            new = message.new_room
            settings = pb.RoomSettingsChange(
                visible=not new.private,
                password=new.password or None,
                user_limit=new.user_limit,
                chat_enabled=new.chat_enabled,
                owner_only_play=new.owner_only_play,
            )
        self.engine.join_room(message.name, message.password, settings)

    def on_leave_room_request(self, message: LeaveRoomRequest) -> None:
        if self.engine is not None:
            self.engine.leave()

    def on_settings_changed(self, message: SettingsChanged) -> None:
        self.apply_settings(message.changes)

    def apply_settings(self, changes: dict[str, object]) -> None:
        if not changes:
            return
        opts = self.options
        opts.config = replace(opts.config, **changes)  # type: ignore[arg-type]
        opts.effective = replace(opts.effective, **changes)  # type: ignore[arg-type]
        try:
            kept = cfg.save(opts.config, opts.config_file)
        except OSError as error:
            self.notify(f"Settings not saved: {error}", severity="error")
        else:
            if kept is not None:
                self.notify(f"The config file did not parse: it is kept as {kept}; settings saved anew.")
        engine = self.engine
        if engine is not None:
            if "name" in changes or "color" in changes:
                engine.set_profile(name=changes.get("name"), color=changes.get("color") or None)
            if "instrument" in changes:
                engine.set_instrument(int(changes["instrument"]))  # type: ignore[call-overload]
            if "latency" in changes:
                engine.set_latency_preset(str(changes["latency"]))
            for level in ("volume", "reverb", "chorus"):
                if level in changes:
                    getattr(engine.synth, f"set_{level}")(float(changes[level]))  # type: ignore[arg-type]
        if ("audio_driver" in changes or "soundfont" in changes) and not opts.no_audio:
            self.run_worker(self._swap_synth(), group="synth", exclusive=True)
        if ("midi_device" in changes or "midi_api" in changes) and self.midi is not None:
            self.midi.close()
            self._open_midi()
        if "midi_out" in changes or ("midi_api" in changes and self.midi_out is not None):
            self._open_midi_out()
        if self.room_screen is not None and self.room_screen.is_mounted and "note_length_s" in changes:
            roll = self.room_screen.query_one(KeyboardRoll)
            roll.keymap = replace(roll.keymap, note_length_s=opts.effective.note_length_s)

    async def _swap_synth(self) -> None:
        """Open the synth the settings now ask for (off the event loop: it may be slow) and play into it."""
        from pianorhythm.tui.audio.drivers import open_synth

        eff = self.options.effective
        try:
            synth = await asyncio.to_thread(open_synth, eff.soundfont or None, eff.audio_driver or None)
        except Exception as error:  # a missing SoundFont file, a driver that does not start
            self.notify(
                f"The new audio settings did not work ({error}); the sound is unchanged.", severity="error"
            )
            return
        if self.engine is None:
            synth.close()
            return
        self.engine.replace_synth(synth)  # emits SynthChanged: the status bar follows
        if synth.silent:
            self.notify(getattr(synth, "reason", "Playing silently."), severity="warning", timeout=8)

    def watch_theme(self, theme: str) -> None:
        if theme != self.options.effective.theme and self.is_running:
            self.apply_settings({"theme": theme})

    # ---- actions (bindings and the command palette) -------------------------------------------------------

    def action_settings(self) -> None:
        from pianorhythm.tui.audio.drivers import audio_driver_choices
        from pianorhythm.tui.audio.soundfont import list_soundfonts

        def ports() -> list[tuple[str, str]]:
            from pianorhythm.tui.midi.ports import list_ports_by_api

            return list_ports_by_api(self.options.midi_api)

        screen = SettingsScreen(
            self.options.effective,
            midi_ports=ports,
            audio_drivers=audio_driver_choices(),
            soundfonts=[str(p) for p in list_soundfonts()],
        )
        self.push_screen(screen, lambda changes: self.apply_settings(changes or {}))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_retry(self) -> None:
        if self.engine is None:
            return
        if self.connection == "connected":
            self.notify("Already connected.")
            return
        self.engine.retry()
        self.notify("Retrying the connection…")

    def action_leave_room(self) -> None:
        if self.engine is not None:
            self.engine.leave()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Settings", "MIDI, audio, instrument, latency, name and colour", self.action_settings
        )
        yield SystemCommand("Help", "Keys, chat commands and how to play", self.action_help)
        yield SystemCommand("Retry connection", "Reconnect to the server now", self.action_retry)
        yield SystemCommand("New room", "Create a room with settings", self.lobby.action_create_room)
        if self.room_screen is not None:
            yield SystemCommand("Leave room", "Back to the lobby", self.action_leave_room)


def build_app(args: argparse.Namespace, start_embedded_server: ServerStarter | None = None) -> PianoApp:
    """The app the entry point runs, from the command line and the config file (the snapshot tests build
    theirs here too, so they show what a user sees)."""
    from pianorhythm.tui.app_setup import remember_choices

    options = options_from_args(args)
    remember_choices(options, args)
    return PianoApp(options, start_embedded_server)


def run_from_args(
    args: argparse.Namespace,
    start_embedded_server: ServerStarter | None = None,
    notices: Iterable[str] = (),
) -> int:
    """Run the TUI until the user quits, `notices` shown as warnings at start. Returns the exit status."""
    try:
        app = build_app(args, start_embedded_server)
    except FileFlagError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.notices.extend(notices)
    result = app.run()
    for ok, sentence in app.farewell:
        print(sentence, file=sys.stdout if ok else sys.stderr)
    if not all(ok for ok, _ in app.farewell):
        return 1
    return result if isinstance(result, int) else 0


__all__ = [
    "AppOptions",
    "EmbeddedServer",
    "PianoApp",
    "ServerStarter",
    "build_app",
    "options_from_args",
    "run_from_args",
]
