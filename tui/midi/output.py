"""MIDI out: remote players' notes, pedals and instruments sent to a MIDI port at their playout time.

`MidiOut` owns one python-rtmidi output client and one thread, which does every rtmidi call: it sleeps on a
condition until the next event is due (a timed wait on the monotonic clock, well under a millisecond late on
an idle machine; the event loop's timers round to a millisecond) and sends it then, since rtmidi has no
timestamped send. Each player plays on a MIDI channel of their own (the engine's channel modulo 16).

What is sent is tracked per channel (keys held, pedals down), so `release(channel)` (the player left, or
we lost the link) and `close()` (exit) send the pedals up and a note-off for every key still sounding, then
All Notes Off (CC 123): a synth on the other end is never left with a stuck note.

Hot-plug: every `poll_interval` seconds the thread checks the port is still listed. A port that disappears
is reported once through `on_status` (on the event loop) and re-opened when it comes back; events due
meanwhile are dropped (played late they would be out of rhythm). A port named that is not there yet is
waited for the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from pianorhythm.events import EventKind, MusicEvent

from .input import CONTROL_CHANGE, NOTE_OFF, NOTE_ON
from .ports import CLIENT_NAME, GoneClient, MidiUnavailable, default_api, port_key, rtmidi_api

log = logging.getLogger(__name__)

StatusCallback = Callable[[str], None]

POLL_INTERVAL: Final = 2.0
PROGRAM_CHANGE: Final = 0xC0
ALL_NOTES_OFF: Final = 123
PEDALS: Final = (64, 66, 67)  # sustain, sostenuto, soft
MIDI_CHANNELS: Final = 16
# How long the last messages get to leave before the port closes. RtMidi's JACK backend passes messages to
# its process callback through a ring buffer, and its closePort waits for at most one cycle before it
# unregisters the port: messages written during that cycle, or not yet read by the client on the other end,
# were lost (the exit's pedal-up and note-offs, 3 runs in 40 of tests/tui/test_midi_out.py). A tenth of a
# second is several periods at any usual JACK buffer size; it is spent only when the port is closed.
CLOSE_LINGER_S: Final = 0.1
_RELEASE: Final = -1  # a queue entry's kind: release this channel now
_PROGRAM: Final = -2  # a queue entry's kind: program change now


def midi_channel(channel: int) -> int:
    """The MIDI channel (0-15) for an engine channel: its place in its group of 16."""
    return channel % MIDI_CHANNELS


def encode(channel: int, event: MusicEvent) -> list[int]:
    """The raw MIDI message for `event` on `channel` (0-15): note on/off or control change."""
    value = min(127, max(0, event.value))
    if event.kind is EventKind.NOTE:
        return [(NOTE_ON if value else NOTE_OFF) | channel, event.number & 0x7F, value]
    return [CONTROL_CHANGE | channel, event.number & 0x7F, value]


def open_rtmidi_out(api: str | None, client_name: str = CLIENT_NAME) -> Any:
    """A python-rtmidi MidiOut client on `api` (no port open yet); raises MidiUnavailable."""
    import rtmidi

    from pianorhythm.tui.audio.clog import captured_stderr

    code = rtmidi_api(api)
    with captured_stderr(f"MIDI out {api or 'default'} client"):
        try:
            return rtmidi.MidiOut(code, name=client_name)
        except (rtmidi.RtMidiError, SystemError, RuntimeError) as error:
            system = api or default_api() or "the system's"
            raise MidiUnavailable(
                f"No MIDI out: the {system} MIDI system is not available"
                + (" (start the JACK server, or use --midi-api alsa)." if system == "jack" else ".")
            ) from error


def list_output_ports(api: str | None = None) -> list[str]:
    """Names of the ports notes can be sent to; raises MidiUnavailable with no MIDI system."""
    client = open_rtmidi_out(api, f"{CLIENT_NAME}-list")
    try:
        return [str(port) for port in client.get_ports()]
    finally:
        client.delete()


class MidiOut:
    """Sends events to the first output port whose name contains `wanted` (case-insensitive).

    Raises MidiUnavailable when the MIDI system itself is missing. Thread-safe: `schedule`, `program`,
    `release` and `close` may be called from any thread (the engine calls them on the event loop).
    """

    def __init__(
        self,
        wanted: str,
        *,
        api: str | None = None,
        on_status: StatusCallback | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.wanted = wanted
        self.api = api
        self.poll_interval = poll_interval
        self._on_status = on_status
        self._loop = loop
        self._client: Any = open_rtmidi_out(api)
        self._port: str | None = None
        self._lost: str | None = None
        self._waiting_said = False
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int, int, int, MusicEvent | None]] = []  # due, seq, kind, channel, event
        self._seq = itertools.count()
        self._held: dict[int, set[int]] = {}  # MIDI channel -> keys sounding
        self._pedals: dict[int, set[int]] = {}  # MIDI channel -> pedals down
        self._programs: dict[int, int] = {}  # MIDI channel -> program, sent again to a re-opened port
        self._closing = False
        self.sent = 0
        self.dropped = 0
        self.lateness_ns: list[int] = []  # send time - due, for the benchmark (bounded below)
        self._check_port()
        self._thread = threading.Thread(target=self._run, name="midi-out", daemon=True)
        self._thread.start()

    @property
    def port_name(self) -> str | None:
        return self._port

    @property
    def description(self) -> str:
        if self._port is not None:
            return self._port
        return f"{self._lost or self.wanted} (not there)"

    # ---- any thread ----------------------------------------------------------------------------------------

    def schedule(self, due_ns: int, channel: int, event: MusicEvent) -> None:
        """Send `event` on the engine's `channel` at `due_ns` (time.perf_counter_ns)."""
        self._put(due_ns, EventKind(event.kind), channel, event)

    def program(self, channel: int, program: int, due_ns: int | None = None) -> None:
        """A program change on `channel` at `due_ns` (None: now, ahead of the notes queued for later)."""
        now = time.perf_counter_ns()
        event = MusicEvent(EventKind.CONTROL, program, program, now)
        self._put(now if due_ns is None else due_ns, _PROGRAM, channel, event)

    def release(self, channel: int) -> None:
        """Drop what is queued for `channel` and silence it now: pedals up, held keys off, all notes off."""
        midi = midi_channel(channel)
        with self._cond:
            self._queue = [item for item in self._queue if midi_channel(item[3]) != midi]
            heapq.heapify(self._queue)
        self._put(time.perf_counter_ns(), _RELEASE, channel, None)

    def close(self) -> None:
        """Release every channel that sounded, close the port and stop the thread. Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._queue.clear()
            self._cond.notify()
        self._thread.join(timeout=5)

    def _put(self, due_ns: int, kind: int, channel: int, event: MusicEvent | None) -> None:
        with self._cond:
            if self._closing:
                return
            seq = next(self._seq)
            heapq.heappush(self._queue, (due_ns, seq, kind, channel, event))
            if self._queue[0][1] == seq:  # sooner than what the thread waits for: wake it
                self._cond.notify()

    # ---- the thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        next_poll = time.monotonic() + self.poll_interval
        while True:
            with self._cond:
                while not self._closing:
                    now = time.perf_counter_ns()
                    if self._queue and self._queue[0][0] <= now:
                        break
                    wait_s = next_poll - time.monotonic()
                    if self._queue:
                        wait_s = min(wait_s, (self._queue[0][0] - now) / 1e9)
                    if wait_s <= 0:
                        break
                    self._cond.wait(wait_s)
                if self._closing:
                    break
                due: list[tuple[int, int, int, int, MusicEvent | None]] = []
                now = time.perf_counter_ns()
                while self._queue and self._queue[0][0] <= now:
                    due.append(heapq.heappop(self._queue))
            for due_ns, _, kind, channel, event in due:
                self._send_one(due_ns, kind, channel, event)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.poll_interval
                try:
                    self._check_port()
                except Exception:  # never let a flaky MIDI system stop the music
                    log.exception("MIDI out port check failed")
        self._shut_down()

    def _send_one(self, due_ns: int, kind: int, channel: int, event: MusicEvent | None) -> None:
        midi = midi_channel(channel)
        if kind == _RELEASE:
            self._silence(midi)
            return
        assert event is not None
        if kind == _PROGRAM:
            self._programs[midi] = event.number & 0x7F
            self._send([PROGRAM_CHANGE | midi, self._programs[midi]])
            return
        if self._port is None:
            self.dropped += 1
            return
        late = time.perf_counter_ns() - due_ns
        self._send(encode(midi, event))
        if len(self.lateness_ns) < 100_000:
            self.lateness_ns.append(late)
        self.sent += 1
        if event.kind is EventKind.NOTE:
            keys = self._held.setdefault(midi, set())
            (keys.add if event.value else keys.discard)(event.number)
        elif event.number in PEDALS:
            pedals = self._pedals.setdefault(midi, set())
            (pedals.add if event.value >= 64 else pedals.discard)(event.number)

    def _silence(self, midi: int) -> None:
        for pedal in sorted(self._pedals.pop(midi, set())):
            self._send([CONTROL_CHANGE | midi, pedal, 0])
        for key in sorted(self._held.pop(midi, set())):
            self._send([NOTE_OFF | midi, key, 0])
        self._send([CONTROL_CHANGE | midi, ALL_NOTES_OFF, 0])

    def _send(self, message: list[int]) -> None:
        if self._port is None:
            return
        try:
            self._client.send_message(message)
        except Exception:
            log.exception("sending to MIDI port %r failed", self._port)

    def _shut_down(self) -> None:
        for midi in sorted(set(self._held) | set(self._pedals)):
            self._silence(midi)
        if self._port is not None:
            time.sleep(CLOSE_LINGER_S)
        try:
            self._client.close_port()
        finally:
            self._client.delete()
        self._port = None

    def _ports(self) -> list[str]:
        return [str(port) for port in self._client.get_ports()]

    def _check_port(self) -> None:
        if isinstance(self._client, GoneClient):
            try:
                self._client = open_rtmidi_out(self.api)
            except MidiUnavailable:
                return
        ports = self._ports()
        if self._port is not None:
            if any(port_key(port) == port_key(self._port) for port in ports):
                return
            self._lost, self._port = self._port, None
            self._held.clear()
            self._pedals.clear()
            self._replace_client()
            self._report(f"MIDI out port {self._lost!r} is gone; it is re-opened when it comes back.")
            self._waiting_said = True
            ports = self._ports()
        needle = port_key(self._lost) if self._lost else self.wanted.casefold()
        target = next((port for port in ports if needle in port_key(port)), None)
        if target is None:
            if not self._waiting_said:
                self._waiting_said = True
                self._report(
                    f"No MIDI out port matches {self.wanted!r}; waiting for it (--list-midi shows ports)."
                )
            return
        try:
            self._client.open_port(ports.index(target), f"{CLIENT_NAME} out")
        except Exception as error:  # it vanished between listing and opening
            log.info("could not open MIDI out port %r: %s", target, error)
            return
        back = self._lost is not None
        self._port, self._lost, self._waiting_said = target, None, False
        for midi, program in sorted(self._programs.items()):
            self._send([PROGRAM_CHANGE | midi, program])
        self._report(f"MIDI out port {target!r} is back." if back else f"MIDI out: {target}")

    def _replace_client(self) -> None:
        # A fresh client, as for input: RtMidi's JACK backend does not deliver on a re-opened port.
        try:
            self._client.close_port()
        finally:
            self._client.delete()
        try:
            self._client = open_rtmidi_out(self.api)
        except MidiUnavailable as error:
            self._client = GoneClient()
            self._report(str(error))

    def _report(self, message: str) -> None:
        log.info("%s", message)
        callback, loop = self._on_status, self._loop
        if callback is None:
            return
        if loop is None:
            callback(message)
            return
        try:
            loop.call_soon_threadsafe(callback, message)
        except RuntimeError:  # the loop is closed: the app is exiting
            pass


def open_midi_out(
    wanted: str, api: str | None, on_status: StatusCallback, loop: asyncio.AbstractEventLoop | None = None
) -> MidiOut | None:
    """A MidiOut to the port `wanted` names, or None (said through `on_status`) with no MIDI system."""
    try:
        return MidiOut(wanted, api=api or None, on_status=on_status, loop=loop)
    except MidiUnavailable as error:
        on_status(str(error))
        return None
