"""The status bar: connection, a file playing, RTT, MIDI input, audio, notes per second, octave, velocity."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from pianorhythm.tui.widgets.safe_text import plain

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

    def on_mount(self) -> None:
        # The app sets what it knows on the bars mounted at that moment; a screen still mounting when the
        # connection came up would show "connecting" until the next tick, so the bar takes the latest here.
        for key, value in getattr(self.app, "status_values", {}).items():
            setattr(self, key, value)

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
        """The parts in their order; on a narrow terminal the least telling ones go first, whole, so what
        is shown is never cut mid-word (notes/s, then the keys, rtt, audio and MIDI; never the state)."""
        rtt = self.rtt_ms if self.connection == "connected" else None  # the last figure is stale
        parts: list[tuple[int, Text]] = [(0, self.connection_text())]
        if self.playing:  # it names the key that stops it, so it must not be cut off
            parts.append((0, plain(self.playing)))
        parts.append((3, Text("rtt " + ("–" if rtt is None else f"{rtt:.0f} ms"), end="")))
        parts.append((1, Text("midi ", end="") + plain(self.midi_in or "none")))
        parts.append((2, Text("audio ", end="") + plain(self.audio or "silent")))
        parts.append((5, Text(f"{self.notes_per_s:.0f} notes/s", end="")))
        if self.keys:
            parts.append((4, Text(self.keys, end="")))
        width = self.content_size.width
        line = _joined(parts)
        while width and line.cell_len > width and any(rank for rank, _ in parts):
            least = max(range(len(parts)), key=lambda i: parts[i][0])
            del parts[least]
            line = _joined(parts)
        return line


def _joined(parts: list[tuple[int, Text]]) -> Text:
    return Text(" │ ", style="dim", end="").join(text for _, text in parts)
