"""MIDI out (--midi-out): remote players sent to a MIDI port, each on their own channel, released on leave.

A real JACK server (dummy backend); the "hardware synth" is a JACK virtual MIDI input port this test opens
with python-rtmidi and records. The file test runs real processes: a relay, a headless player playing
tests/data/m21-test02.mid, a headless listener with --midi-out. Timing is not asserted here: bench/midi_out.py
measures the rhythm.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import rtmidi

from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui import config as cfg
from pianorhythm.tui.engine import Engine, EngineConfig
from pianorhythm.tui.midi.fileplayer import read_midi_file
from pianorhythm.tui.midi.output import ALL_NOTES_OFF, MidiOut, midi_channel
from pianorhythm.tui.midi.ports import print_ports
from tests.e2e.headless_procs import DATA, headless, start_server
from tests.tui.app_helpers import make_app, wait_for

pytestmark = pytest.mark.usefixtures("jackd")

SYNTH_CLIENT, SYNTH_PORT = "TESTSYNTH", "in"
NOTE_ON, NOTE_OFF, CONTROL, PROGRAM = 0x90, 0x80, 0xB0, 0xC0


class Synth:
    """A JACK virtual MIDI input standing in for a hardware synth: records (arrival ns, message).

    It reads RtMidi's queue from a thread of its own rather than through a callback: a callback runs Python in
    JACK's process thread, which then waits for the GIL, while python-rtmidi holds the GIL through its JACK
    calls (opening, closing ports) that can wait on that same cycle. The tests hung on that; a hardware
    synth, outside our process, never takes our GIL.
    """

    def __init__(self) -> None:
        self.received: list[tuple[int, list[int]]] = []
        self._lock = threading.Lock()
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=SYNTH_CLIENT, queue_size_limit=4096)
        self.port.open_virtual_port(SYNTH_PORT)
        self.open = True
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="test-synth", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            message = self.port.get_message()
            if message is None:
                self._stop.wait(0.001)
                continue
            with self._lock:
                self.received.append((time.perf_counter_ns(), message[0]))

    def messages(self) -> list[list[int]]:
        with self._lock:
            return [message for _, message in self.received]

    def notes_on(self) -> list[list[int]]:
        return [m for m in self.messages() if m[0] & 0xF0 == NOTE_ON and m[2] > 0]

    def unplug(self) -> None:
        if self.open:  # rtmidi crashes on a port used after delete()
            self.open = False
            self._stop.set()
            self._reader.join()
            self.port.close_port()
            self.port.delete()


def endings(messages: list[list[int]]) -> list[int]:
    """Where All Notes Off came in `messages`."""
    return [i for i, m in enumerate(messages) if m[0] & 0xF0 == CONTROL and m[1] == ALL_NOTES_OFF]


@pytest.fixture
def synth():
    s = Synth()
    yield s
    s.unplug()


async def until(predicate, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def note(key: int, velocity: int) -> MusicEvent:
    return MusicEvent(EventKind.NOTE, key, velocity, time.perf_counter_ns())


def test_list_midi_names_the_output_ports(synth, capsys):
    assert print_ports("jack") == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"out\t{SYNTH_CLIENT}:{SYNTH_PORT}" in lines


def test_every_note_of_a_played_file_arrives_in_order_on_the_players_channel(synth, tmp_path):
    song = DATA / "m21-test02.mid"
    want = [t.event for t in read_midi_file(song).events if t.event.is_note_on]
    server, url = start_server(tmp_path)
    player = listener = None
    try:
        listener = headless(
            tmp_path, url, "ben", "--room", "out", "--midi-out", SYNTH_CLIENT, "--midi-api", "jack"
        )
        listener.wait_for(rf"midi-out MIDI out: {SYNTH_CLIENT}:{SYNTH_PORT}")
        listener.wait_for(r"room out users=1")
        player = headless(tmp_path, url, "ann", "--room", "out", "--play", str(song), "--exit-after-play")
        listener.wait_for(r"join ann")
        assert player.wait(90) == 0, player.stderr
        listener.wait_for(r"leave ann")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not endings(synth.messages()):
            time.sleep(0.05)
        time.sleep(0.3)  # and nothing after it
        left = synth.messages()
        assert listener.interrupt() == 0, listener.stderr
    finally:
        for proc in (player, listener, server):
            if proc is not None:
                proc.kill()

    ons = [m for m in left if m[0] & 0xF0 == NOTE_ON and m[2] > 0]
    assert [(m[1], m[2]) for m in ons] == [(e.number, e.value) for e in want]  # every note, in order
    channels = {m[0] & 0x0F for m in left if m[0] & 0xF0 in (NOTE_ON, NOTE_OFF)}
    assert len(channels) == 1  # the player's own channel ...
    (channel,) = channels
    assert channel != 0  # ... not the listener's own (0)
    assert [PROGRAM | channel, 0] in left  # the player's instrument, before the notes
    assert left.index([PROGRAM | channel, 0]) < left.index(ons[0])
    offs = [m for m in left if m[0] & 0xF0 == NOTE_OFF or (m[0] & 0xF0 == NOTE_ON and m[2] == 0)]
    assert len(offs) >= len(ons)  # every key came up
    last = [CONTROL | channel, ALL_NOTES_OFF, 0]  # and on leave: all notes off
    assert left[-1] == last, f"last: {left[-8:]}; All Notes Off at {endings(left)} of {len(left)}"


async def test_held_notes_and_pedal_are_released_on_exit(synth, relay_server):
    url = relay_server.url
    ann = Engine(EngineConfig(url, "ann", room="exit", save_token=False))
    ben = Engine(EngineConfig(url, "ben", room="exit", save_token=False))
    out = MidiOut(SYNTH_CLIENT, api="jack")
    ben.midi_out = out
    try:
        await ann.start()
        await ben.start()
        await until(lambda: ben.player_stats(ann.session.user_id) is not None and ann.room is not None)
        ann.play_local(MusicEvent(EventKind.CONTROL, 64, 127, time.perf_counter_ns()))
        ann.play_local(note(60, 90))
        ann.play_local(note(64, 80))
        await until(lambda: len(synth.notes_on()) == 2)
        channel = synth.notes_on()[0][0] & 0x0F
        assert channel == midi_channel(ben.channels.channel_of(ann.session.user_id) or 0)
    finally:
        await ben.close()  # exit while ann holds two keys and the pedal
        out.close()
        await ann.close()
    tail = synth.messages()[-4:]
    assert tail == [
        [CONTROL | channel, 64, 0],
        [NOTE_OFF | channel, 60, 0],
        [NOTE_OFF | channel, 64, 0],
        [CONTROL | channel, ALL_NOTES_OFF, 0],
    ]


async def test_a_port_that_goes_is_said_once_and_reopened_when_it_returns(relay_server):
    statuses: list[str] = []
    synth = Synth()
    out = MidiOut(SYNTH_CLIENT, api="jack", on_status=statuses.append, poll_interval=0.1)
    try:
        assert out.port_name == f"{SYNTH_CLIENT}:{SYNTH_PORT}"
        out.schedule(time.perf_counter_ns(), 1, note(60, 100))
        await until(lambda: len(synth.notes_on()) == 1)
        synth.unplug()
        await until(lambda: any("is gone" in s for s in statuses))
        await asyncio.sleep(0.5)  # several polls: said once only
        assert sum("is gone" in s for s in statuses) == 1
        synth = Synth()
        await until(lambda: any("is back" in s for s in statuses))
        out.schedule(time.perf_counter_ns(), 1, note(62, 100))
        await until(lambda: [m[1] for m in synth.notes_on()] == [62])
    finally:
        out.close()
        synth.unplug()


async def test_the_settings_choose_a_midi_out_port_saved_in_the_config(synth, relay_server, config_dir):
    url = relay_server.url
    app = make_app(config_dir, "--connect", url, "--name", "ben", "--room", "prefs", "--midi-api", "jack")
    ann = Engine(EngineConfig(relay_server.url, "ann", room="prefs", save_token=False))
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        assert app.midi_out is None
        app.apply_settings({"midi_out": SYNTH_CLIENT})
        assert cfg.load(config_dir / "config.toml").midi_out == SYNTH_CLIENT
        assert app.midi_out is not None and app.midi_out.port_name == f"{SYNTH_CLIENT}:{SYNTH_PORT}"
        try:
            await ann.start()
            await wait_for(pilot, lambda: app.engine.player_stats(ann.session.user_id) is not None)
            ann.play_local(note(67, 70))
            await wait_for(pilot, lambda: [m[1:] for m in synth.notes_on()] == [[67, 70]])
        finally:
            await ann.close()


async def test_an_instrument_change_comes_between_the_notes_played_around_it(synth, relay_server):
    url = relay_server.url
    ann = Engine(EngineConfig(url, "ann", room="prog", save_token=False))
    ben = Engine(EngineConfig(url, "ben", room="prog", save_token=False))
    out = MidiOut(SYNTH_CLIENT, api="jack")
    ben.attach_midi_out(out)
    try:
        await ann.start()
        await ben.start()
        await until(lambda: ben.player_stats(ann.session.user_id) is not None and ann.room is not None)
        ann.play_local(note(60, 90))
        await asyncio.sleep(0.05)
        ann.set_instrument(40)
        await asyncio.sleep(0.05)
        ann.play_local(note(62, 90))
        await until(lambda: len(synth.notes_on()) == 2)
        channel = synth.notes_on()[0][0] & 0x0F
        sent = [m for m in synth.messages() if m[0] & 0x0F == channel]
        first, second = synth.notes_on()
        assert sent.index(first) < sent.index([PROGRAM | channel, 40]) < sent.index(second)
    finally:
        await ben.close()
        out.close()
        await ann.close()
