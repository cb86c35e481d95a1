"""MIDI input through a real JACK server: a virtual "keyboard" port plays into the client's input."""

from __future__ import annotations

import asyncio

import pytest
import rtmidi

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.tui.midi.input import NullMidiInput, RtMidiInput, open_midi_input
from pianorhythm.tui.midi.ports import list_input_ports, print_ports

pytestmark = pytest.mark.usefixtures("jackd")

KEYBOARD_CLIENT = "testkbd"
KEYBOARD_PORT = "keys"


class Keyboard:
    """A virtual JACK MIDI output port standing in for a USB keyboard."""

    def __init__(self) -> None:
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=KEYBOARD_CLIENT)
        self.out.open_virtual_port(KEYBOARD_PORT)
        self.plugged = True

    def send(self, *message: int) -> None:
        self.out.send_message(list(message))

    def unplug(self) -> None:
        if self.plugged:  # rtmidi segfaults on a port used after delete()
            self.plugged = False
            self.out.close_port()
            self.out.delete()


class Collector:
    def __init__(self) -> None:
        self.events: asyncio.Queue[MusicEvent] = asyncio.Queue()
        self.statuses: asyncio.Queue[str] = asyncio.Queue()

    def on_event(self, event: MusicEvent) -> None:
        self.events.put_nowait(event)

    def on_status(self, message: str) -> None:
        self.statuses.put_nowait(message)

    async def status(self) -> str:
        return await asyncio.wait_for(self.statuses.get(), timeout=5)

    async def take(self, count: int) -> list[MusicEvent]:
        return [await asyncio.wait_for(self.events.get(), timeout=5) for _ in range(count)]


@pytest.fixture
def keyboard():
    kbd = Keyboard()
    yield kbd
    kbd.unplug()


def test_ports_are_listed(keyboard, capsys):
    assert f"{KEYBOARD_CLIENT}:{KEYBOARD_PORT}" in list_input_ports("jack")
    assert print_ports("jack") == 0
    assert f"in\t{KEYBOARD_CLIENT}:{KEYBOARD_PORT}" in capsys.readouterr().out.splitlines()


async def test_notes_and_pedal_arrive_in_order_with_velocity(keyboard):
    got = Collector()
    midi = RtMidiInput(got.on_event, got.on_status, api="jack", wanted="TESTKBD:KEYS", poll_interval=0.1)
    try:
        assert midi.connected and midi.port_name == f"{KEYBOARD_CLIENT}:{KEYBOARD_PORT}"
        assert "testkbd:keys" in await got.status()
        keyboard.send(0xF8)  # clock
        keyboard.send(0x90, 60, 100)
        keyboard.send(0xFE)  # active sensing
        keyboard.send(0xB0, SUSTAIN_PEDAL, 127)
        keyboard.send(0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7)  # sysex identity request
        keyboard.send(0x91, 64, 80)  # another MIDI channel: still this player
        keyboard.send(0xB0, 7, 20)  # volume: not passed on
        keyboard.send(0xE0, 0, 64)  # pitch bend: ignored
        keyboard.send(0x90, 60, 0)  # note-on velocity 0 = release
        keyboard.send(0x80, 64, 45)  # note-off with a release velocity = release
        keyboard.send(0xB0, SUSTAIN_PEDAL, 0)
        events = await got.take(6)
        assert [(e.kind, e.number, e.value) for e in events] == [
            (EventKind.NOTE, 60, 100),
            (EventKind.CONTROL, SUSTAIN_PEDAL, 127),
            (EventKind.NOTE, 64, 80),
            (EventKind.NOTE, 60, 0),
            (EventKind.NOTE, 64, 0),
            (EventKind.CONTROL, SUSTAIN_PEDAL, 0),
        ]
        times = [e.time_ns for e in events]
        assert times == sorted(times)
        await asyncio.sleep(0.1)
        assert got.events.empty()  # nothing else came through
        assert midi.events_received == 6
    finally:
        midi.close()


async def test_unplug_is_reported_and_replug_reopens(keyboard):
    got = Collector()
    midi = RtMidiInput(got.on_event, got.on_status, api="jack", poll_interval=0.05)
    try:
        assert midi.connected
        await got.status()
        keyboard.unplug()
        message = await got.status()
        assert "unplugged" in message and "\n" not in message
        assert not midi.connected and midi.port_name is None

        again = Keyboard()
        try:
            assert "is back" in await got.status()
            assert midi.connected
            again.send(0x90, 72, 33)
            [event] = await got.take(1)
            assert (event.number, event.value) == (72, 33)
        finally:
            again.unplug()
    finally:
        midi.close()


async def test_a_keyboard_plugged_in_later_is_opened():
    got = Collector()
    midi = RtMidiInput(got.on_event, got.on_status, api="jack", wanted="late-kbd", poll_interval=0.05)
    try:
        assert not midi.connected
        assert "late-kbd" in await got.status()
        out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="late-kbd")
        out.open_virtual_port("in")
        try:
            assert "late-kbd:in" in await got.status()
            out.send_message([0x90, 50, 90])
            [event] = await got.take(1)
            assert event.number == 50
        finally:
            out.close_port()
            out.delete()
    finally:
        midi.close()


async def test_close_stops_delivery(keyboard):
    got = Collector()
    midi = RtMidiInput(got.on_event, got.on_status, api="jack", wanted=KEYBOARD_CLIENT)
    midi.close()
    midi.close()
    keyboard.send(0x90, 60, 100)
    await asyncio.sleep(0.1)
    assert got.events.empty()


async def test_no_midi_system_is_one_line_not_a_crash(monkeypatch, capsys):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "pr-test-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    got = Collector()
    midi = open_midi_input(got.on_event, got.on_status, api="jack")
    assert isinstance(midi, NullMidiInput) and not midi.connected
    message = await got.status()
    assert "JACK server is not running" in message and "\n" not in message
    midi.close()
    assert print_ports("jack") == 1
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1
