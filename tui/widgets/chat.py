"""The chat: a log of timestamped lines and an input that reports typing.

`ChatLog.add(line)` appends a `ChatLine` (author in their colour, text literal: no markup, control
characters visible). `ChatInput` posts `TypingChanged(True)` on the first keystroke, `TypingChanged(False)`
when the line is sent, cleared, left with Escape, or after `idle_s` seconds without a keystroke, and
`ChatSubmitted(text)` on Enter. Escape posts `ChatInput.Leave` without sending.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, RichLog

from pianorhythm.tui.messages import ChatLine, ChatSubmitted, TypingChanged
from pianorhythm.tui.widgets.safe_text import plain, safe_color

TYPING_IDLE_S = 3.0


def format_time(time_us: int, tz: dt.tzinfo | None = None) -> str:
    """HH:MM of a server time in `tz` (local time when None)."""
    stamp = dt.datetime.fromtimestamp(time_us / 1_000_000, tz=tz or dt.UTC)
    if tz is None:
        stamp = stamp.astimezone()
    return stamp.strftime("%H:%M")


def render_line(line: ChatLine, tz: dt.tzinfo | None = None) -> Text:
    text = Text(format_time(line.time_us, tz) + " ", style="dim", end="")
    if line.system:
        text.append_text(plain(line.text, "italic dim"))
        return text
    text.append_text(plain(line.author, f"bold {safe_color(line.color)}"))
    text.append(": ")
    text.append_text(plain(line.text))
    return text


class ChatLog(RichLog):
    """Chat history, newest at the bottom."""

    DEFAULT_CSS = """
    ChatLog {
        height: 1fr;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, tz: dt.tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, min_width=20, id=id)
        self.tz = tz
        self.lines_shown: list[ChatLine] = []
        self.can_focus = False
        self._wrapped_at = 0  # the width the lines were wrapped at

    def on_resize(self, event: events.Resize) -> None:
        # RichLog wraps a line once, when it is written: wrap them all again at the new width.
        known = self._wrapped_at or event.size.width
        super().on_resize(event)
        self._wrapped_at = event.size.width
        if event.size.width != known:
            self.reset(list(self.lines_shown))

    def add(self, line: ChatLine) -> None:
        self.lines_shown.append(line)
        # The width of the log itself: RichLog would measure against the console, which keeps the width the
        # terminal had at start.
        width = self.scrollable_content_region.width
        self.write(render_line(line, self.tz), width=max(width, self.min_width) if width else None)

    def system(self, time_us: int, text: str) -> None:
        self.add(ChatLine(time_us=time_us, text=text, system=True))

    def reset(self, lines: list[ChatLine]) -> None:
        self.clear()
        self.lines_shown = []
        for line in lines:
            self.add(line)


class ChatInput(Input):
    """The chat input line (Enter sends, Escape leaves without sending)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back to keys", show=True),
    ]

    class Leave(Message):
        """Escape: give focus back to the keyboard."""

    def __init__(
        self, *, idle_s: float = TYPING_IDLE_S, max_length: int = 500, id: str | None = None
    ) -> None:
        super().__init__(placeholder="Enter to chat, /help for commands", max_length=max_length, id=id)
        self.idle_s = idle_s
        self.typing = False
        self._idle: Timer | None = None

    def _set_typing(self, typing: bool) -> None:
        if self._idle is not None:
            self._idle.stop()
            self._idle = None
        if typing:
            self._idle = self.set_timer(self.idle_s, lambda: self._set_typing(False))
        if typing != self.typing:
            self.typing = typing
            self.post_message(TypingChanged(typing))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if "\t" in event.value:  # pasted: the server drops control characters, so "a\tb" would send "ab"
            self.value = event.value.replace("\t", " ")
            return
        self._set_typing(bool(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        self._set_typing(False)
        self.value = ""
        self.post_message(ChatSubmitted(text))

    def on_key(self, event: events.Key) -> None:
        # A keystroke that does not change the text (cursor moves) still counts as activity.
        if self.typing and self.value:
            self._set_typing(True)

    def action_leave(self) -> None:
        self._set_typing(False)
        self.post_message(self.Leave())
