"""The room: keyboard roll on top, chat and players below, status bar and footer.

Focus rules (as in Multiplayer Piano): the room opens with the keyboard focused, so the computer keyboard
plays; Enter moves to the chat input; Enter there sends and gives focus back to the keyboard; Escape leaves
the input without sending. Keys typed in the chat input never play notes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import ClassVar, Protocol

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from pianorhythm.client import model as m
from pianorhythm.commands import CommandError, parse_command
from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui.keys.kitty import KeyboardInput
from pianorhythm.tui.messages import ChatLine, ChatSubmitted, LeaveRoomRequest, SettingsChanged, TypingChanged
from pianorhythm.tui.screens import room_commands
from pianorhythm.tui.screens.room_state import RoomState
from pianorhythm.tui.widgets.chat import ChatInput, ChatLog
from pianorhythm.tui.widgets.header import SafeHeader
from pianorhythm.tui.widgets.keyboard_roll import Clock, KeyboardRoll
from pianorhythm.tui.widgets.players import PlayersList
from pianorhythm.tui.widgets.status import StatusBar


class EngineLike(room_commands.EngineActions, Protocol):
    """What the room screen calls on the engine (pianorhythm.tui.engine.Engine satisfies it)."""

    def play_local(self, event: MusicEvent) -> None: ...
    def send_chat(self, text: str) -> bool: ...
    def chat_refusal(self, text: str) -> str | None: ...
    def typing_start(self) -> bool: ...
    def typing_stop(self) -> bool: ...
    def player_stats(self, user_id: int) -> m.PlayerStats | None: ...
    @property
    def rtt_ms(self) -> float | None: ...


def _chat_line(line: m.ChatLine) -> ChatLine:
    if line.system:
        return ChatLine(
            time_us=line.server_time_us, text=f"server notice: {line.content}", system=True, id=line.id
        )
    return ChatLine(
        time_us=line.server_time_us,
        text=line.content,
        author=line.user_name,
        color=line.user_color,
        id=line.id,
    )


class RoomScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding runs before the key goes to the focused widget, so keys typed right after
        # Enter reach the chat input instead of queueing at the keyboard (where they would play notes).
        Binding("enter", "focus_chat", "Chat", priority=True),
        Binding("ctrl+l", "leave_room", "Leave room"),
        Binding("f2", "app.settings", "Settings"),
        Binding("f1", "app.help", "Help"),
    ]

    def __init__(
        self,
        room: m.RoomInfo,
        me_id: int,
        engine: EngineLike | None = None,
        *,
        clock: Clock = time.perf_counter,
        now_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        tz: dt.tzinfo | None = None,
        stats_interval_s: float = 1.0,
        keyboard: KeyboardInput | None = None,
    ) -> None:
        super().__init__()
        self.state = RoomState.from_room(room, me_id, now_us, tz)
        self.history = room.chat_history
        self.engine = engine
        self.clock = clock
        self.now_us = now_us
        self.tz = tz
        self.stats_interval_s = stats_interval_s
        self.keyboard = keyboard or KeyboardInput("fixed")
        self._active = True  # not covered by a dialog
        self._note_ons = 0
        self._ready = False
        self._pending: list[m.EngineEvent] = []  # events that came before the widgets existed
        self._closed = False  # unmounted: events that still arrive are dropped
        self._roll: KeyboardRoll | None = None
        self.sub_title = self.state.state_line()

    # ---- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        yield KeyboardRoll(clock=self.clock, id="roll")
        with Horizontal(id="room-bottom"):
            with Vertical(id="chat"):
                yield ChatLog(tz=self.tz, id="chat-log")
                yield ChatInput(id="chat-input")
            yield PlayersList(id="players")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def roll(self) -> KeyboardRoll:
        if self._roll is None:
            self._roll = self.query_one(KeyboardRoll)
        return self._roll

    def on_mount(self) -> None:
        try:
            self._set_up()
        except NoMatches:  # the screen went before it finished mounting (rooms switched in quick succession)
            self._closed = True

    def _set_up(self) -> None:
        self.title = "pianorhythm"
        roll = self.roll
        roll.local_player = self.state.me_id
        roll.echo_local = self.engine is None
        roll.set_colors(self.state.colors())
        self.query_one(ChatLog).reset([_chat_line(line) for line in self.history])
        self._refresh_players()
        roll.focus()
        self.sync_keys()
        if self.stats_interval_s > 0:
            self.set_interval(self.stats_interval_s, self._update_stats)
        self._ready = True
        pending, self._pending = self._pending, []
        for event in pending:
            self.handle_engine_event(event)

    def save_settings(self, changes: dict[str, object]) -> None:
        self.post_message(SettingsChanged(changes))

    def say(self, text: str) -> None:
        self.query_one(ChatLog).system(self.now_us(), text)

    def _refresh_players(self) -> None:
        self.sub_title = self.state.state_line()  # member count, lock, limit: always in view
        self.query_one(PlayersList).set_players(self.state.players())
        self.roll.set_colors(self.state.colors())

    def _update_stats(self) -> None:
        status = self.query_one(StatusBar)
        status.notes_per_s = self._note_ons / self.stats_interval_s
        self._note_ons = 0
        if self.engine is None:
            return
        self.state.my_rtt_ms = self.engine.rtt_ms
        status.rtt_ms = self.engine.rtt_ms
        for uid in self.state.users:
            stats = self.engine.player_stats(uid)
            if stats is not None:
                self.state.stats[uid] = stats
        self._refresh_players()

    # ---- engine events -------------------------------------------------------------------------------------

    def on_unmount(self) -> None:
        self._closed = True
        self.keyboard.want_events(False)

    # ---- key press and release (pianorhythm.tui.keys.kitty) ----------------------------------------------

    def sync_keys(self) -> None:
        """Key events with release while the keyboard roll has focus, ordinary keys everywhere else (chat,
        dialogs); the status bar says which."""
        roll = self.roll
        want = self._active and not self._closed and self.focused is roll
        self.keyboard.want_events(want)
        roll.hold_keys = want and self.keyboard.press_release
        self._show_keys()

    def _show_keys(self) -> None:
        state = self.roll.keymap
        self.query_one(StatusBar).keys = f"{state.octave_label} v{state.velocity} {self.keyboard.label}"

    def on_descendant_focus(self) -> None:
        self.sync_keys()

    def on_descendant_blur(self) -> None:
        self.sync_keys()

    def on_screen_suspend(self) -> None:
        self._active = False
        self.sync_keys()

    def on_screen_resume(self) -> None:
        self._active = True
        if self._ready:
            self.sync_keys()

    def handle_engine_event(self, event: m.EngineEvent) -> None:
        if self._closed:
            return
        if not self._ready:
            self._pending.append(event)
            return
        try:
            self._handle(event)
        except NoMatches:  # the widgets are gone: the screen is being dismissed
            self._closed = True

    def _handle(self, event: m.EngineEvent) -> None:
        match event:
            case m.NotesPlayed(user_id=uid, events=events, local=local):
                self._play(uid, events)
                if local:
                    self.roll.advance()  # your own key lights now, not at the next frame tick
            case m.ChatReceived(line=line):
                self.query_one(ChatLog).add(_chat_line(line))
                self.state.apply(event, self.say)
                self._refresh_players()
            case m.ChatHistory(lines=lines, catch_up=True):
                log = self.query_one(ChatLog)
                shown = {line.id for line in log.lines_shown}
                for line in lines:
                    if line.id not in shown:
                        log.add(_chat_line(line))
            case m.RoomEntered():
                self._resume(event)
            case m.UserLeft(user_id=uid):
                self.roll.release_player(uid)
                self.state.apply(event, self.say)
                self._refresh_players()
            case m.ServerError(message=message):
                self.say(message)
            case m.CommandOutput(ok=ok, output=output):
                for text in output.splitlines():
                    self.say(text)
                if not ok:
                    self.notify(output, severity="warning")
            case _:
                if self.state.apply(event, self.say):
                    self._refresh_players()

    def _resume(self, entered: m.RoomEntered) -> None:
        """Back in this room after a drop: the members are the server's now; say who came and went (the
        client core compares them with the members when the link dropped)."""
        self.state.take_room(entered.room)
        came, went = entered.came, entered.went
        for user in went:
            self.roll.release_player(user.id)
        self._refresh_players()
        changes = [f"{u.name} joined" for u in came] + [f"{u.name} left" for u in went]
        if changes:
            self.say("While you were away: " + ", ".join(changes))

    def _play(self, user_id: int, events: tuple[MusicEvent, ...]) -> None:
        roll = self.roll
        for event in events:
            if event.kind is EventKind.NOTE:
                if event.value > 0:
                    self._note_ons += 1
                    roll.note_on(user_id, event.number, event.value)
                else:
                    roll.note_off(user_id, event.number)
            elif event.number == 64:
                roll.pedal(user_id, event.value >= 64)

    # ---- local input ---------------------------------------------------------------------------------------

    def on_keyboard_roll_local_note(self, message: KeyboardRoll.LocalNote) -> None:
        if self.engine is not None:
            self.engine.play_local(
                MusicEvent(EventKind.NOTE, message.key, message.velocity, time.perf_counter_ns())
            )
        elif message.velocity:
            self._note_ons += 1

    def on_keyboard_roll_keymap_changed(self, message: KeyboardRoll.KeymapChanged) -> None:
        self._show_keys()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_chat":
            return self.is_mounted and self.focused is self.roll  # elsewhere Enter is the widget's own
        return True

    def action_focus_chat(self) -> None:
        # Screen.set_focus acts at once (Widget.focus waits a turn), so keys typed right after Enter
        # already go to the input instead of playing notes.
        self.set_focus(self.query_one(ChatInput))

    def action_leave_room(self) -> None:
        self.post_message(LeaveRoomRequest())

    def on_chat_input_leave(self, message: ChatInput.Leave) -> None:
        self.set_focus(self.roll)

    def on_typing_changed(self, message: TypingChanged) -> None:
        message.stop()
        if self.engine is not None:
            if message.typing:
                self.engine.typing_start()
            else:
                self.engine.typing_stop()

    def on_chat_submitted(self, message: ChatSubmitted) -> None:
        message.stop()
        self.set_focus(self.roll)
        text = message.text
        if not text:
            return
        command = parse_command(text)
        if command is None:
            if text.startswith("//"):
                text = text[1:]
            refusal = self.engine.chat_refusal(text) if self.engine is not None else None
            if self.engine is None:
                self.say("Not connected.")
            elif refusal is not None:
                self.say(refusal)  # and give the text back to shorten
                chat_input = self.query_one(ChatInput)
                chat_input.value = message.text
                self.set_focus(chat_input)
            else:
                self.engine.send_chat(text)
            return
        if isinstance(command, CommandError):
            self.say(command.message)
            return
        error = room_commands.run(command, self.state, self.engine, self.say, self.save_settings)
        if error:
            self.say(error)
            self.notify(error, severity="warning")
