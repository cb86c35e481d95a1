"""Chat log, chat input typing signals, players list and status bar with plain data."""

from __future__ import annotations

import datetime as dt

from textual.app import App, ComposeResult

from pianorhythm.tui.messages import ChatLine, ChatSubmitted, PlayerView, TypingChanged
from pianorhythm.tui.widgets.chat import ChatInput, ChatLog, render_line
from pianorhythm.tui.widgets.players import PlayersList, render_player
from pianorhythm.tui.widgets.safe_text import clean, safe_color
from pianorhythm.tui.widgets.status import StatusBar

NOON_UTC_US = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC


def test_chat_line_renders_untrusted_text_literally():
    line = ChatLine(time_us=NOON_UTC_US, author="[red]eve", color="#00ff00", text="[bold]hi\x1b[2J\x07")
    text = render_line(line, dt.UTC)
    assert text.plain == "22:13 [red]eve: [bold]hi␛[2J␇"
    body = text.plain.index(": ") + 2
    assert not any("bold" in str(span.style) for span in text.spans if span.end > body)


def test_clean_and_colors():
    assert clean("plain text") == "plain text"
    assert clean("a\u202eb") == "a\ufffdb"
    assert safe_color("#ABCDEF") == "#abcdef"
    assert safe_color("red; evil") == "#cccccc"


def test_player_line_shows_everything():
    player = PlayerView(
        id=2, name="[b]Ann", color="#123456", status="away", instrument=40, muted=True, owner=True,
        typing=True, rtt_ms=23.4, delay_ms=120, spread_ms=61.6, late=2,
    )  # fmt: skip
    plain = render_player(player).plain
    assert "♛" in plain and "[b]Ann" in plain and "typing…" in plain and "muted" in plain
    assert "Violin" in plain and "rtt 23 · +120 ±62 ms · 2 late" in plain and "away" in plain
    unmeasured = render_player(PlayerView(id=3, name="new", color="#ffffff", delay_ms=3)).plain
    assert "rtt – · +3 ms" in unmeasured and "±" not in unmeasured and "late" not in unmeasured
    me = render_player(PlayerView(id=1, name="me", color="#ffffff", is_self=True, rtt_ms=5))
    assert "(you)" in me.plain and "+" not in me.plain


def test_status_bar_states():
    bar = StatusBar()
    bar.connection = "reconnecting"
    bar.retry_in_s = 2.4
    bar.rtt_ms = 12
    assert "reconnecting in 2 s" in bar.render().plain
    assert "rtt –" in bar.render().plain  # the last figure is stale while not connected
    bar.connection = "gave_up"
    assert "press Ctrl+R to retry" in bar.render().plain
    bar.connection = "connected"
    bar.rtt_ms = 12
    bar.midi_in = "Keystation"
    bar.audio = "jack · TimGM6mb"
    bar.notes_per_s = 7
    plain = bar.render().plain
    assert "connected" in plain and "rtt 12 ms" in plain and "Keystation" in plain
    assert "TimGM6mb" in plain and "7 notes/s" in plain


class ChatApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[object] = []

    def compose(self) -> ComposeResult:
        yield ChatLog(tz=dt.UTC)
        yield PlayersList()
        yield ChatInput(idle_s=0.2)

    def on_typing_changed(self, message: TypingChanged) -> None:
        self.events.append(("typing", message.typing))

    def on_chat_submitted(self, message: ChatSubmitted) -> None:
        self.events.append(("send", message.text))

    def on_chat_input_leave(self, message: ChatInput.Leave) -> None:
        self.events.append("leave")


async def test_typing_starts_on_first_key_and_stops_on_send():
    app = ChatApp()
    async with app.run_test() as pilot:
        app.query_one(ChatInput).focus()
        await pilot.press("h", "i")
        await pilot.press("enter")
        await pilot.pause()
        assert app.events == [("typing", True), ("typing", False), ("send", "hi")]
        assert app.query_one(ChatInput).value == ""


async def test_typing_stops_when_cleared_and_when_idle():
    app = ChatApp()
    async with app.run_test() as pilot:
        app.query_one(ChatInput).focus()
        await pilot.press("a", "backspace")
        await pilot.pause()
        assert app.events == [("typing", True), ("typing", False)]
        await pilot.press("b")
        await pilot.pause(0.4)  # idle_s is 0.2
        assert app.events[2:] == [("typing", True), ("typing", False)]


async def test_escape_leaves_without_sending():
    app = ChatApp()
    async with app.run_test() as pilot:
        app.query_one(ChatInput).focus()
        await pilot.press("x", "escape")
        await pilot.pause()
        assert app.events == [("typing", True), ("typing", False), "leave"]


async def test_chat_log_and_players_list_show_data():
    app = ChatApp()
    async with app.run_test() as pilot:
        log = app.query_one(ChatLog)
        log.add(ChatLine(time_us=NOON_UTC_US, author="bob", color="#ff0000", text="[i]x"))
        log.system(NOON_UTC_US, "ann joined")
        players = app.query_one(PlayersList)
        players.set_players([PlayerView(1, "me", "#fff000"), PlayerView(2, "boss", "#00ff00", owner=True)])
        await pilot.pause()
        assert [line.text for line in log.lines_shown] == ["[i]x", "ann joined"]
        assert players.players[0].name == "boss"
        rendered = "\n".join(strip.text for strip in log.lines)
        assert "bob: [i]x" in rendered and "ann joined" in rendered
