"""MIDI keyboard input: note on/off with velocity and pedals, stamped on arrival, delivered to asyncio.

A template in mido's style: `MidiInput` holds the callbacks and the hand-over to the event loop; backends
open ports (`RtMidiInput`: python-rtmidi on ALSA, JACK, CoreMIDI...) or nothing at all (`NullMidiInput`,
when there is no MIDI system; the app still runs on the computer keyboard). `open_midi_input()` picks.

Threads: python-rtmidi calls back on its own thread. There each message is parsed and stamped with
`time.perf_counter_ns()` (the earliest moment we can know it), then handed to the loop with
`loop.call_soon_threadsafe`. `on_event` and `on_status` always run on the event loop's thread.

Hot-plug: a poll (every 2 s by default) compares the port list with the open port. An unplugged keyboard
is reported with one line through `on_status` and reopened when it comes back; with no port open, a
keyboard plugged in later is opened (the first hardware-looking one, or the one --midi-in names).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final

from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent

from .ports import CLIENT_NAME, GoneClient, MidiUnavailable, choose_port, open_rtmidi_in, port_key

log = logging.getLogger(__name__)

EventCallback = Callable[[MusicEvent], None]
StatusCallback = Callable[[str], None]

POLL_INTERVAL: Final = 2.0
# Pedals pass through (sustain, sostenuto, soft); other controllers (volume, modulation...) are dropped so
# one player's hardware cannot turn the room's volume down.
PASSED_CONTROLLERS: Final = frozenset({SUSTAIN_PEDAL, 66, 67})
NOTE_OFF: Final = 0x80
NOTE_ON: Final = 0x90
CONTROL_CHANGE: Final = 0xB0


def parse_message(
    data: Sequence[int], time_ns: int, controllers: Collection[int] = PASSED_CONTROLLERS
) -> MusicEvent | None:
    """One raw MIDI message -> MusicEvent, or None for anything else (clock, sensing, sysex, bends...).

    Any MIDI channel; note-on with velocity 0 is a release, as is note-off whatever its velocity.
    """
    if len(data) != 3:
        return None
    status, number, value = data[0] & 0xF0, data[1], data[2]
    if number > 127 or value > 127:
        return None
    if status == NOTE_ON:
        return MusicEvent(EventKind.NOTE, number, value, time_ns)
    if status == NOTE_OFF:
        return MusicEvent(EventKind.NOTE, number, 0, time_ns)
    if status == CONTROL_CHANGE and number in controllers:
        return MusicEvent(EventKind.CONTROL, number, value, time_ns)
    return None


class MidiInput:
    """Base: callbacks, the thread-safe hand-over and the status line. Subclasses open ports."""

    description: str = "no MIDI input"

    def __init__(
        self,
        on_event: EventCallback,
        on_status: StatusCallback | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_status = on_status
        self._loop = loop or asyncio.get_running_loop()
        self.closed = False
        self.status = ""
        self.events_received = 0

    @property
    def connected(self) -> bool:
        """True while a port is open and its device present."""
        return False

    @property
    def port_name(self) -> str | None:
        """The open port's name (remember it as the next run's last used port), or None."""
        return None

    def close(self) -> None:
        """Stop reading; no callback runs afterwards. Idempotent."""
        self.closed = True

    def _receive(self, event: MusicEvent) -> None:  # any thread
        try:
            self._loop.call_soon_threadsafe(self._deliver, event)
        except RuntimeError:  # the loop is closed: the app is exiting
            pass

    def _deliver(self, event: MusicEvent) -> None:  # loop thread
        if not self.closed:
            self.events_received += 1
            self._on_event(event)

    def _report(self, message: str) -> None:  # loop thread
        self.status = message
        log.info("%s", message)
        if self._on_status is not None and not self.closed:
            self._on_status(message)


class NullMidiInput(MidiInput):
    """No MIDI system: reports `reason` once (soon, on the loop) and never delivers anything."""

    def __init__(
        self,
        on_event: EventCallback,
        on_status: StatusCallback | None = None,
        *,
        reason: str = "No MIDI input.",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(on_event, on_status, loop=loop)
        self.reason = reason
        self._loop.call_soon(self._report, reason)


class RtMidiInput(MidiInput):
    """A python-rtmidi input that follows one keyboard across unplug/replug.

    `wanted`: substring of the port name (--midi-in); `last_used`: the port of the previous session.
    Raises MidiUnavailable when the MIDI system itself is missing (use open_midi_input() to fall back).
    """

    def __init__(
        self,
        on_event: EventCallback,
        on_status: StatusCallback | None = None,
        *,
        api: str | None = None,
        wanted: str | None = None,
        last_used: str | None = None,
        poll_interval: float = POLL_INTERVAL,
        controllers: Collection[int] = PASSED_CONTROLLERS,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(on_event, on_status, loop=loop)
        self.api = api
        self.wanted = wanted
        self.last_used = last_used
        self.poll_interval = poll_interval
        self.controllers = frozenset(controllers)
        self._client: Any = self._new_client()
        self._port: str | None = None
        self._lost: str | None = None  # the port that was unplugged, while we wait for it
        self._announced_waiting = False
        self.description = "MIDI: no keyboard yet"
        self._check_ports()
        self._poller = self._loop.create_task(self._poll(), name="midi-hotplug")

    @property
    def connected(self) -> bool:
        return self._port is not None

    @property
    def port_name(self) -> str | None:
        return self._port

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._poller.cancel()
        self._drop_client()
        self._port = None

    def _new_client(self) -> Any:
        client = open_rtmidi_in(self.api)
        client.ignore_types(sysex=True, timing=True, active_sense=True)
        client.set_callback(self._on_rtmidi)
        return client

    def _drop_client(self) -> None:
        try:
            self._client.cancel_callback()
            self._client.close_port()
        finally:
            self._client.delete()

    def check_now(self) -> None:
        """Run one hot-plug check now (the poll does this every `poll_interval` seconds)."""
        if not self.closed:
            self._check_ports()

    # rtmidi's thread -------------------------------------------------------------------------------------

    def _on_rtmidi(self, message: tuple[list[int], float], _data: object = None) -> None:
        now = time.perf_counter_ns()
        event = parse_message(message[0], now, self.controllers)
        if event is not None:
            self._receive(event)

    # the loop's thread ------------------------------------------------------------------------------------

    async def _poll(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.poll_interval)
            try:
                self._check_ports()
            except Exception:  # never let a flaky MIDI system kill the poll
                log.exception("MIDI port check failed")

    def _ports(self) -> list[str]:
        return [str(port) for port in self._client.get_ports()]

    def _check_ports(self) -> None:
        if isinstance(self._client, GoneClient):
            try:
                self._client = self._new_client()
            except MidiUnavailable:
                return
        ports = self._ports()
        if self._port is not None:
            if any(port_key(port) == port_key(self._port) for port in ports):
                return
            self._lost = self._port
            self._close_port()
            self._report(f"MIDI keyboard {self._lost!r} unplugged; waiting for it to come back.")
            self.description = f"MIDI: {self._lost} (unplugged)"
            self._announced_waiting = True
        target = choose_port(ports, self.wanted, self._lost or self.last_used)
        if target is None:
            if not self._announced_waiting:
                self._announced_waiting = True
                if self.wanted:
                    self._report(
                        f"No MIDI port matches {self.wanted!r}; waiting for it (--list-midi shows ports)."
                    )
                else:
                    self._report("No MIDI keyboard found; plug one in at any time.")
            return
        self._open_port(ports.index(target), target)

    def _open_port(self, index: int, name: str) -> None:
        try:
            self._client.open_port(index, f"{CLIENT_NAME} in")
        except Exception as error:  # the port vanished between listing and opening
            log.info("could not open MIDI port %r: %s", name, error)
            return
        back = self._lost is not None and port_key(self._lost) == port_key(name)
        self._port = name
        self._lost = None
        self._announced_waiting = False
        self.last_used = name
        self.description = f"MIDI: {name}"
        self._report(f"MIDI keyboard {name!r} is back." if back else f"MIDI keyboard: {name}")

    def _close_port(self) -> None:
        # A fresh client, not just close_port(): RtMidi's JACK backend reconnects a reopened port but
        # never delivers on it again.
        self._port = None
        self._drop_client()
        try:
            self._client = self._new_client()
        except MidiUnavailable as error:  # the MIDI system itself went away (JACK server stopped)
            self._client = GoneClient()
            self._report(str(error))


def open_midi_input(
    on_event: EventCallback,
    on_status: StatusCallback | None = None,
    *,
    api: str | None = None,
    wanted: str | None = None,
    last_used: str | None = None,
    poll_interval: float = POLL_INTERVAL,
    loop: asyncio.AbstractEventLoop | None = None,
) -> MidiInput:
    """An RtMidiInput, or a NullMidiInput whose one-line `reason` says why there is no MIDI.

    Call from the event loop's thread (it starts the hot-plug poll as a task on that loop).
    """
    try:
        return RtMidiInput(
            on_event,
            on_status,
            api=api,
            wanted=wanted,
            last_used=last_used,
            poll_interval=poll_interval,
            loop=loop,
        )
    except MidiUnavailable as error:
        return NullMidiInput(on_event, on_status, reason=str(error), loop=loop)


def open_midi_input_from_args(
    args: object,
    on_event: EventCallback,
    on_status: StatusCallback | None = None,
    *,
    last_used: str | None = None,
) -> MidiInput:
    """open_midi_input() from the `pianorhythm-tui` argparse namespace (--midi-in, --midi-api)."""
    return open_midi_input(
        on_event,
        on_status,
        api=getattr(args, "midi_api", None),
        wanted=getattr(args, "midi_in", None),
        last_used=last_used,
    )
