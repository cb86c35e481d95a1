"""The players list: name in their colour, crown, status, instrument, RTT, path spread and playout delay,
late notes, mute, typing."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from pianorhythm.gm import program_name
from pianorhythm.tui.messages import PlayerView
from pianorhythm.tui.widgets.safe_text import plain, safe_color

CROWN = "♛"
STATUS_MARK = {"online": ("●", "green"), "away": ("◐", "yellow"), "busy": ("⊘", "red")}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def render_player(player: PlayerView) -> Text:
    """Two lines: "♛ name (you) typing…" and "rtt 20 · +45 ±30 ms · 2 late · away · instrument"
    (rtt, how far their path's delay spreads, the playout delay their notes get, their late notes)."""
    mark, mark_style = STATUS_MARK.get(player.status, ("●", "dim"))
    text = Text(end="")
    text.append(mark + " ", style=mark_style)
    if player.owner:
        text.append(CROWN + " ", style="bold yellow")
    text.append_text(plain(player.name, f"bold {safe_color(player.color)}"))
    if player.is_self:
        text.append(" (you)", style="dim")
    if player.muted:
        text.append(" ✕muted", style="red")
    if player.typing:
        text.append(" typing…", style="italic dim")
    text.append("\n  ")
    # Figures first: a narrow panel cuts the instrument name, not the latency.
    if player.is_self:
        details = [f"rtt {_ms(player.rtt_ms)} ms"]
    else:
        spread = "" if player.spread_ms is None else f" ±{_ms(player.spread_ms)}"
        details = [f"rtt {_ms(player.rtt_ms)} · +{_ms(player.delay_ms)}{spread} ms"]
        if player.late:
            details.append(f"{player.late} late")
    if player.status != "online":
        details.append(player.status)
    details.append(program_name(player.instrument))
    text.append(" · ".join(details), style="dim")
    return text


class PlayersList(Widget):
    """The people in the room, owner first, then in joining order."""

    DEFAULT_CSS = """
    PlayersList {
        height: auto;
        max-height: 50%;
        background: $surface;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    players: reactive[tuple[PlayerView, ...]] = reactive(())

    def set_players(self, players: Iterable[PlayerView]) -> None:
        ordered = tuple(sorted(players, key=lambda p: not p.owner))
        if len(ordered) != len(self.players):
            self.refresh(layout=True)  # the height follows the number of players, not their figures
        self.players = ordered

    def render(self) -> Text:
        if not self.players:
            return Text("nobody here", style="dim")
        text = Text("\n", end="").join(render_player(p) for p in self.players)
        text.no_wrap = True
        text.overflow = "ellipsis"
        return text
