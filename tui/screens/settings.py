"""Settings: MIDI input (live list), MIDI out, audio driver, SoundFont, instrument, levels, latency, name and
colour.

Dismisses with the changed values (keys are `pianorhythm.tui.config.Config` fields) or None when cancelled.
The lists come from callables so tests can pass fixed ones; the MIDI list is polled while the screen is open.
A MIDI port is listed with its system (ALSA, JACK), and choosing one saves both `midi_device` and `midi_api`.
The last line, read-only, names the file this run logs to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from pianorhythm.gm import GM_PROGRAM_NAMES
from pianorhythm.tui.config import Config
from pianorhythm.tui.logs import active_log_file

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MidiPort = tuple[str, str]  # (MIDI system: "alsa", "jack" or "" for the platform's own, port name)
NO_MIDI: MidiPort = ("", "")
LATENCY_CHOICES = (
    ("low: least delay, may stutter", "low"),
    ("balanced (default)", "balanced"),
    ("safe: steady even on bad links", "safe"),
)


class SettingsScreen(ModalScreen[dict[str, object] | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(
        self,
        config: Config,
        *,
        midi_ports: Callable[[], Sequence[MidiPort]] = lambda: [],
        audio_drivers: Sequence[str] = ("auto",),
        soundfonts: Sequence[str] = (),
        poll_s: float = 2.0,
    ) -> None:
        super().__init__()
        self.config = config
        self.midi_ports = midi_ports
        self.audio_drivers = list(audio_drivers)
        self.soundfonts = list(soundfonts)
        self.poll_s = poll_s
        self._ports: list[MidiPort] = []

    def _midi_options(self, ports: Sequence[MidiPort]) -> list[tuple[str, MidiPort]]:
        options = [("none (computer keyboard and mouse)", NO_MIDI)]
        options += [(f"{port} ({api})" if api else port, (api, port)) for api, port in ports]
        if self._saved_port not in ports and self._saved_port != NO_MIDI:
            api, port = self._saved_port
            options.append((f"{port} ({api or 'MIDI'}, not connected)", self._saved_port))
        return options

    @property
    def _saved_port(self) -> MidiPort:
        return (self.config.midi_api, self.config.midi_device) if self.config.midi_device else NO_MIDI

    def compose(self) -> ComposeResult:
        cfg = self.config
        self._ports = list(self.midi_ports())
        drivers = (
            self.audio_drivers
            if cfg.audio_driver in self.audio_drivers
            else [*self.audio_drivers, cfg.audio_driver]
        )
        fonts = (
            self.soundfonts
            if not cfg.soundfont or cfg.soundfont in self.soundfonts
            else [cfg.soundfont, *self.soundfonts]
        )
        with Vertical(classes="dialog settings"):
            yield Label("Settings", classes="title")
            with VerticalScroll(classes="form"):
                yield Label("Name")
                yield Input(cfg.name, max_length=32, id="name")
                yield Label("Colour (#rrggbb)")
                yield Input(cfg.color, max_length=7, id="color")
                yield Label("MIDI input")
                yield Select(
                    self._midi_options(self._ports),
                    value=self._saved_port,
                    allow_blank=False,
                    id="midi_device",
                )
                yield Label("MIDI out: remote players to (part of a port name)")
                yield Input(cfg.midi_out, id="midi_out")
                yield Label("Audio driver")
                yield Select(
                    [(d, d) for d in drivers],
                    value=cfg.audio_driver or "auto",
                    allow_blank=False,
                    id="audio_driver",
                )
                yield Label("SoundFont")
                font_options = [("automatic", "")] + [(f, f) for f in fonts]
                yield Select(font_options, value=cfg.soundfont, allow_blank=False, id="soundfont")
                yield Label("Instrument")
                instruments = [(f"{i:3d} {name}", i) for i, name in enumerate(GM_PROGRAM_NAMES)]
                yield Select(instruments, value=cfg.instrument, allow_blank=False, id="instrument")
                yield Label("Latency")
                yield Select(list(LATENCY_CHOICES), value=cfg.latency, allow_blank=False, id="latency")
                with Horizontal(classes="levels"):
                    for key, label in (
                        ("volume", "Volume %"),
                        ("reverb", "Reverb %"),
                        ("chorus", "Chorus %"),
                    ):
                        yield Label(label)
                        yield Input(str(round(getattr(cfg, key) * 100)), type="integer", max_length=3, id=key)
                yield Label("Computer-key note length (ms; terminals send no key-up)")
                yield Input(
                    str(round(cfg.note_length_s * 1000)), type="integer", max_length=4, id="note_length_s"
                )
                log_file = active_log_file()
                yield Label(f"Log file: {log_file or 'none in this run'}", id="log_file", markup=False)
            with Vertical(classes="foot"):  # Save and Cancel stay in sight however small the terminal
                yield Label("", id="error", classes="error")
                with Horizontal(classes="buttons"):
                    yield Button("Save", variant="primary", id="save")
                    yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.poll_s > 0:
            self.set_interval(self.poll_s, self._poll_midi)

    def _poll_midi(self) -> None:
        ports = list(self.midi_ports())
        if ports == self._ports:
            return
        self._ports = ports
        select: Select[MidiPort] = self.query_one("#midi_device", Select)
        current = select.value
        select.set_options(self._midi_options(ports))
        if current in ports or current in (NO_MIDI, self._saved_port):
            select.value = current

    def _level(self, key: str, low: int, high: int) -> int | str:
        text = self.query_one(f"#{key}", Input).value.strip()
        if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
            return f"{key.replace('_s', '').replace('_', ' ').capitalize()} is a number from {low} to {high}."
        return int(text)

    def collect(self) -> dict[str, object] | str:
        """The changed settings, or one sentence about the first invalid field."""
        values: dict[str, object] = {}
        name = self.query_one("#name", Input).value.strip()
        if not 1 <= len(name) <= 32 and name != self.config.name:
            return "A name is 1 to 32 characters."
        values["name"] = name
        color = self.query_one("#color", Input).value.strip()
        if color and not _COLOR.match(color):
            return "A colour looks like #ff8800."
        values["color"] = color.lower()
        midi = self.query_one("#midi_device", Select).value
        if isinstance(midi, tuple):
            values["midi_api"], values["midi_device"] = midi
        values["midi_out"] = self.query_one("#midi_out", Input).value.strip()
        for key in ("audio_driver", "soundfont", "instrument", "latency"):
            value = self.query_one(f"#{key}", Select).value
            if value is not Select.NULL:
                values[key] = value
        for key in ("volume", "reverb", "chorus"):
            level = self._level(key, 0, 100)
            if isinstance(level, str):
                return level
            values[key] = level / 100
        length = self._level("note_length_s", 50, 5000)
        if isinstance(length, str):
            return "Note length is a number of milliseconds from 50 to 5000."
        values["note_length_s"] = length / 1000
        current = asdict(self.config)
        return {k: v for k, v in values.items() if current.get(k) != v}

    def action_save(self) -> None:
        result = self.collect()
        if isinstance(result, str):
            self.query_one("#error", Label).update(result)
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()
