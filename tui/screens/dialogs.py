"""Small modal dialogs: a room password prompt, the create-room form and the help screen."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from pianorhythm.commands import HELP
from pianorhythm.tui.messages import NewRoom
from pianorhythm.tui.widgets.safe_text import plain


class PasswordScreen(ModalScreen[str | None]):
    """Ask for a locked room's password; dismisses with the password or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, room: str) -> None:
        super().__init__()
        self.room = room

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text("Password for ", end="") + plain(self.room, "bold"))
            yield Input(password=True, placeholder="password", id="password")
            with Horizontal(classes="buttons"):
                yield Button("Join", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.query_one("#password", Input).value if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _field(label: str, field: Input) -> ComposeResult:
    """A labelled input: the label to its left."""
    with Horizontal(classes="field"):
        yield Label(label, classes="field-label")
        yield field


class CreateRoomScreen(ModalScreen[NewRoom | None]):
    """Name and settings for a new room."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.initial_name = name

    def compose(self) -> ComposeResult:
        # The fields scroll and the buttons stay below them, so Create is reachable at any height.
        with Vertical(classes="dialog create-room"):
            yield Label("Create a room", classes="title")
            with VerticalScroll(classes="form"):
                yield from _field("Name", Input(self.initial_name, max_length=64, id="name"))
                yield from _field(
                    "Password",
                    Input(placeholder="empty: none", password=True, max_length=64, id="password"),
                )
                yield from _field(
                    "Player limit", Input("50", placeholder="1-100", type="integer", id="limit")
                )
                yield Checkbox("Private (not listed)", compact=True, id="private")
                yield Checkbox("Chat on", True, compact=True, id="chat")
                yield Checkbox("Only the owner plays", compact=True, id="ownerplay")
            with Vertical(classes="foot"):
                yield Label("", id="error", classes="error")
                with Horizontal(classes="buttons"):
                    yield Button("Create", variant="primary", id="ok")
                    yield Button("Cancel", id="cancel")

    def _result(self) -> NewRoom | str:
        name = self.query_one("#name", Input).value.strip()
        if not name:
            return "Give the room a name."
        limit_text = self.query_one("#limit", Input).value.strip() or "50"
        limit = int(limit_text) if limit_text.isdigit() else 0
        if not 1 <= limit <= 100:
            return "The player limit is a number from 1 to 100."
        return NewRoom(
            name=name,
            private=self.query_one("#private", Checkbox).value,
            password=self.query_one("#password", Input).value,
            user_limit=limit,
            chat_enabled=self.query_one("#chat", Checkbox).value,
            owner_only_play=self.query_one("#ownerplay", Checkbox).value,
        )

    def _submit(self) -> None:
        result = self._result()
        if isinstance(result, str):
            self.query_one("#error", Label).update(result)
        else:
            self.dismiss(result)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


# (what, how) rows by section: the second column wraps under itself, so no phrase breaks into the first.
HELP_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Playing",
        (
            ("MIDI keyboard", "plays as soon as it is plugged in (choose one in Settings)."),
            ("Mouse", "click a key, or hold the button and swipe across the keys."),
            ("Computer keys", "play while the keyboard has focus, never while you type in chat:"),
            (
                "  lower octave",
                "Z S X D C V G B H N J M , L . ; /  (white keys Z X C V B N M, black S D G H J)",
            ),
            ("  octave above", "Q 2 W 3 E R 5 T 6 Y 7 U I 9 O 0 P [ = ]"),
            ("  Left / Right", "octave down / up"),
            ("  Up / Down", "louder / softer"),
            (
                "Note length",
                "terminals send no key-release, so a computer-key note lasts a fixed time (Settings: note "
                "length); holding a key down keeps it sounding while the terminal repeats it. Use the mouse "
                "or MIDI for chords with exact lengths.",
            ),
        ),
    ),
    (
        "Chat",
        (
            ("Enter", "move to the chat input; Enter again sends and gives the keys back their focus."),
            ("Escape", "leave the chat input without sending."),
            (
                "typing…",
                "others see it while you type; it stops when you send, clear the line, or pause 3 s.",
            ),
        ),
    ),
    (
        "Keys",
        (
            ("F1", "help"),
            ("F2", "settings"),
            ("Ctrl+L", "leave the room"),
            ("Ctrl+R", "retry the connection"),
            ("Ctrl+S", "stop the file --play is playing"),
            ("Ctrl+P", "command palette"),
            ("Ctrl+Q", "quit"),
        ),
    ),
)


def help_renderable() -> Group:
    """The help text: a titled two-column grid per section, then the chat commands."""
    commands = tuple(tuple(line.split(" - ", 1)) for line in HELP.values())
    sections = (
        *HELP_SECTIONS,
        ("Commands (type them in chat; // sends a line that starts with /)", commands),
    )
    parts: list[RenderableType] = []
    for title, rows in sections:
        grid = Table.grid(padding=(0, 2), pad_edge=False)
        grid.add_column(style="bold", min_width=14, max_width=30)
        grid.add_column(ratio=1)
        for row in rows:
            grid.add_row(*(Text(cell) for cell in row))
        parts += [Text(title, style="bold underline"), grid, Text("")]
    return Group(*parts[:-1])


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("f1", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            with VerticalScroll(classes="form"):
                yield Static(help_renderable(), id="help-text")
            with Vertical(classes="foot"):
                with Horizontal(classes="buttons"):
                    yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
