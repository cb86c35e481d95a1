"""The status bar: connection, a file playing, RTT, MIDI input, audio, notes per second, octave, velocity."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.widgets.safe_text import plain

RETRY_KEY = "Ctrl+R"  # the app's retry binding (ctrl+r) as every message names it

STATE_STYLE = {
    "connected": ("●", "green"),
    "connecting": ("◌", "yellow"),
    "reconnecting": ("◌", "yellow"),
    "gave_up": ("✕", "red"),
    "replaced": ("✕", "red"),
    "closed": ("✕", "red"),
}


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    connection: reactive[str] = reactive("connecting")
    retry_in_s: reactive[float | None] = reactive(None)
    rtt_ms: reactive[float | None] = reactive(None)
    midi_in: reactive[str] = reactive("")
    audio: reactive[str] = reactive("silent")
    notes_per_s: reactive[float] = reactive(0.0)
    keys: reactive[str] = reactive("")  # e.g. "C3 v96"
    playing: reactive[str] = reactive("")  # --play: "▶ song.mid 0:07/0:18 · Ctrl+S stops"

    def connection_text(self) -> Text:
        mark, style = STATE_STYLE.get(self.connection, ("?", "dim"))
        text = Text(mark + " ", style=style, end="")
        if self.connection == "reconnecting" and self.retry_in_s is not None:
            text.append(f"reconnecting in {self.retry_in_s:.0f} s", style=style)
        elif self.connection == "gave_up":
            text.append(f"gave up — press {RETRY_KEY} to retry", style=style)
        elif self.connection == "replaced":
            text.append(f"identity in use elsewhere — press {RETRY_KEY} to take it back", style=style)
        else:
            text.append(self.connection.replace("_", " "), style=style)
        return text

    def render(self) -> Text:
        parts = [self.connection_text()]
        if self.playing:  # second: it names the key that stops it, so it must not be cut off
            parts.append(plain(self.playing))
        rtt = self.rtt_ms if self.connection == "connected" else None  # the last figure is stale
        parts.append(Text("rtt " + ("–" if rtt is None else f"{rtt:.0f} ms"), end=""))
        parts.append(Text("midi ", end="") + plain(self.midi_in or "none"))
        parts.append(Text("audio ", end="") + plain(self.audio or "silent"))
        parts.append(Text(f"{self.notes_per_s:.0f} notes/s", end=""))
        if self.keys:
            parts.append(Text(self.keys, end=""))
        return Text(" │ ", style="dim", end="").join(parts)
