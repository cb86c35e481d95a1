"""Port choice and MIDI message parsing (pure)."""

from __future__ import annotations

import pytest

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.tui.midi.input import parse_message
from pianorhythm.tui.midi.ports import (
    MidiUnavailable,
    choose_port,
    is_hardware_port,
    mido_backend_name,
    port_key,
    rtmidi_api,
)

ALSA_PORTS = [
    "Midi Through:Midi Through Port-0 14:0",
    "RtMidiOut Client:RtMidi virtual 128:0",
    "USB Keystation 61:USB Keystation 61 MIDI 1 20:0",
    "Digital Piano:Digital Piano MIDI 1 24:0",
]


def test_wanted_is_a_case_insensitive_substring():
    assert choose_port(ALSA_PORTS, wanted="digital") == ALSA_PORTS[3]
    assert choose_port(ALSA_PORTS, wanted="nope") is None
    assert choose_port(ALSA_PORTS, wanted="through") == ALSA_PORTS[0]  # asked for explicitly


def test_default_is_last_used_then_first_hardware_port():
    assert choose_port(ALSA_PORTS) == ALSA_PORTS[2]
    # The last used port came back under another ALSA client number.
    assert choose_port(ALSA_PORTS, last_used="Digital Piano:Digital Piano MIDI 1 28:0") == ALSA_PORTS[3]
    assert choose_port(ALSA_PORTS, last_used="Gone:Gone 30:0") == ALSA_PORTS[2]
    assert choose_port(ALSA_PORTS[:2]) is None
    assert choose_port([]) is None


def test_hardware_heuristic_and_port_key():
    assert not is_hardware_port("Midi Through:Midi Through Port-0 14:0")
    assert not is_hardware_port("pianorhythm-tui:in")
    assert not is_hardware_port("FLUID Synth (1234):Synth input port (1234:0) 129:0")
    assert is_hardware_port("system:midi_capture_1")
    assert port_key("Piano:Piano MIDI 1 20:0") == port_key("piano:piano midi 1 24:0")


def test_api_names():
    assert mido_backend_name("jack") == "mido.backends.rtmidi/UNIX_JACK"
    assert mido_backend_name("alsa") == "mido.backends.rtmidi/LINUX_ALSA"
    with pytest.raises(MidiUnavailable):
        rtmidi_api("oss")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([0x90, 60, 100], MusicEvent(EventKind.NOTE, 60, 100, 7)),
        ([0x9F, 61, 1], MusicEvent(EventKind.NOTE, 61, 1, 7)),
        ([0x90, 60, 0], MusicEvent(EventKind.NOTE, 60, 0, 7)),
        ([0x80, 60, 64], MusicEvent(EventKind.NOTE, 60, 0, 7)),
        ([0xB0, SUSTAIN_PEDAL, 127], MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127, 7)),
        ([0xB3, 67, 20], MusicEvent(EventKind.CONTROL, 67, 20, 7)),
        ([0xB0, 7, 100], None),
        ([0xF8], None),
        ([0xFE], None),
        ([0xF0, 0x7E, 0xF7], None),
        ([0xE0, 0, 64], None),
        ([0xC0, 5], None),
        ([0x90, 200, 10], None),
    ],
)
def test_parse_message(data, expected):
    assert parse_message(data, 7) == expected


def test_parse_message_with_more_controllers():
    assert parse_message([0xB0, 7, 100], 1, controllers={7}) == MusicEvent(EventKind.CONTROL, 7, 100, 1)
